"""Turn a training request into sd-scripts' TOML files and the exact command, after preflight.

Every argument goes into one generated ``--config_file`` TOML (written with tomli-w); the command
line itself is fixed (``python script --config_file run.toml``). Paths in the TOML come only from
the operator's install, from files resolved inside ComfyUI's model folders, and from folders we
create; a workflow contributes names (``safe_name``), numbers, fixed choices and allow-listed
options. Everything that can be checked before launch is checked here, with the fix in the message:
an empty dataset is an error before sd-scripts runs (sd-scripts itself exits 0 on one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from ..choices import one_of
from ..fileio import atomic_write_text
from ..media.images import IMAGE_SUFFIXES
from ..models.registry import ModelMissingError
from ..paths import confined, inside_by_name, name_problem, safe_name
from ..read_roots import ReadRoots
from .dataset_read import read_dataset_toml
from .launcher import LaunchSpec
from .operator_config import SCRIPTS, OptionRefused, TrainerInstall, check_install
from .preflight import PreflightError, check_buckets, check_lycoris, resolve_cached_text_conflicts, tokenizer_problems
from .presets import Preset
from .publish import published_path, refuse_published
from .toml_schema import table_problems

__all__ = ["PreflightError", "RunPlan", "TrainRequest", "plan_run"]

TRAINER_SUFFIXES = frozenset(s for s in IMAGE_SUFFIXES if not s.startswith(".tif"))
"""What sd-scripts trains on: ours but TIFF (its train_util.IMAGE_EXTENSIONS, without the optional AVIF/JXL)."""
# Every trainer process (and its children, which inherit it) carries its run folder here, so a
# trainer left by a killed ComfyUI can be found again (evaluate/tune_launcher.leftover_trainers).
RUN_DIR_ENV = "LORA_FOUNDRY_RUN_DIR"
VARIANTS = ("lora", "locon", "loha", "lokr", "dora")
NATIVE_MODULES = {"sd15": "networks.lora", "sd2": "networks.lora", "sdxl": "networks.lora",
                  "flux": "networks.lora_flux", "sd3": "networks.lora_sd3"}
# Which variants each architecture accepts: sd-scripts' own LoRA everywhere, LyCORIS
# (``lycoris.kohya``) for LoCon/LoHa/LoKr/DoRA on SD1/2/SDXL and LoKr on Flux.
SUPPORTED_VARIANTS = {"sd15": VARIANTS, "sd2": VARIANTS, "sdxl": VARIANTS,
                      "flux": ("lora", "lokr"), "sd3": ("lora",)}
TOKENIZERS = {
    "sd15": ("openai/clip-vit-large-patch14",),
    "sd2": ("stabilityai/stable-diffusion-2",),
    "sdxl": ("openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"),
    "flux": ("openai/clip-vit-large-patch14", "google/t5-v1_1-xxl"),
    "sd3": ("openai/clip-vit-large-patch14", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", "google/t5-v1_1-xxl"),
}
REQUIRED_EXTRAS = {"flux": ("clip_l", "t5xxl", "ae")}
OPTIONAL_EXTRAS = {"sd3": ("clip_l", "clip_g", "t5xxl")}
ARCH_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    "sd2": {"v2": True},
    "flux": {"timestep_sampling": "shift", "discrete_flow_shift": 3.1582, "model_prediction_type": "raw",
             "guidance_scale": 1.0, "network_train_unet_only": True, "cache_text_encoder_outputs": True},
    "sd3": {"network_train_unet_only": True, "cache_text_encoder_outputs": True},
}


@dataclass(frozen=True)
class TrainRequest:
    """What the user asked for; names are still raw here and checked in ``plan_run``."""

    architecture: str
    dataset_dir: Path
    dataset_toml: Path
    base_model: Path
    output_name: str
    preset: Preset
    variant: str = "lora"
    seed: int = 42
    extra_models: Mapping[str, Path] = field(default_factory=dict)
    extra_options: Mapping[str, Any] = field(default_factory=dict)
    sample_prompts: str = ""
    sample_every_n_steps: int = 0
    save_every_n_steps: int = 0
    save_state: bool = False
    resume: bool = False
    data_roots: ReadRoots | None = None  # folders the dataset TOML may name (None: the operator's CLI)


@dataclass(frozen=True)
class RunPlan:
    """The files written for a run and what to launch; ``final_lora`` is where the LoRA lands."""

    spec: LaunchSpec
    run_dir: Path
    config_toml: Path
    dataset_toml: Path
    command_txt: Path
    final_lora: Path
    image_count: int
    config: Mapping[str, Any]
    warnings: tuple[str, ...] = ()  # what preflight changed or found (shown in the report)


def dataset_location(dataset: Any) -> tuple[Path, Path]:
    """(folder, dataset.toml) of an ``LF_DATASET`` (``.path``/``.toml_path``) or a path string."""
    if hasattr(dataset, "path") and hasattr(dataset, "toml_path"):
        return Path(dataset.path), Path(dataset.toml_path)
    if isinstance(dataset, (str, os.PathLike)) and str(dataset).strip():
        given = Path(dataset)  # a workflow never reaches here with text (LF_DATASET is socket-checked)
        if given.suffix == ".toml":
            return given.parent, given
        return given, given / "dataset.toml"
    raise PreflightError(f"dataset must be an LF_DATASET or a folder holding dataset.toml, got {dataset!r}")


def network_settings(architecture: str, variant: str, dim: int, alpha: float) -> tuple[str, list[str]]:
    """(network_module, network_args) for a variant, refusing combinations nothing supports."""
    one_of(variant, VARIANTS, "network variant", PreflightError)
    if variant not in SUPPORTED_VARIANTS[architecture]:
        raise PreflightError(
            f"{variant} is not supported for {architecture} "
            f"(supported: {', '.join(SUPPORTED_VARIANTS[architecture])})"
        )
    if variant == "lora":
        return NATIVE_MODULES[architecture], []
    algo = "locon" if variant == "dora" else variant
    args = [f"algo={algo}", f"conv_dim={max(1, dim // 2)}", f"conv_alpha={max(1.0, alpha / 2)}"]
    if variant == "lokr":
        args = ["algo=lokr", "factor=-1", "full_matrix=True"] if architecture == "flux" else [*args, "factor=-1"]
    if variant == "dora":
        args.append("dora_wd=True")
    return "lycoris.kohya", args


def count_images(image_dir: Path) -> int:
    """Images sd-scripts would read from ``image_dir`` (it does not recurse by default)."""
    return len(list_images(image_dir))


def copy_dataset_toml(src: Path, dst: Path, resolution: int, batch_size: int) -> int:
    """Write the run's dataset TOML (absolute image_dir, our resolution); return the image count."""
    return prepare_dataset_toml(src, dst, resolution, batch_size)[0]


