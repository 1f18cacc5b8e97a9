"""Train a LECO / slider LoRA from the same prompt TOML with the operator's kohya sd-scripts.

LF Train LECO trains inside ComfyUI; this node sends the identical ``--prompts_file`` TOML to
``train_leco.py`` / ``sdxl_train_leco.py`` through the kohya launcher (lora_foundry/kohya/leco_route.py),
for operators who already run sd-scripts. Like LF Kohya Train LoRA, where sd-scripts lives is the
operator's choice (``KOHYA_SD_SCRIPTS`` or trainer.json), never the workflow's: the node only takes
names, numbers and fixed choices. It reuses that node's helpers (base model list, loss events, cancel).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lora_foundry.kohya.leco_route import (
    ATTENTION,
    LECO_RUNS,
    LECO_SCRIPTS,
    PRECISIONS,
    LecoRequest,
    describe_leco,
    launch_leco,
    plan_leco,
)
from ..lora_foundry.kohya.operator_config import load_trainer_install
from ..lora_foundry.kohya.train_config import PreflightError, resolve_model_file
from ..lora_foundry.kohya.training import LORAS_SUBDIR, TRAINING_DIR
from ..lora_foundry.leco.prompts import PromptSet
from ..lora_foundry.leco.train import LecoConfig
from ..lora_foundry.lora.stack import StackEntry
from ..lora_foundry.paths import confined
from . import _comfy
from ._changed import files_state
from ._declare import boolean, choice, integer, mappings, node, number, socket, text
from .training import BASE_FOLDERS, EventForwarder, base_models, interrupted, loras_dir, show_cancel_report


@node("LF_KohyaTrainLECO", "LF Kohya Train LECO", category="training", function="train", output_node=True,
      outputs=[("LORA_STACK", "lora_stack"), ("STRING", "lora_name"), ("STRING", "lora_path"),
               ("STRING", "report")],
      inputs={
          "architecture": choice(list(LECO_SCRIPTS), "Model family: sd15/sd2 run train_leco.py, sdxl runs "
                                 "sdxl_train_leco.py.", "sd15"),
          "base_model": choice(base_models, "Base model from models/checkpoints or models/diffusion_models "
                               "(.safetensors only)."),
          "output_name": text("LoRA file name (plain name): models/loras/lora_foundry/<name>.safetensors.",
                              "my_leco"),
          "steps": integer("Training steps (max_train_steps).", 500, 1, 100000),
          "learning_rate": number("Learning rate.", 1e-4, 1e-6, 1e-1, 1e-5, round=False),
          "rank": integer("LoRA rank (network_dim).", 4, 1, 256),
          "alpha": number("LoRA alpha (network_alpha); the update is scaled by alpha/rank.", 1.0, 0.01, 256.0),
          "seed": integer("Training seed (fixed, so re-queuing the same graph does not retrain).", 0, 0, 2**32 - 1),
          "save_every": integer("Save an intermediate LoRA every N steps (kept if you cancel); 0 = only at the end.",
                                0, 0, 100000),
          "dry_run": boolean("Write prompts.toml, run.toml and the exact command (shown in the report) without "
                             "training.", False),
      },
      optional={
          "prompts_toml": socket("STRING", "LECO prompt set: sd-scripts' --prompts_file TOML (from LF LECO "
                                 "Prompts).", forceInput=True),
          "prompts_file": text("Instead of a connected prompt set: a .toml file name in ComfyUI's input folder."),
          "max_denoising_steps": integer("Partial-denoise schedule length (sd-scripts' max_denoising_steps).",
                                         40, 2, 200),
          "denoise_guidance": number("CFG of the partial denoise (sd-scripts' leco_denoise_guidance_scale).",
                                     3.0, 1.0, 20.0, 0.1),
          "mixed_precision": choice(list(PRECISIONS), "sd-scripts' mixed_precision: bf16 or fp16 on a GPU that has "
                                    "them; 'no' trains in fp32 (a CPU).", "bf16"),
          "attention": choice(list(ATTENTION), "Attention implementation (sd-scripts' --sdpa / --xformers / "
                              "--mem_eff_attn; default = none of them).", "sdpa"),
          "gradient_checkpointing": boolean("sd-scripts' --gradient_checkpointing: less memory, slower steps "
                                            "(upstream's docs recommend it for LECO).", True),
          "min_snr_gamma": number("sd-scripts' --min_snr_gamma (0 = off).", 0.0, 0.0, 20.0, 0.5),
          "noise_offset": number("sd-scripts' --noise_offset (0 = off).", 0.0, 0.0, 1.0, 0.01),
          "zero_terminal_snr": boolean("sd-scripts' --zero_terminal_snr.", False),
      })
class KohyaTrainLECO:
    """Trains a LECO or concept-slider LoRA from a prompt set (LF LECO Prompts, or a TOML in ComfyUI's
    input folder) with the server operator's kohya sd-scripts (train_leco.py / sdxl_train_leco.py; newer
    sd-scripts only, an older checkout gets a clear message). Success only when sd-scripts exits 0 AND
    the LoRA exists with ss_leco metadata; it lands in models/loras/lora_foundry/. Cancel stops the
    trainer and keeps its checkpoints."""

    @classmethod
    def IS_CHANGED(cls, prompts_file: str = "", **_: Any) -> str:
        """The prompt TOML on disk: editing it re-runs the node (ComfyUI compares only widget values)."""
        return files_state(lambda: [prompts_path(prompts_file)], prompts_file) if prompts_file.strip() else ""

    def train(self, architecture: str, base_model: str, output_name: str, steps: int, learning_rate: float,
              rank: int, alpha: float, seed: int, save_every: int, dry_run: bool, prompts_toml: str = "",
              prompts_file: str = "", max_denoising_steps: int = 40, denoise_guidance: float = 3.0,
              mixed_precision: str = "bf16", attention: str = "sdpa", gradient_checkpointing: bool = True,
              min_snr_gamma: float = 0.0, noise_offset: float = 0.0, zero_terminal_snr: bool = False,
              unique_id: str | None = None) -> dict[str, Any]:
        toml_text, folder = read_prompts(prompts_toml, prompts_file)
        base_dirs = [d for folder in BASE_FOLDERS for d in _comfy.model_folder_paths(folder)]
        training = LecoConfig(steps=steps, learning_rate=learning_rate, seed=seed, save_every=save_every,
                              max_denoising_steps=max_denoising_steps, denoise_guidance=denoise_guidance,
                              min_snr_gamma=min_snr_gamma, noise_offset=noise_offset)
        request = LecoRequest(architecture=architecture, base_model=resolve_model_file(base_model, base_dirs,
                                                                                       "base model"),
                              prompts_toml=toml_text, output_name=output_name, rank=rank, alpha=alpha,
                              training=training, mixed_precision=mixed_precision, attention=attention,
                              gradient_checkpointing=gradient_checkpointing, zero_terminal_snr=zero_terminal_snr,
                              prompts_dir=folder, read_roots=_comfy.read_roots())
        install = load_trainer_install(_comfy.user_root())
        run_root = _comfy.output_root().joinpath(*TRAINING_DIR[:-1], LECO_RUNS)
        plan = plan_leco(request, install, run_root, loras_dir())
        if dry_run:
            report = describe_leco(None, plan)
            return {"ui": {"text": [report]}, "result": ([], "", "", report)}
        progress = _comfy.ComfyProgress(unique_id)
        result = launch_leco(plan, progress, EventForwarder(unique_id, progress), interrupted)
        report = describe_leco(result, plan)
        if result.status == "cancelled":
            show_cancel_report(unique_id, report)
            raise result.cancel_cause or RuntimeError(report)
        lora_name = f"{LORAS_SUBDIR}/{plan.final.name}"
        stack = [StackEntry(lora_name, 1.0, 0.0, stack_kind(plan.prompt_set))]
        return {"ui": {"text": [report]}, "result": (stack, lora_name, str(result.lora_path), report)}


def read_prompts(prompts_toml: str, prompts_file: str) -> tuple[str, Path | None]:
    """The prompt TOML from the link, or from a ``.toml`` file confined to ComfyUI's input folder
    (a workflow never names a file elsewhere on the server), and the folder its neutral prompt files
    are read from (the file's; None for a link: then they are looked up in the read roots)."""
    if prompts_toml.strip() and prompts_file.strip():
        raise PreflightError("connect prompts_toml OR give prompts_file, not both")
    if prompts_toml.strip():
        return prompts_toml, None
    if not prompts_file.strip():
        raise PreflightError("connect a prompt set (LF LECO Prompts) or give prompts_file (a .toml in the input folder)")
    path = prompts_path(prompts_file)
    return path.read_text(encoding="utf-8"), path.parent


def prompts_path(prompts_file: str) -> Path:
    """The ``.toml`` file ``prompts_file`` names, confined to ComfyUI's input folder."""
    root = _comfy.input_root()
    if root is None:
        raise PreflightError("prompts_file needs ComfyUI's input folder; connect prompts_toml instead")
    path = confined(root, *Path(prompts_file.strip()).parts)
    if path.suffix.lower() != ".toml" or not path.is_file():
        raise PreflightError(f"prompts_file {prompts_file!r} is not a .toml file in {root}")
    return path


def stack_kind(prompt_set: PromptSet) -> str:
    """``slider`` when the set trains at negative strength too (the stack then sweeps −1 … +1): the
    prompt set the run was planned with (``LecoPlan.prompt_set``)."""
    return "slider" if any(s.multiplier < 0 for s in prompt_set.settings) else "leco"


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(KohyaTrainLECO)
