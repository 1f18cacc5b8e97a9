"""Train a video LoRA with musubi-tuner: cache latents, cache text-encoder outputs, train.

The three steps of musubi-tuner's docs, each a child process run by the sd-scripts launcher core
(``kohya/launcher.run_training``: its own process group, live loss from the same tqdm ``steps`` bar
musubi prints, cancel by SIGINT then SIGTERM then SIGKILL of the group, the log's end on failure).
A step succeeds only when it did its job: the caching steps exit 0 AND leave one cache file per
clip (musubi names them ``<clip>_<WxH>_<arch>.safetensors`` and ``<clip>_<arch>_te.safetensors``);
training exits 0 AND writes a safetensors LoRA with the network module asked for. A failure names
its step. Caches already complete are not recomputed (musubi's own ``--skip_existing`` does the same
per file) when the same step made them with the same flags and model files (``cache_stamp``, kept in
each cache folder): musubi names a text-to-video and an image-to-video latent cache alike, and a
replaced VAE keeps its file name. The argument lists come from fixed presets and the operator's
install; a workflow sets only numbers and names.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..bounded import parse_json_file, parse_toml_file
from ..fileio import atomic_write_text
from ..kohya.launcher import LaunchSpec, TrainingFailed, TrainResult, run_training
from ..kohya.publish import publish_lora, refuse_published
from ..paths import safe_name
from ..progress import Progress
from ..stages.clips.rules import rule_for
from .install import MusubiInstall, Preset, check_musubi

STEPS = ("cache_latents", "cache_text", "train")
STAMP_NAME = "lora_foundry_{step}.json"  # in each cache folder: what made its caches (cache_stamp)


@dataclass(frozen=True)
class MusubiRequest:
    """What a workflow may choose: preset, dataset, output name and plain numbers."""

    preset: str
    dataset_toml: Path
    output_name: str
    clips: int
    network_dim: int = 32
    learning_rate: float = 2e-4
    max_train_epochs: int = 16
    save_every_n_epochs: int = 1
    seed: int = 42
    mixed_precision: str = "bf16"


@dataclass
class MusubiOutcome:
    steps: dict[str, str]  # step -> "done" | "skipped" | "cancelled"
    result: TrainResult | None
    lora_path: Path | None
    run_dir: Path
    report_path: Path
    published: Path | None = None  # the copy in the loras folder, when the caller asked for one


def _step_roles(preset: Preset, step: str) -> tuple[str, ...]:
    """The model roles a step loads (the same for its command line and its cache stamp)."""
    return {"cache_latents": preset.latent_models, "cache_text": preset.text_models}.get(step, preset.train_models)


def _model_args(install: MusubiInstall, preset: Preset, roles: tuple[str, ...]) -> list[str]:
    """``--<role> <file>`` for each model a step needs, from the preset's roles and the operator's files
    (the same roles ``check_musubi`` checks before anything runs)."""
    return [arg for role in roles for arg in (f"--{role}", str(install.model(preset, role)))]


def _step_argv(install: MusubiInstall, preset: Preset, step: str, request: MusubiRequest, out_dir: Path
               ) -> tuple[str, ...]:
    toml = ("--dataset_config", str(request.dataset_toml))
    if step == "cache_latents":
        extra = ["--i2v"] if preset.i2v else []
        extra += ["--vae_chunk_size", "32", "--vae_tiling"] if preset.architecture == "hv" else []
        return (str(install.python), str(install.script(preset.cache_latents)), *toml,
                *_model_args(install, preset, _step_roles(preset, step)), *extra)
    if step == "cache_text":
        return (str(install.python), str(install.script(preset.cache_text)), *toml,
                *_model_args(install, preset, _step_roles(preset, step)), "--batch_size", "16")
    task = ("--task", preset.task) if preset.task else ()
    launch = (str(install.python), "-m", "accelerate.commands.launch", "--num_cpu_threads_per_process", "1",
              "--mixed_precision", request.mixed_precision) if install.accelerate else (str(install.python),)
    return (*launch, str(install.script(preset.train)), *task,
            *_model_args(install, preset, _step_roles(preset, step)), *toml,
            "--sdpa", "--mixed_precision", request.mixed_precision, "--fp8_base", "--optimizer_type", "adamw8bit",
            "--learning_rate", repr(float(request.learning_rate)), "--gradient_checkpointing",
            "--max_data_loader_n_workers", "2", "--persistent_data_loader_workers",
            "--network_module", preset.network_module, "--network_dim", str(int(request.network_dim)),
            "--timestep_sampling", "shift", "--discrete_flow_shift", repr(preset.flow_shift),
            "--max_train_epochs", str(int(request.max_train_epochs)),
            "--save_every_n_epochs", str(int(request.save_every_n_epochs)), "--seed", str(int(request.seed)),
            "--output_dir", str(out_dir), "--output_name", request.output_name)


def cache_directories(dataset_toml: Path) -> list[Path]:
    """The clip datasets' cache folders (the TOML lies in the output folder: read bounded)."""
    config = parse_toml_file(dataset_toml, f"video dataset {dataset_toml.parent.name}/{dataset_toml.name}")
    datasets = config.get("datasets")
    return [Path(d["cache_directory"]) for d in (datasets if isinstance(datasets, list) else [])
            if isinstance(d, dict) and d.get("video_directory") and isinstance(d.get("cache_directory"), str)]