def prepare_dataset_toml(src: Path, dst: Path, resolution: int, batch_size: int,
                         caches_text: bool = False, roots: ReadRoots | None = None) -> tuple[int, list[str]]:
    """Write the run's dataset TOML; return (training image count, warnings).

    sd-scripts runs with the sd-scripts folder as its working directory, so relative image_dir
    entries are made absolute against the dataset folder (``read_dataset_toml``, which also keeps
    them inside ``roots`` when a workflow asked). Refuses what sd-scripts would only
    refuse after loading the model: no images, a resolution its bucketing cannot place the images
    at, caption options that clash with cached text-encoder outputs (``caches_text``).
    """
    data = read_dataset_toml(src, roots)
    images = 0
    for dataset in data.get("datasets", []):
        if resolution:
            dataset["resolution"] = resolution
        _fit_buckets(dataset)
        if batch_size:
            dataset["batch_size"] = batch_size
        files: list[Path] = []
        for subset in dataset.get("subsets", []):
            image_dir = Path(subset.get("image_dir") or src.parent)
            files += list_images(image_dir)
            if not subset.get("is_reg", False):
                images += count_images(image_dir)
        check_buckets(dataset, _image_sizes(files))
    general = data.setdefault("general", {})
    general.setdefault("caption_extension", ".txt")
    if images == 0:
        raise PreflightError(
            f"the dataset {src} has no training images in its image_dir folders; sd-scripts would "
            "'finish' without making a LoRA. Add images (or check the dataset writer's report)"
        )
    warnings = resolve_cached_text_conflicts(data) if caches_text else []
    atomic_write_text(dst, tomli_w.dumps(data))
    return images, warnings


def list_images(image_dir: Path) -> list[Path]:
    """Images sd-scripts would read from ``image_dir`` (it does not recurse by default)."""
    if not image_dir.is_dir():
        return []
    return [p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in TRAINER_SUFFIXES]


def _image_sizes(files: list[Path]) -> set[tuple[int, int]]:
    """Distinct (width, height) of ``files``, read from the headers only."""
    from ..media.images import image_size

    sizes = set()
    for path in files:
        height, width = image_size(path)
        sizes.add((width, height))
    return sizes


