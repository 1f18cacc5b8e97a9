"""Train a LoRA with kohya sd-scripts, and load the result in the same graph.

Where sd-scripts lives is the server operator's choice (``KOHYA_SD_SCRIPTS`` or
``<user dir>/lora_foundry/trainer.json``); this node only offers names, numbers, fixed choices and
allow-listed options, so a shared workflow cannot make the server run another program.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lora_foundry.kohya import presets, train_config
from ..lora_foundry.kohya.log_parse import StepEvent
from ..lora_foundry.kohya.operator_config import load_trainer_install, validate_extra_options
from ..lora_foundry.kohya.training import LORAS_SUBDIR, TRAINING_DIR, describe, train_lora
from ..lora_foundry.media import images
from ..lora_foundry.paths import confined
from . import _comfy

CATEGORY = f"{_comfy.CATEGORY}/training"
NONE = "(none)"
LOSS_EVENT = "lora_foundry.loss"
BASE_FOLDERS = ("checkpoints", "diffusion_models")
EXTRA_MODEL_FOLDERS = {"clip_l": "text_encoders", "clip_g": "text_encoders", "t5xxl": "text_encoders", "ae": "vae"}


def _base_models() -> list[str]:
    names: list[str] = []
    for folder in BASE_FOLDERS:
        names += [n for n in _comfy.list_models(folder) if n.endswith(".safetensors") and n not in names]
    return names


def _optional_model(folder: str, tooltip: str) -> tuple[list[str], dict[str, Any]]:
    files = [n for n in _comfy.list_models(folder) if n.endswith(".safetensors")]
    return ([NONE, *files], {"default": NONE, "tooltip": tooltip})


def loras_dir() -> Path:
    """``models/loras/lora_foundry`` (ComfyUI's first loras folder), else under the output root."""
    folders = _comfy.model_folder_paths("loras")
    root = folders[0] if folders else _comfy.output_root() / "lora_foundry" / "loras"
    return confined(root, LORAS_SUBDIR)


def datasets_root() -> Path:
    return _comfy.output_root() / "lora_foundry" / "datasets"


def _resolve_dataset(dataset: Any, dataset_path: str) -> tuple[Path, Path]:
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


def _extra_models(choices: dict[str, str]) -> dict[str, Path]:
    chosen: dict[str, Path] = {}
    for key, name in choices.items():
        if name and name != NONE:
            dirs = _comfy.model_folder_paths(EXTRA_MODEL_FOLDERS[key])
            chosen[key] = train_config.resolve_model_file(name, dirs, key)
    return chosen


class KohyaTrainLoRA:
    DESCRIPTION = ("Trains a LoRA with kohya sd-scripts (installed by the server operator in its own venv; see "
                   "docs/training.md). Presets per architecture and LoRA type, every value overridable (0 = preset). "
                   "Success only when sd-scripts exits 0 AND the LoRA file exists with the expected metadata; the "
                   "LoRA lands in models/loras/lora_foundry/. Cancel stops the whole trainer; checkpoints are kept.")
    CATEGORY = CATEGORY
    FUNCTION = "train"
    RETURN_TYPES = ("STRING", "STRING", "STRING")
    RETURN_NAMES = ("lora_name", "lora_path", "report")
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "architecture": (list(presets.ARCHITECTURES), {"default": "sd15", "tooltip":
                             "Model family: picks the sd-scripts script and network module (sd15/sd2 train_network, "
                             "sdxl, flux with clip_l/t5xxl/ae, sd3)."}),
            "lora_type": (list(presets.LORA_TYPES), {"default": "character", "tooltip":
                          "Preset family: character, style or concept (sets lr, rank, steps; see docs/training.md)."}),
            "base_model": (_base_models(), {"tooltip": "Base model from models/checkpoints or models/diffusion_models "
                           "(.safetensors only)."}),
            "output_name": ("STRING", {"default": "my_lora", "tooltip":
                            "LoRA file name (plain name): models/loras/lora_foundry/<name>.safetensors."}),
            "network_variant": (list(train_config.VARIANTS), {"default": "lora", "tooltip":
                                "LoRA (sd-scripts), or LoCon/LoHa/LoKr/DoRA through LyCORIS (must be installed in "
                                "sd-scripts' venv). Unsupported combinations are refused."}),
            "steps": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": "Training steps; 0 = preset."}),
            "learning_rate": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.01, "step": 0.00001, "round": False,
                              "tooltip": "Learning rate; 0 = preset."}),
            "rank": ("INT", {"default": 0, "min": 0, "max": 1024, "tooltip": "network_dim (rank); 0 = preset."}),
            "alpha": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1024.0, "tooltip": "network_alpha; 0 = preset."}),
            "resolution": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 64, "tooltip":
                           "Training resolution; 0 = preset."}),
            "train_seed": ("INT", {"default": 42, "min": 0, "max": 2**32 - 1, "tooltip":
                           "Training seed (fixed, so re-queuing the same graph does not retrain)."}),
            "dry_run": ("BOOLEAN", {"default": False, "tooltip":
                        "Write the TOML files and the exact command (shown in the report) without training."}),
            "resume": ("BOOLEAN", {"default": False, "tooltip":
                       "Continue from the newest saved state of this output name (train once with save_state on)."}),
        }, "optional": {
            "dataset": ("LF_DATASET", {"tooltip": "A dataset from LF Write Kohya Dataset."}),
            "dataset_path": ("STRING", {"default": "", "tooltip":
                             "Instead of a connected dataset: a dataset folder name under <output>/lora_foundry/datasets/."}),
            "sample_prompts": ("STRING", {"default": "", "multiline": True, "tooltip":
                               "One prompt per line for sample images during training (sd-scripts syntax, e.g. "
                               "'mychar, smiling --w 512 --h 512 --s 20'). Empty = no samples."}),
            "sample_every_n_steps": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip":
                                     "Sample interval; 0 = a quarter of the steps."}),
            "save_every_n_steps": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip":
                                   "Save an intermediate LoRA every N steps (kept if you cancel); 0 = only at the end."}),
            "save_state": ("BOOLEAN", {"default": False, "tooltip": "Also save the optimizer state so a run can resume."}),
            "clip_l": _optional_model("text_encoders", "CLIP-L text encoder (Flux, optional for SD3)."),
            "clip_g": _optional_model("text_encoders", "CLIP-G text encoder (optional for SD3)."),
            "t5xxl": _optional_model("text_encoders", "T5-XXL text encoder (Flux, optional for SD3)."),
            "ae": _optional_model("vae", "Autoencoder (Flux ae.safetensors)."),
            "extra_options": ("STRING", {"default": "", "multiline": True, "tooltip":
                              "More sd-scripts options as TOML 'key = value' lines, allow-listed (numbers, flags, "
                              "fixed choices such as optimizer_type, mixed_precision, gradient_checkpointing). "
                              "Paths and programs are refused."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

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
        dataset_dir, dataset_toml = _resolve_dataset(dataset, dataset_path)
        base_dirs = [d for folder in BASE_FOLDERS for d in _comfy.model_folder_paths(folder)]
        request = train_config.TrainRequest(
            architecture=architecture, dataset_dir=dataset_dir, dataset_toml=dataset_toml,
            base_model=train_config.resolve_model_file(base_model, base_dirs, "base model"),
            output_name=output_name, preset=preset, variant=network_variant, seed=train_seed,
            extra_models=_extra_models({"clip_l": clip_l, "clip_g": clip_g, "t5xxl": t5xxl, "ae": ae}),
            extra_options=options, sample_prompts=sample_prompts, sample_every_n_steps=sample_every_n_steps,
            save_every_n_steps=save_every_n_steps, save_state=save_state or resume, resume=resume)
        install = load_trainer_install(_comfy.user_root())
        progress = _comfy.ComfyProgress(unique_id)
        outcome = train_lora(request, install, _comfy.output_root().joinpath(*TRAINING_DIR), loras_dir(),
                             dry_run=dry_run, progress=progress, on_event=_EventForwarder(unique_id, progress),
                             should_stop=_interrupted)
        report = describe(outcome)
        result = outcome.result
        if result is not None and result.status == "cancelled":
            raise result.cancel_cause or RuntimeError(report)
        lora_path = str(result.lora_path) if result and result.lora_path else ""
        lora_name = f"{LORAS_SUBDIR}/{outcome.plan.final_lora.name}" if lora_path else ""
        ui: dict[str, Any] = {"text": [report]}
        if result is not None and result.samples:
            ui["images"] = _ui_images(result.samples[-8:])
        return {"ui": ui, "result": (lora_name, lora_path, report)}


def _interrupted() -> bool:
    """should_stop for the launcher: ComfyUI's interrupt raises here, which cancels the run."""
    _comfy.check_interrupt()
    return False


def _ui_images(paths: list[Path]) -> list[dict[str, str]]:
    """Sample images as ComfyUI previews (only those under the output directory can be served)."""
    root = _comfy.output_root()
    shown = []
    for path in paths:
        resolved = path.resolve()
        if root in resolved.parents:
            rel = resolved.relative_to(root)
            shown.append({"filename": rel.name, "subfolder": str(rel.parent), "type": "output"})
    return shown


class _EventForwarder:
    """Sends the loss curve to the node's chart and sample images to the progress preview."""

    def __init__(self, node_id: str | None, progress: _comfy.ComfyProgress) -> None:
        self._node_id = node_id
        self._progress = progress
        self._last = (0, 1)

    def __call__(self, event: Any) -> None:
        if isinstance(event, StepEvent):
            self._last = (event.done, max(event.total, 1))
            if event.loss is not None:
                _comfy.send_event(LOSS_EVENT, {"node": self._node_id, "step": event.done, "total": event.total,
                                               "loss": event.loss, "steps_per_s": event.steps_per_s,
                                               "remaining_s": event.remaining_s})
        elif hasattr(event, "path") and Path(event.path).suffix.lower() in {".png", ".jpg", ".jpeg", ".webp"}:
            picture = images.to_pil(images.load_rgb(Path(event.path)))
            self._progress.update(*self._last, preview=("PNG", picture, 512))


class LoadTrainedLoRA:
    DESCRIPTION = ("Applies a LoRA by name (e.g. the lora_name output of LF Kohya Train LoRA) to a model and CLIP "
                   "with ComfyUI's own LoraLoader; use it when the name comes from a link rather than a list.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("MODEL", "CLIP")
    RETURN_NAMES = ("model", "clip")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "model": ("MODEL", {"tooltip": "The diffusion model to patch."}),
            "clip": ("CLIP", {"tooltip": "The text encoder to patch."}),
            "lora_name": ("STRING", {"forceInput": True, "tooltip": "LoRA file relative to models/loras."}),
            "strength_model": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                               "tooltip": "How strongly the LoRA changes the model."}),
            "strength_clip": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01,
                              "tooltip": "How strongly the LoRA changes the text encoder."}),
        }}

    def load(self, model: Any, clip: Any, lora_name: str, strength_model: float, strength_clip: float) -> tuple[Any, Any]:
        if not lora_name:
            raise ValueError("no LoRA name: did the training run succeed (dry runs make no LoRA)?")
        return _comfy.apply_lora(model, clip, lora_name, strength_model, strength_clip)


NODE_CLASS_MAPPINGS = {"LF_KohyaTrainLoRA": KohyaTrainLoRA, "LF_LoadTrainedLoRA": LoadTrainedLoRA}
NODE_DISPLAY_NAME_MAPPINGS = {"LF_KohyaTrainLoRA": "LF Kohya Train LoRA", "LF_LoadTrainedLoRA": "LF Load Trained LoRA"}
