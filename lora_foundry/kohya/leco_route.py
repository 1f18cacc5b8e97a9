"""The same LECO prompt TOML through the operator's sd-scripts (``train_leco.py`` / ``sdxl_train_leco.py``).

sd-scripts gained LECO after 48d368f (the commit docs/training.md pins for LoRA training), so the
script is looked for first and a missing one is a clear message naming the LECO pin rather than a
crash in the child. The run goes through the launcher like every kohya run: its progress, cancel and
honest-success rules (exit 0 AND the LoRA file with the metadata ``train_leco.py`` writes:
``ss_network_module``, ``ss_network_dim``, ``ss_leco_prompts_file``). Upstream's loader reads
neutral prompt files beside the prompt TOML, so the files the TOML names are copied beside our copy
of it; the run is offline, so ``tokenizer_cache_dir`` is set as for every kohya run. The loss the
bar shows is the step's own (``loss=``), its checkpoints are ``<name>-step00000050.safetensors``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ..choices import one_of
from ..fileio import atomic_copy, atomic_write_text
from ..leco.prompts import PromptSet, read_prompt_set
from ..leco.train import LecoConfig
from ..paths import UnsafeNameError, confined, safe_name
from ..progress import Progress
from ..read_roots import ReadRoots
from .doctor import LECO_PIN, LORA_PIN
from .launcher import LaunchSpec, TrainResult, kept_checkpoints, run_training
from .operator_config import TrainerInstall
from .publish import publish_lora, published_path, refuse_published
from .train_config import PreflightError, _child_env, _quote, check_tokenizers
from .training import REPORT_NAME, failure_reason

LECO_SCRIPTS = {"sd15": "train_leco.py", "sd2": "train_leco.py", "sdxl": "sdxl_train_leco.py"}
PROMPTS_FILE = "prompts.toml"
LECO_RUNS = "leco_training"  # runs go to <output>/lora_foundry/leco_training/<name>/ (node and command line)
PRECISIONS = ("no", "fp16", "bf16")
ATTENTION = {"sdpa": "sdpa", "xformers": "xformers", "mem_eff_attn": "mem_eff_attn", "default": None}


class LecoUnsupported(PreflightError):
    """The operator's sd-scripts has no LECO script for this architecture."""


@dataclass(frozen=True)
class LecoRequest:
    """One kohya LECO run: the base model, the prompt TOML text, the network's size, the training
    settings (the in-graph trainer's own type, ``leco.train.LecoConfig``: one settings type for both
    routes; ``max_grad_norm``, ``resume`` and ``denoise_gradients`` are the in-graph trainer's only,
    sd-scripts always backpropagates through the denoise), and what only sd-scripts takes."""

    architecture: str
    base_model: Path
    prompts_toml: str
    output_name: str
    rank: int = 4
    alpha: float = 1.0
    training: LecoConfig = LecoConfig()
    mixed_precision: str = "no"  # sd-scripts' default; fp16/bf16 need a GPU that has them
    attention: str = "sdpa"
    gradient_checkpointing: bool = False
    zero_terminal_snr: bool = False
    prompts_dir: Path | None = None  # where the TOML's neutral prompt files are read (the TOML's folder)
    read_roots: ReadRoots | None = None  # folders those files may come from (default: prompts_dir)


@dataclass(frozen=True)
class LecoPlan:
    """A planned kohya LECO run: the launch, where the verified LoRA is published, and what it was
    planned with: the checkpoint interval, the prompt set, the command line and the warnings (the
    reports and the node's stack use these; the files written beside the run are never read back)."""

    spec: LaunchSpec
    final: Path
    save_every: int
    prompt_set: PromptSet
    command: str
    warnings: tuple[str, ...]


def leco_script(install: TrainerInstall, architecture: str) -> Path:
    """The LECO script of ``architecture`` in the operator's sd-scripts, or ``LecoUnsupported``."""
    if architecture not in LECO_SCRIPTS:
        raise LecoUnsupported(f"sd-scripts has LECO for {', '.join(sorted(LECO_SCRIPTS))} only, not {architecture!r}")
    script = install.sd_scripts_dir / LECO_SCRIPTS[architecture]
    if not script.is_file():
        raise LecoUnsupported(
            f"the sd-scripts at {install.sd_scripts_dir} has no {script.name}: LECO came to sd-scripts after "
            f"{LORA_PIN[:7]}, the commit docs/training.md pins for LoRA training. For LECO check out {LECO_PIN[:8]} "
            f"(git fetch && git checkout {LECO_PIN[:8]}; see docs/leco.md), or train inside ComfyUI with LF Train "
            "LECO, which reads the same TOML")
    return script