def _fit_buckets(dataset: dict[str, Any]) -> None:
    """Keep bucket limits around the resolution: sd-scripts asserts min_bucket_reso (256 by
    default) <= resolution <= max_bucket_reso, which a small training resolution breaks."""
    resolution = dataset.get("resolution")
    if not dataset.get("enable_bucket") or not isinstance(resolution, int):
        return
    dataset["min_bucket_reso"] = min(int(dataset.get("min_bucket_reso", 256)), resolution)
    dataset["max_bucket_reso"] = max(int(dataset.get("max_bucket_reso", 1024)), resolution)


def resolve_model_file(name: str, folders: Sequence[Path], what: str) -> Path:
    """An existing ``.safetensors`` inside one of ``folders``; never an arbitrary path.

    Pickle-based formats (.ckpt/.pt) are refused: sd-scripts would unpickle them.
    """
    if not name or name == "(none)":
        raise PreflightError(f"choose a {what}")
    if name_problem(name) is not None:
        raise PreflightError(f"{what} {name!r} must be a file listed in ComfyUI's model folders")
    if Path(name).suffix.lower() != ".safetensors":
        raise PreflightError(f"{what} {name!r} is not a .safetensors file (pickle formats are refused)")
    for folder in folders:
        try:
            candidate = inside_by_name(Path(folder), name)  # a symlinked model is followed
        except ValueError:
            continue
        if candidate.is_file():
            return candidate
    where = ", ".join(str(f) for f in folders) or "models/checkpoints"
    raise ModelMissingError(f"{what} not found: put {name} in {where}")


def check_tokenizers(install: TrainerInstall, architecture: str) -> Path:
    """The tokenizer cache sd-scripts will read offline; an error with the fix if incomplete."""
    cache = install.tokenizer_cache_dir
    if cache is None:
        raise PreflightError(
            "no tokenizer cache configured: set KOHYA_TOKENIZER_CACHE or \"tokenizer_cache_dir\" in "
            "trainer.json (sd-scripts would try to download tokenizers); see docs/training.md"
        )
    problems = [p for model_id in TOKENIZERS[architecture] for p in tokenizer_problems(cache, model_id)]
    if problems:
        raise PreflightError(
            "tokenizers are not ready in the offline cache: " + "; ".join(problems)
            + ". Build CLIP-L with `lora-foundry tokenizers --cache " + str(cache) + "` and copy the others "
            "(see docs/training.md)")
    return cache