def cached(folders: Sequence[Path], preset: Preset, step: str) -> int:
    """How many cache files of ``step`` the video cache ``folders`` (``cache_directories``) hold
    (musubi's names: latents end in ``_<arch>.safetensors``, text-encoder outputs in
    ``_<arch>_te.safetensors``)."""
    ending = f"_{preset.architecture}_te.safetensors" if step == "cache_text" else f"_{preset.architecture}.safetensors"
    return sum(1 for folder in folders if folder.is_dir()
               for path in folder.iterdir() if path.name.endswith(ending))


def cache_stamp(install: MusubiInstall, preset: Preset, step: str, request: MusubiRequest) -> dict[str, str]:
    """What a caching step's files depend on: its script and flags (``--i2v`` among them) and each
    model file it loads, by path, size and time (a VAE replaced under the same name makes others);
    kept as a digest, so the cache folder (in the output folder) shows no server path."""
    argv = _step_argv(install, preset, step, request, Path())
    flags = [arg for arg in argv[2:] if arg not in ("--dataset_config", str(request.dataset_toml))]
    files = [(path, path.stat()) for path in (install.model(preset, role) for role in _step_roles(preset, step))]
    made_by = {"script": Path(argv[1]).name, "flags": flags,
               "files": [[str(path), stat.st_size, stat.st_mtime_ns] for path, stat in files]}
    return {"made_by": hashlib.sha256(json.dumps(made_by, sort_keys=True).encode("utf-8")).hexdigest()}


def _stamped(folders: Sequence[Path], step: str, stamp: dict[str, str]) -> bool:
    """Every cache folder says ``stamp`` made its ``step`` caches (a folder an earlier version filled,
    or a stamp a client rewrote, does not: the caches are made again)."""
    for folder in folders:
        try:
            if parse_json_file(folder / STAMP_NAME.format(step=step), f"cache stamp {folder.name}") != stamp:
                return False
        except (OSError, ValueError):
            return False
    return True


def _spec(install: MusubiInstall, preset: Preset, step: str, request: MusubiRequest, run_dir: Path) -> LaunchSpec:
    script = {"cache_latents": preset.cache_latents, "cache_text": preset.cache_text, "train": preset.train}[step]
    output = run_dir / f"{request.output_name}.safetensors" if step == "train" else None
    return LaunchSpec(argv=_step_argv(install, preset, step, request, run_dir), cwd=install.root,
                      env={**os.environ, **install.env}, output_file=output, log_path=run_dir / f"{step}.log",
                      loss_path=run_dir / f"{step}_loss", trainer=f"musubi-tuner {script}",
                      expected_metadata={"ss_network_module": preset.network_module} if step == "train" else {})


