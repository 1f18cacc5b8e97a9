"""Train a LoRA with kohya sd-scripts, and load the result in the same graph.

Where sd-scripts lives is the server operator's choice (``KOHYA_SD_SCRIPTS`` or
``<user dir>/lora_foundry/trainer.json``); this node only offers names, numbers, fixed choices and
allow-listed options, so a shared workflow cannot make the server run another program.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from ..lora_foundry.kohya import presets, train_config
from ..lora_foundry.kohya.log_parse import LossPoint, StepEvent
from ..lora_foundry.kohya.operator_config import (
    TrainerNotConfigured,
    check_sd_scripts,
    load_trainer_install,
    validate_extra_options,
)
from ..lora_foundry.kohya.training import LORAS_SUBDIR, TRAINING_DIR, describe, train_lora
from ..lora_foundry.media import images
from ..lora_foundry.models.registry import ModelMissingError
from ..lora_foundry.paths import confined
from . import _comfy
from ._changed import files_state
from ._declare import Input, boolean, choice, integer, mappings, node, number, socket, text
from ._preview import show_files

NONE = "(none)"
LOSS_EVENT = "lora_foundry.loss"
REPORT_EVENT = "lora_foundry.train_report"
BASE_FOLDERS = ("checkpoints", "diffusion_models")
EXTRA_MODEL_FOLDERS = {"clip_l": "text_encoders", "clip_g": "text_encoders", "t5xxl": "text_encoders", "ae": "vae"}


def base_models() -> list[str]:
    names: list[str] = []
    for folder in BASE_FOLDERS:
        names += [n for n in _comfy.list_models(folder) if n.endswith(".safetensors") and n not in names]
    return names


def trainer_problem() -> str | None:
    """What keeps LF Kohya Train LoRA from training here (sd-scripts not set up, no base model), or
    None. Read at validation by a node that writes a dataset to train on at once, so a queue that
    cannot train writes nothing (ComfyUI runs every valid output node, even when the trainer's fails)."""
    try:
        install = load_trainer_install(_comfy.user_root())
        check_sd_scripts(install)
    except TrainerNotConfigured as error:
        return str(error)
    if not base_models():
        return "no base model: put a .safetensors checkpoint in models/checkpoints or models/diffusion_models"
    return None


def _optional_model(folder: str, tooltip: str) -> Input:
    """A combo of the .safetensors files in a models folder, listed when ComfyUI asks, or (none)."""
    return choice(functools.partial(_safetensors_or_none, folder), tooltip, NONE)


def _safetensors_or_none(folder: str) -> list[str]:
    return [NONE, *(n for n in _comfy.list_models(folder) if n.endswith(".safetensors"))]


def loras_dir() -> Path:
    """``models/loras/lora_foundry`` (ComfyUI's first loras folder), else under the output root."""
    folders = _comfy.model_folder_paths("loras")
    root = folders[0] if folders else _comfy.output_root() / "lora_foundry" / "loras"
    return confined(root, LORAS_SUBDIR)


def datasets_root() -> Path:
    return _comfy.output_root() / "lora_foundry" / "datasets"


def resolve_dataset(dataset: Any, dataset_path: str) -> tuple[Path, Path]:
    """An LF_DATASET from the writer, or a dataset folder name under the datasets root (never
    an arbitrary path: the dataset TOML names folders sd-scripts will read)."""
    if dataset is not None:
        return train_config.dataset_location(dataset)
    if not dataset_path.strip():
        raise train_config.PreflightError("connect a dataset (LF_DATASET) or give dataset_path")
    root = datasets_root().resolve()
    given = Path(dataset_path.strip())
    if given.is_absolute():
        if root not in given.resolve().parents:
            raise train_config.PreflightError(f"dataset_path must be a dataset under {root}, got {dataset_path!r}")
        given = given.resolve().relative_to(root)
    return train_config.dataset_location(confined(root, *given.parts))


def dataset_state(dataset_path: str) -> str:
    """IS_CHANGED of a ``dataset_path`` widget: every file of the dataset (images, captions, TOML), so
    editing a caption or adding an image re-runs the node (ComfyUI compares only widget values)."""
    def files() -> list[Path]:
        folder, _ = resolve_dataset(None, dataset_path)
        return sorted(p for p in folder.rglob("*") if p.is_file())

    return files_state(files, dataset_path) if dataset_path.strip() else ""


def _models(base_model: str, choices: dict[str, str]) -> tuple[Path, dict[str, Path]]:
    """The base model and the chosen extra models (text encoders, autoencoder); when several files
    are missing, one error names them all."""
    base_dirs = [d for folder in BASE_FOLDERS for d in _comfy.model_folder_paths(folder)]
    wanted = {"base model": (base_model, base_dirs)}
    wanted |= {key: (name, _comfy.model_folder_paths(EXTRA_MODEL_FOLDERS[key]))
               for key, name in choices.items() if name and name != NONE}
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, (name, dirs) in wanted.items():
        try:
            found[key] = train_config.resolve_model_file(name, dirs, key)
        except ModelMissingError as error:
            missing.append(str(error))
    if len(missing) == 1:
        raise ModelMissingError(missing[0])
    if missing:
        raise ModelMissingError(f"{len(missing)} model files are missing: " + "; ".join(missing))
    return found.pop("base model"), found


@node("LF_KohyaTrainLoRA", "LF Kohya Train LoRA", category="training", function="train", output_node=True,
      outputs=[("STRING", "lora_name"), ("STRING", "lora_path"), ("STRING", "report")],
      inputs={
          "architecture": choice(presets.ARCHITECTURES, "Model family: picks the sd-scripts script and network "
                                 "module (sd15/sd2 train_network, sdxl, flux with clip_l/t5xxl/ae, sd3).", "sd15"),
          "lora_type": choice(presets.LORA_TYPES, "Preset family: character, style or concept (sets lr, rank, steps; "
                              "see docs/training.md).", "character"),
          "base_model": choice(base_models, "Base model from models/checkpoints or models/diffusion_models "
                               "(.safetensors only)."),
          "output_name": text("LoRA file name (plain name): models/loras/lora_foundry/<name>.safetensors.",
                              "my_lora"),
          "network_variant": choice(train_config.VARIANTS, "LoRA (sd-scripts), or LoCon/LoHa/LoKr/DoRA through "
                                    "LyCORIS (must be installed in sd-scripts' venv). Unsupported combinations are "
                                    "refused.", "lora"),
          "steps": integer("Training steps; 0 = preset.", 0, 0, 100000),
          "learning_rate": number("Learning rate; 0 = preset.", 0.0, 0.0, 0.01, 0.00001, round=False),
          "rank": integer("network_dim (rank); 0 = preset.", 0, 0, 1024),
          "alpha": number("network_alpha; 0 = preset.", 0.0, 0.0, 1024.0),
          "resolution": integer("Training resolution; 0 = preset.", 0, 0, 4096, 64),
          "train_seed": integer("Training seed (fixed, so re-queuing the same graph does not retrain).",
                                42, 0, 2**32 - 1),
          "dry_run": boolean("Write the TOML files and the exact command (shown in the report) without training.",
                             False),
          "resume": boolean("Continue from the newest saved state of this output name (train once with save_state "
                            "on).", False),
      },
      optional={
          "dataset": socket("LF_DATASET", "A dataset from LF Write Kohya Dataset."),
          "dataset_path": text("Instead of a connected dataset: a dataset folder name under "
                               "<output>/lora_foundry/datasets/."),
          "sample_prompts": text("One prompt per line for sample images during training (sd-scripts syntax, e.g. "
                                 "'mychar, smiling --w 512 --h 512 --s 20'). Empty = no samples.", "", True),
          "sample_every_n_steps": integer("Sample interval; 0 = a quarter of the steps.", 0, 0, 100000),
          "save_every_n_steps": integer("Save an intermediate LoRA every N steps (kept if you cancel); 0 = only at "
                                        "the end.", 0, 0, 100000),
          "save_state": boolean("Also save the optimizer state so a run can resume.", False),
          "clip_l": _optional_model("text_encoders", "CLIP-L text encoder (Flux, optional for SD3)."),
          "clip_g": _optional_model("text_encoders", "CLIP-G text encoder (optional for SD3)."),
          "t5xxl": _optional_model("text_encoders", "T5-XXL text encoder (Flux, optional for SD3)."),
          "ae": _optional_model("vae", "Autoencoder (Flux ae.safetensors)."),
          "extra_options": text("More sd-scripts options as TOML 'key = value' lines, allow-listed (numbers, flags, "
                                "fixed choices such as optimizer_type, mixed_precision, gradient_checkpointing). "
                                "Paths and programs are refused.", "", True),
      })
class KohyaTrainLoRA:
    """Trains a LoRA with kohya sd-scripts (installed by the server operator in its own venv; see
    docs/training.md). Presets per architecture and LoRA type, every value overridable (0 = preset).
    Success only when sd-scripts exits 0 AND the LoRA file exists with the expected metadata; the LoRA
    lands in models/loras/lora_foundry/. Cancel stops the whole trainer; checkpoints are kept."""

    @classmethod
    def IS_CHANGED(cls, dataset_path: str = "", **_: Any) -> str:
        return dataset_state(dataset_path)

    def train(self, architecture: str, lora_type: str, base_model: str, output_name: str, network_variant: str,
              steps: int, learning_rate: float, rank: int, alpha: float, resolution: int, train_seed: int,
              dry_run: bool, resume: bool, dataset: Any = None, dataset_path: str = "", sample_prompts: str = "",
              sample_every_n_steps: int = 0, save_every_n_steps: int = 0, save_state: bool = False,
              clip_l: str = NONE, clip_g: str = NONE, t5xxl: str = NONE, ae: str = NONE,
              extra_options: str = "", unique_id: str | None = None) -> dict[str, Any]:
        options = validate_extra_options(extra_options)
        preset = presets.get_preset(architecture, lora_type).with_overrides(
            max_train_steps=steps, learning_rate=learning_rate, network_dim=rank, network_alpha=alpha,
            resolution=resolution)
        dataset_dir, dataset_toml = resolve_dataset(dataset, dataset_path)
        base, extra_models = _models(base_model, {"clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl, "ae": ae})
        request = train_config.TrainRequest(
            architecture=architecture, dataset_dir=dataset_dir, dataset_toml=dataset_toml,
            base_model=base,
            output_name=output_name, preset=preset, variant=network_variant, seed=train_seed,
            extra_models=extra_models,
            extra_options=options, sample_prompts=sample_prompts, sample_every_n_steps=sample_every_n_steps,
            save_every_n_steps=save_every_n_steps, save_state=save_state or resume, resume=resume,
            data_roots=_comfy.read_roots())
        install = load_trainer_install(_comfy.user_root())
        progress = _comfy.ComfyProgress(unique_id)
        outcome = train_lora(request, install, _comfy.output_root().joinpath(*TRAINING_DIR), loras_dir(),
                             dry_run=dry_run, progress=progress, on_event=EventForwarder(unique_id, progress),
                             should_stop=interrupted)
        report = describe(outcome)
        result = outcome.result
        if result is not None and result.status == "cancelled":
            show_cancel_report(unique_id, report)
            raise result.cancel_cause or RuntimeError(report)
        lora_path = str(result.lora_path) if result and result.lora_path else ""
        lora_name = f"{LORAS_SUBDIR}/{outcome.plan.final_lora.name}" if lora_path else ""
        ui: dict[str, Any] = {"text": [report]}
        if result is not None and result.samples:
            ui["images"] = show_files(result.samples[-8:])
        return {"ui": ui, "result": (lora_name, lora_path, report)}


def show_cancel_report(node_id: str | None, report: str) -> None:
    """A cancelled node returns nothing, so its report (steps done, kept checkpoints) goes to the
    node's chart area and to the server log; it is also in the run folder's report.txt."""
    _comfy.send_event(REPORT_EVENT, {"node": node_id, "text": report})
    logging.getLogger(__name__).warning("LoRA training cancelled:\n%s", report)


def interrupted() -> bool:
    """should_stop for the launcher: ComfyUI's interrupt raises here, which cancels the run."""
    _comfy.check_interrupt()
    return False


class EventForwarder:
    """Sends the loss curve to the node's chart and sample images to the progress preview."""

    def __init__(self, node_id: str | None, progress: _comfy.ComfyProgress) -> None:
        self._node_id = node_id
        self._progress = progress
        self._last = (0, 1)
        self._speed: tuple[float | None, float | None] = (None, None)

    def __call__(self, event: Any) -> None:
        if isinstance(event, StepEvent):
            self._last = (event.done, max(event.total, 1))
            self._speed = (event.steps_per_s, event.remaining_s)
        elif isinstance(event, LossPoint):  # one per step, with the step's final avr_loss
            _comfy.send_event(LOSS_EVENT, {"node": self._node_id, "step": event.step, "total": event.total,
                                           "loss": event.loss, "steps_per_s": self._speed[0],
                                           "remaining_s": self._speed[1]})
        elif hasattr(event, "path") and images.is_image_name(event.path):
            picture = images.to_pil(images.load_rgb(Path(event.path)))
            self._progress.update(*self._last, preview=("PNG", picture, 512))


@node("LF_LoadTrainedLoRA", "LF Load Trained LoRA", category="training", function="load",
      outputs=[("MODEL", "model"), ("CLIP", "clip")],
      inputs={
          "model": socket("MODEL", "The diffusion model to patch."),
          "clip": socket("CLIP", "The text encoder to patch."),
          "lora_name": socket("STRING", "LoRA file relative to models/loras.", forceInput=True),
          "strength_model": number("How strongly the LoRA changes the model.", 1.0, -10.0, 10.0, 0.01),
          "strength_clip": number("How strongly the LoRA changes the text encoder.", 1.0, -10.0, 10.0, 0.01),
      })
class LoadTrainedLoRA:
    """Applies a LoRA by name (e.g. the lora_name output of LF Kohya Train LoRA) to a model and CLIP
    with ComfyUI's own LoraLoader; use it when the name comes from a link rather than a list."""

    def load(self, model: Any, clip: Any, lora_name: str, strength_model: float, strength_clip: float,
             unique_id: str | None = None) -> tuple[Any, Any]:
        if not lora_name:
            raise ValueError("no LoRA name: did the training run succeed (dry runs make no LoRA)?")
        return _comfy.apply_lora(model, clip, lora_name, strength_model, strength_clip)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(KohyaTrainLoRA, LoadTrainedLoRA)