def _options(request: LecoRequest) -> dict[str, Any]:
    """Precision, attention, checkpointing and the loss options, as train_leco.py names them."""
    one_of(request.mixed_precision, PRECISIONS, "mixed_precision", PreflightError)
    one_of(request.attention, ATTENTION, "attention", PreflightError)
    options: dict[str, Any] = {"mixed_precision": request.mixed_precision}
    if ATTENTION[request.attention]:
        options[ATTENTION[request.attention]] = True
    if request.gradient_checkpointing:
        options["gradient_checkpointing"] = True
    if request.training.min_snr_gamma > 0:
        options["min_snr_gamma"] = float(request.training.min_snr_gamma)
    if request.training.noise_offset > 0:
        options["noise_offset"] = float(request.training.noise_offset)
    if request.zero_terminal_snr:
        options["zero_terminal_snr"] = True
    return options


def _config(request: LecoRequest, name: str, run_dir: Path, prompts: Path, tokenizers: Path,
            options: dict[str, Any]) -> dict[str, Any]:
    """``--config_file`` sections (sd-scripts flattens them) with train_leco.py's own option names;
    ``options`` is ``_options(request)``, computed (and checked) once by ``plan_leco``."""
    training = request.training
    return {
        "model": {"pretrained_model_name_or_path": str(request.base_model), "tokenizer_cache_dir": str(tokenizers),
                  **({"v2": True} if request.architecture == "sd2" else {})},
        "network": {"network_module": "networks.lora", "network_dim": int(request.rank),
                    "network_alpha": float(request.alpha)},
        "training": {"prompts_file": str(prompts), "max_train_steps": int(training.steps),
                     "learning_rate": float(training.learning_rate), "seed": int(training.seed),
                     "max_denoising_steps": int(training.max_denoising_steps),
                     "leco_denoise_guidance_scale": float(training.denoise_guidance),
                     "save_every_n_steps": int(training.save_every), "save_model_as": "safetensors",
                     **options},
        "paths": {"output_dir": str(run_dir), "output_name": name},
    }


def plan_leco(request: LecoRequest, install: TrainerInstall, run_root: Path, loras_dir: Path) -> LecoPlan:
    """Check the install and the prompts, write ``prompts.toml``, ``run.toml`` and ``command.txt``;
    return the launch spec, where the finished LoRA will be published and the checkpoint interval."""
    script = leco_script(install, request.architecture)
    prompt_set = read_prompt_set(request.prompts_toml, "prompts_toml", request.prompts_dir, request.read_roots)
    name = safe_name(request.output_name, "output name")
    tokenizers = check_tokenizers(install, request.architecture)
    options = _options(request)  # checked before anything is written
    if not request.base_model.is_file():
        raise PreflightError(f"base model {request.base_model} does not exist")
    final = published_path(loras_dir, name)
    refuse_published(final)
    run_dir = confined(run_root, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    _copy_neutral_files(prompt_set, run_dir)
    prompts = atomic_write_text(run_dir / PROMPTS_FILE, request.prompts_toml)
    config_toml = atomic_write_text(run_dir / "run.toml",
                                    tomli_w.dumps(_config(request, name, run_dir, prompts, tokenizers, options)))
    warnings = tuple(_warnings(request, prompt_set))
    atomic_write_text(run_dir / "warnings.txt", "".join(f"{w}\n" for w in warnings))
    # train_leco.py declares --prompts_file required=True and parses the command line before it reads
    # --config_file: without it on the command line argparse stops (exit 2) before the config is read.
    argv = (str(install.python), *install.python_args, str(script), "--config_file", str(config_toml),
            "--prompts_file", str(prompts))
    command = " ".join(_quote(a) for a in argv)
    atomic_write_text(run_dir / "command.txt", command + "\n")
    spec = LaunchSpec(argv=argv, cwd=install.sd_scripts_dir, env=_child_env(install),
                      output_file=run_dir / f"{name}.safetensors", log_path=run_dir / f"{name}.log",
                      loss_path=run_dir / f"{name}.loss", checkpoint_glob=f"{name}-step*.safetensors",
                      expected_metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(request.rank),
                                         "ss_leco_prompts_file": PROMPTS_FILE})
    return LecoPlan(spec, final, int(request.training.save_every), prompt_set, command, warnings)


