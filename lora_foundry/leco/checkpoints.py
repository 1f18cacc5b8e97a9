"""Where a LECO run's files go, in kohya's format, and how a killed run picks up again.

``<lora dir>/<name>.safetensors`` is the finished LoRA; ``<lora dir>/<name>_checkpoints/`` holds
``<name>-step000050.safetensors`` every N steps (each a complete LoRA ComfyUI can load) and
``resume_state.pt``: the step, losses, LoRA weights and optimizer state the next run with the same
name and settings continues from. That file holds only tensors, numbers and lists, written with
``torch.save`` and read back with ``weights_only=True`` (no pickle code runs). Every file is written
atomically, so a kill leaves the previous checkpoint whole; nothing is overwritten silently.

Metadata is what sd-scripts' ``train_leco.py`` writes (``ss_network_*``, ``ss_leco_prompt_count``,
``ss_leco_prompts_file``, ``ss_leco_preview``: JSON of up to 16 settings) plus the usual ``ss_*``
run facts and our ``lora_foundry.type``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_bytes
from ..kohya.publish import refuse_published
from ..lora.files import lora_path, lora_stem, write_lora
from ..lora.metadata import TYPE_KEY
from ..paths import confined
from .network import LoraNetwork
from .prompts import PromptSetting

PREVIEW_SETTINGS = 16
STATE_FILE = "resume_state.pt"


class ResumeMismatch(RuntimeError):
    """Checkpoints under this name belong to a run with other settings."""


def leco_metadata(settings: Sequence[PromptSetting], prompts_file: str, network: LoraNetwork, *, name: str,
                  steps: int, learning_rate: float, seed: int, base_model_version: str = "") -> dict[str, str]:
    """kohya ``ss_*`` and ``ss_leco_*`` metadata for a LECO LoRA."""
    sliders = any(s.multiplier < 0 for s in settings)
    meta = {
        "ss_network_module": "networks.lora", "ss_network_dim": str(network.rank),
        "ss_network_alpha": str(network.alpha), "ss_output_name": name, "ss_steps": str(steps),
        "ss_max_train_steps": str(steps), "ss_learning_rate": str(learning_rate), "ss_seed": str(seed),
        "ss_training_comment": "LECO trained in ComfyUI by LoRA Foundry",
        "ss_leco_prompt_count": str(len(settings)), "ss_leco_prompts_file": prompts_file,
        "ss_leco_preview": json.dumps([s.preview() for s in settings[:PREVIEW_SETTINGS]], ensure_ascii=False),
        TYPE_KEY: "slider" if sliders else "leco",
    }
    if base_model_version:
        meta["ss_base_model_version"] = base_model_version
    return meta


class RunFiles:
    """The files of one named run inside ``lora_dir`` (names sanitised and confined to it)."""

    def __init__(self, lora_dir: Path, name: str, metadata: Mapping[str, str], dtype: str = "fp16",
                 overwrite: bool = False) -> None:
        self.stem = lora_stem(name)
        self.lora_dir = Path(lora_dir)
        self.final = lora_path(self.lora_dir, self.stem)
        self.folder = confined(self.lora_dir, self.stem + "_checkpoints")
        self.metadata = dict(metadata)
        self.dtype_name = dtype
        self.overwrite = overwrite

    @property
    def state_path(self) -> Path:
        return self.folder / STATE_FILE

    def checkpoint_path(self, step: int) -> Path:
        return self.folder / f"{self.stem}-step{step:06d}.safetensors"

    def check_can_start(self, resume: bool) -> None:
        """Refuse to replace a finished LoRA, or an earlier run's checkpoints without resuming."""
        if not self.overwrite:
            refuse_published(self.final, "overwrite")
        if not resume and self.state_path.exists() and not self.overwrite:
            raise FileExistsError(f"checkpoints of an earlier run are in {self.folder}; turn resume on to "
                                  "continue it, or choose another name")

    def read_state(self) -> dict[str, Any] | None:
        import torch

        if not self.state_path.exists():
            return None
        return torch.load(self.state_path, map_location="cpu", weights_only=True)

    def resume(self, fingerprint: str, network: LoraNetwork, optimizer: Any) -> tuple[int, list[float]]:
        state = self.read_state()
        if state is None:
            return 0, []
        if state["fingerprint"] != fingerprint:
            raise ResumeMismatch(f"the checkpoints in {self.folder} were made with other prompts or settings; "
                                 "choose another name, or turn resume off and set overwrite")
        network.load_kohya_state(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"]), [float(x) for x in state["losses"]]

    def save_checkpoint(self, step: int, network: LoraNetwork, optimizer: Any, losses: list[float],
                        fingerprint: str) -> Path:
        import torch

        weights = network.kohya_state()
        meta = {**self.metadata, "ss_steps": str(step), "ss_output_name": f"{self.stem}-step{step:06d}"}
        path = write_lora(self.checkpoint_path(step), weights, meta, self.dtype_name, overwrite=True)
        buffer = io.BytesIO()
        torch.save({"step": step, "losses": list(losses), "fingerprint": fingerprint, "network": weights,
                    "optimizer": optimizer.state_dict()}, buffer)
        atomic_write_bytes(self.state_path, buffer.getvalue())
        return path

    def save_final(self, network: LoraNetwork, steps: int) -> Path:
        """The trained LoRA, published; when its name was published while it trained, it is kept
        in the checkpoints folder and the refusal says where (the weights are in memory only)."""
        meta, state = {**self.metadata, "ss_steps": str(steps)}, network.kohya_state()
        if not self.overwrite and self.final.exists():
            kept = write_lora(self.folder / f"{self.stem}-final.safetensors", state, meta, self.dtype_name, True)
            refuse_published(self.final, "overwrite", kept=kept)
        return write_lora(self.final, state, meta, self.dtype_name, self.overwrite)