def _run_step(spec: LaunchSpec, step: str, progress: Progress | None, on_event: Callable[[Any], None] | None,
              should_stop: Callable[[], bool] | None) -> TrainResult:
    try:
        return run_training(spec, progress=progress, on_event=on_event, should_stop=should_stop)
    except TrainingFailed as failed:
        raise TrainingFailed(f"step {step} failed: {failed.reason}", failed.log_tail, failed.returncode) from failed


def check_clip_rate(preset: Preset, fps: float) -> None:
    """musubi-tuner reads clips frame by frame: refuse clips cut for another model's rate."""
    wanted = rule_for(preset.clip_model).fps
    if fps != wanted:
        raise ValueError(f"the clips are at {fps:g} fps but {preset.name} trains at {wanted:g} fps: cut them "
                         f"for the {preset.clip_model} model")


def train_video_lora(install: MusubiInstall, preset: Preset, request: MusubiRequest, run_root: Path,
                     progress: Progress | None = None, on_event: Callable[[Any], None] | None = None,
                     should_stop: Callable[[], bool] | None = None, published: Path | None = None) -> MusubiOutcome:
    """Run the three steps in order (caches already complete are skipped); see the module docstring.
    The dataset TOML is read once, here, for the cache checks before and after both caching steps.
    ``published`` (``kohya.publish.published_path``) is refused when taken before any step runs, and
    receives the verified LoRA, as kohya's and LECO's launches publish theirs."""
    check_musubi(install, preset)
    if published is not None:
        refuse_published(published)
    folders = cache_directories(request.dataset_toml)
    # the one plain name for the run folder, musubi's --output_name and the LoRA file
    request = replace(request, output_name=safe_name(request.output_name, "output name"))
    run_dir = run_root / request.output_name
    run_dir.mkdir(parents=True, exist_ok=True)
    steps: dict[str, str] = {}
    outcome = MusubiOutcome(steps, None, None, run_dir, run_dir / "report.json")
    try:
        for step in STEPS:
            stamp = cache_stamp(install, preset, step, request) if step != "train" else {}  # no cache: no stamp
            if stamp and cached(folders, preset, step) >= request.clips and _stamped(folders, step, stamp):
                steps[step] = "skipped"
                continue
            result = _run_step(_spec(install, preset, step, request, run_dir), step, progress, on_event, should_stop)
            if result.status == "cancelled":
                steps[step] = "cancelled"
                outcome.result = result
                return outcome
            made = cached(folders, preset, step) if step != "train" else request.clips
            if made < request.clips:
                raise TrainingFailed(f"step {step} failed: musubi-tuner exited 0 but cached "
                                     f"{made} of {request.clips} clips", [], 0)
            for folder in folders if stamp else ():
                atomic_write_text(folder / STAMP_NAME.format(step=step), json.dumps(stamp) + "\n")
            steps[step] = "done"
            outcome.result = result
        outcome.lora_path = outcome.result.lora_path if outcome.result else None
        if published is not None and outcome.lora_path is not None:
            outcome.published = publish_lora(outcome.lora_path, published, replace_existing=False)
        return outcome
    except TrainingFailed as failed:
        steps[next(s for s in STEPS if s not in steps)] = f"failed: {failed.reason}"
        raise
    finally:
        atomic_write_text(outcome.report_path, json.dumps(describe(outcome), indent=1) + "\n")


def describe(outcome: MusubiOutcome) -> dict[str, Any]:
    """What ran and how it ended, for the report file and the node's summary."""
    result = outcome.result
    return {"steps": outcome.steps, "lora": str(outcome.lora_path) if outcome.lora_path else None,
            "published": str(outcome.published) if outcome.published else None,
            "status": result.status if result else None,
            "steps_done": result.steps_done if result else 0, "total_steps": result.total_steps if result else 0,
            "loss_curve": result.loss_curve if result else [], "logs": str(outcome.run_dir)}