def _copy_neutral_files(prompt_set: PromptSet, run_dir: Path) -> None:
    """Put each neutral prompt file the TOML names beside our copy of it, where upstream's loader
    looks (``path.parent / name``); a name leading out of the run folder is refused."""
    for written, source in prompt_set.files.items():
        try:
            target = confined(run_dir, *Path(written).parts)
        except UnsafeNameError as exc:
            raise PreflightError(f"neutral prompt file {written!r}: train_leco.py reads it beside the TOML, so for "
                                 f"this route it must be a name in or below the TOML's folder ({exc})") from None
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_copy(source, target)


def _warnings(request: LecoRequest, prompt_set: PromptSet) -> list[str]:
    """What train_leco.py will accept but not use as the user may think, said once in the report."""
    found = list(prompt_set.warnings)
    if request.architecture != "sdxl" and any(s.dynamic_crops for s in prompt_set.settings):
        found.append("dynamic_crops is used by sdxl_train_leco.py only (SDXL size conditioning); train_leco.py "
                     "ignores it")
    return found


def run_leco(request: LecoRequest, install: TrainerInstall, run_root: Path, loras_dir: Path,
             progress: Progress | None = None, on_event: Callable[[Any], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Plan, launch through the launcher, and publish the verified LoRA into ``loras_dir``."""
    return launch_leco(plan_leco(request, install, run_root, loras_dir), progress, on_event, should_stop)


def launch_leco(plan: LecoPlan, progress: Progress | None = None, on_event: Callable[[Any], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Run a planned LECO launch and publish the verified LoRA at ``plan.final`` (callers that show
    the plan first, or stop at a dry run, call ``plan_leco`` and then this)."""
    spec = plan.spec
    report = spec.log_path.parent / REPORT_NAME
    try:
        result = run_training(spec, progress=progress, on_event=on_event, should_stop=should_stop)
    except BaseException as exc:  # a failure or an abort (a second Ctrl-C) still leaves its report
        kept = kept_checkpoints(spec)
        listed = f"checkpoints on disk ({len(kept)}): {', '.join(map(str, kept))}\n" if kept else ""
        atomic_write_text(report, f"failed: {failure_reason(exc)}\n{listed}{describe_leco(None, plan, launched=True)}\n")
        raise
    if result.status == "success" and result.lora_path is not None:
        result.lora_path = publish_lora(result.lora_path, plan.final, replace_existing=False)
    atomic_write_text(report, describe_leco(result, plan) + "\n")
    return result


def describe_leco(result: TrainResult | None, plan: LecoPlan, launched: bool = False) -> str:
    """A short human report of a kohya LECO run (``None`` = a dry run, or a failed one when
    ``launched``): the exact command, how it ended, where the LoRA, the kept checkpoints, the log and
    the loss curve are, and what the prompt file had that was ignored."""
    spec = plan.spec
    run_dir = spec.log_path.parent
    lines = [f"command: {plan.command}", f"config: {run_dir / 'run.toml'}", f"prompts: {run_dir / PROMPTS_FILE}"]
    lines += [f"WARNING: {w}" for w in plan.warnings]
    if result is None:
        return "\n".join([*lines, f"log: {spec.log_path}"] if launched else ["dry run: nothing was launched", *lines])
    speed = f"{result.steps_per_s:.3f} steps/s" if result.steps_per_s else "speed unknown"
    lines.insert(0, f"{result.status}: {result.steps_done}/{result.total_steps} steps in {result.elapsed_s:.1f} s "
                    f"({speed})")
    if result.lora_path:
        lines.append(f"LoRA: {result.lora_path}")
    if result.status == "cancelled":
        lines.append(_kept(result, plan.save_every))
    if result.loss_curve:
        lines.append(f"last step's loss: {result.loss_curve[-1][1]:.4g} (step {result.loss_curve[-1][0]})")
    lines += [f"log: {result.log_path}", f"loss curve: {result.loss_path}.csv / .json"]
    return "\n".join(lines)


def _kept(result: TrainResult, every: int) -> str:
    """The checkpoints a cancel kept, or why there are none (advice only when save_every was off)."""
    if result.checkpoints:
        return f"kept checkpoints ({len(result.checkpoints)}): " + ", ".join(str(p) for p in result.checkpoints)
    if every:
        return f"no checkpoint was saved before the cancel (the first was due at step {every})"
    return "no checkpoint was saved before the cancel (set save_every to keep intermediate LoRAs)"