def latest_state(run_dir: Path, output_name: str) -> Path:
    """The newest ``<name>-…state`` folder sd-scripts saved with ``save_state``."""
    states = sorted((p for p in run_dir.glob(f"{output_name}*-state") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not states:
        raise PreflightError(f"no saved state to resume in {run_dir}: train once with save_state on")
    return states[-1]


def _train_options(request: TrainRequest, name: str, module: str, net_args: list[str]) -> dict[str, Any]:
    p = request.preset
    options: dict[str, Any] = {
        "learning_rate": p.learning_rate, "max_train_steps": p.max_train_steps,
        "lr_scheduler": p.lr_scheduler, "lr_warmup_steps": p.lr_warmup_steps,
        "optimizer_type": p.optimizer_type, "mixed_precision": p.mixed_precision,
        "seed": request.seed, "network_module": module, "network_dim": p.network_dim,
        "network_alpha": float(p.network_alpha), "output_name": name, "save_model_as": "safetensors",
        "cache_latents": True, "sdpa": True, "max_data_loader_n_workers": 0,
    }
    if net_args:
        options["network_args"] = net_args
    options.update(ARCH_DEFAULTS.get(request.architecture, {}))
    if request.save_every_n_steps:
        options["save_every_n_steps"] = request.save_every_n_steps
    if request.save_state:
        options["save_state"] = True
    return options


def plan_run(request: TrainRequest, install: TrainerInstall, run_root: Path, loras_dir: Path, dry_run: bool = False) -> RunPlan:
    """Check everything, write the run's TOMLs and command file, and return what to launch."""
    one_of(request.architecture, sorted(SCRIPTS), "architecture", PreflightError)
    name = safe_name(request.output_name, "output name")
    check_install(install, request.architecture)
    tokenizer_cache = check_tokenizers(install, request.architecture)
    module, net_args = network_settings(request.architecture, request.variant, request.preset.network_dim,
                                        request.preset.network_alpha)
    warnings = _lycoris_warnings(install, request, module, dry_run)
    if not request.base_model.is_file():
        raise ModelMissingError(f"base model {request.base_model} does not exist")
    for key in REQUIRED_EXTRAS.get(request.architecture, ()):
        if key not in request.extra_models:
            raise PreflightError(f"{request.architecture} training needs a {key} model file; choose one")
    final_lora = published_path(loras_dir, name)
    if not request.resume:
        refuse_published(final_lora)
    run_dir = confined(run_root, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    dataset_toml = run_dir / "dataset.toml"
    caches_text = bool({**ARCH_DEFAULTS.get(request.architecture, {}), **request.extra_options}
                       .get("cache_text_encoder_outputs"))
    images, dataset_warnings = prepare_dataset_toml(request.dataset_toml, dataset_toml, request.preset.resolution,
                                                    request.preset.train_batch_size, caches_text, request.data_roots)
    warnings += dataset_warnings
    config = _config_sections(request, install, name, module, net_args, run_dir, dataset_toml, tokenizer_cache)
    config_toml = run_dir / "run.toml"
    atomic_write_text(config_toml, tomli_w.dumps(config))
    argv = install.command(request.architecture, config_toml)
    command_txt = run_dir / "command.txt"
    atomic_write_text(command_txt, " ".join(_quote(a) for a in argv) + "\n")
    spec = LaunchSpec(
        argv=argv, cwd=install.sd_scripts_dir, env={**_child_env(install), RUN_DIR_ENV: str(run_dir.resolve())},
        output_file=run_dir / f"{name}.safetensors",
        log_path=run_dir / f"{name}.log", loss_path=run_dir / f"{name}.loss", sample_dir=run_dir / "sample",
        checkpoint_glob=f"{name}-*.safetensors",  # sd-scripts' step and epoch files: <name>-step00000050, <name>-000001
        expected_metadata={"ss_network_module": module, "ss_network_dim": str(request.preset.network_dim),
                           "ss_output_name": name},
    )
    return RunPlan(spec, run_dir, config_toml, dataset_toml, command_txt, final_lora, images, config, tuple(warnings))


def _lycoris_warnings(install: TrainerInstall, request: TrainRequest, module: str, dry_run: bool) -> list[str]:
    """Refuse a missing or broken LyCORIS before launch; a dry run reports it instead."""
    if module != "lycoris.kohya":
        return []
    try:
        check_lycoris(install, request.architecture, request.variant)
    except PreflightError as exc:
        if not dry_run:
            raise
        return [f"a real run would be refused: {exc}"]
    return []


def _config_sections(request: TrainRequest, install: TrainerInstall, name: str, module: str, net_args: list[str],
                     run_dir: Path, dataset_toml: Path, tokenizer_cache: Path) -> dict[str, Any]:
    """The ``--config_file`` contents, grouped in sections (sd-scripts flattens them)."""
    model: dict[str, Any] = {"pretrained_model_name_or_path": str(request.base_model),
                             "tokenizer_cache_dir": str(tokenizer_cache)}
    takes = REQUIRED_EXTRAS.get(request.architecture, ()) + OPTIONAL_EXTRAS.get(request.architecture, ())
    for key, _ in table_problems(request.extra_models, dict.fromkeys(takes, str)):
        raise PreflightError(f"{request.architecture} takes no {key} model")
    model.update({key: str(path) for key, path in request.extra_models.items()})
    training = _train_options(request, name, module, net_args)
    clash = {"network_module", "network_args", "output_name", "save_model_as"} & set(request.extra_options)
    if clash:
        raise OptionRefused(f"options {sorted(clash)} are set by the node itself")
    training.update(request.extra_options)
    paths: dict[str, Any] = {"output_dir": str(run_dir), "dataset_config": str(dataset_toml),
                             "logging_dir": str(run_dir / "logs")}
    if request.sample_prompts.strip():
        prompts = run_dir / "sample_prompts.txt"
        atomic_write_text(prompts, request.sample_prompts.strip() + "\n")
        paths["sample_prompts"] = str(prompts)
        training.setdefault("sample_every_n_steps", request.sample_every_n_steps or max(1, request.preset.max_train_steps // 4))
    if request.resume:
        paths["resume"] = str(latest_state(run_dir, name))
    return {"model": model, "paths": paths, "training": training}


def _child_env(install: TrainerInstall) -> dict[str, str]:
    """The trainer's environment: ours, unbuffered, offline, plus the operator's additions."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONPATH", "VIRTUAL_ENV"))}
    env.update({"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1", "PYTHONIOENCODING": "utf-8"})
    env.update(install.env)
    return env


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)
