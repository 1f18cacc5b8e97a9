"""The same LECO prompt TOML through the operator's sd-scripts (``train_leco.py`` / ``sdxl_train_leco.py``).

sd-scripts gained LECO after the version many operators run, so the script is looked for first and
a missing one is a clear message (update sd-scripts, or train in ComfyUI with LF Train LECO) rather
than a crash in the child. The run goes through the launcher like every kohya run: its progress,
cancel and honest-success rules (exit 0 AND the LoRA file with the metadata ``train_leco.py`` writes:
``ss_network_module``, ``ss_network_dim``, ``ss_leco_prompts_file``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from ..fileio import atomic_write_text
from ..leco.prompts import parse_prompt_text
from ..leco.train import LecoConfig
from ..paths import confined, safe_name
from ..progress import Progress
from .launcher import LaunchSpec, TrainResult, run_training
from .operator_config import TrainerInstall
from .train_config import PreflightError, _child_env, _quote
from .training import publish_lora

LECO_SCRIPTS = {"sd15": "train_leco.py", "sd2": "train_leco.py", "sdxl": "sdxl_train_leco.py"}
PROMPTS_FILE = "prompts.toml"


class LecoUnsupported(PreflightError):
    """The operator's sd-scripts has no LECO script for this architecture."""


@dataclass(frozen=True)
class LecoRequest:
    """One kohya LECO run: the base model, the prompt TOML text, the network's size, and the training
    settings, which are the in-graph trainer's own type (``leco.train.LecoConfig``, one settings type
    for both routes; ``max_grad_norm`` and ``resume`` are the in-graph trainer's only)."""

    architecture: str
    base_model: Path
    prompts_toml: str
    output_name: str
    rank: int = 4
    alpha: float = 1.0
    training: LecoConfig = LecoConfig()


def leco_script(install: TrainerInstall, architecture: str) -> Path:
    """The LECO script of ``architecture`` in the operator's sd-scripts, or ``LecoUnsupported``."""
    if architecture not in LECO_SCRIPTS:
        raise LecoUnsupported(f"sd-scripts has LECO for {', '.join(sorted(LECO_SCRIPTS))} only, not {architecture!r}")
    script = install.sd_scripts_dir / LECO_SCRIPTS[architecture]
    if not script.is_file():
        raise LecoUnsupported(
            f"the sd-scripts at {install.sd_scripts_dir} has no {script.name} (LECO is newer than that checkout): "
            "update sd-scripts (git pull), or train inside ComfyUI with LF Train LECO, which reads the same TOML")
    return script


def _config(request: LecoRequest, name: str, run_dir: Path, prompts: Path) -> dict[str, Any]:
    """``--config_file`` sections (sd-scripts flattens them) with train_leco.py's own option names."""
    training = request.training
    return {
        "model": {"pretrained_model_name_or_path": str(request.base_model)},
        "network": {"network_module": "networks.lora", "network_dim": int(request.rank),
                    "network_alpha": float(request.alpha)},
        "training": {"prompts_file": str(prompts), "max_train_steps": int(training.steps),
                     "learning_rate": float(training.learning_rate), "seed": int(training.seed),
                     "max_denoising_steps": int(training.max_denoising_steps),
                     "leco_denoise_guidance_scale": float(training.denoise_guidance),
                     "save_every_n_steps": int(training.save_every), "save_model_as": "safetensors"},
        "paths": {"output_dir": str(run_dir), "output_name": name},
    }


def plan_leco(request: LecoRequest, install: TrainerInstall, run_root: Path, loras_dir: Path) -> tuple[LaunchSpec, Path]:
    """Check the install and the prompts, write ``prompts.toml``, ``run.toml`` and ``command.txt``;
    return the launch spec and where the finished LoRA will be published."""
    script = leco_script(install, request.architecture)
    parse_prompt_text(request.prompts_toml, "prompts_toml")  # refuse here what train_leco.py would refuse
    name = safe_name(request.output_name, "output name")
    if not request.base_model.is_file():
        raise PreflightError(f"base model {request.base_model} does not exist")
    final = confined(loras_dir, f"{name}.safetensors")
    if final.exists():
        raise PreflightError(f"a LoRA named {final.name} already exists in {loras_dir}; choose another output name")
    run_dir = confined(run_root, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    prompts = atomic_write_text(run_dir / PROMPTS_FILE, request.prompts_toml)
    config_toml = atomic_write_text(run_dir / "run.toml", tomli_w.dumps(_config(request, name, run_dir, prompts)))
    argv = (str(install.python), *install.python_args, str(script), "--config_file", str(config_toml))
    atomic_write_text(run_dir / "command.txt", " ".join(_quote(a) for a in argv) + "\n")
    spec = LaunchSpec(argv=argv, cwd=install.sd_scripts_dir, env=_child_env(install),
                      output_file=run_dir / f"{name}.safetensors", log_path=run_dir / f"{name}.log",
                      loss_path=run_dir / f"{name}.loss",
                      expected_metadata={"ss_network_module": "networks.lora", "ss_network_dim": str(request.rank),
                                         "ss_leco_prompts_file": PROMPTS_FILE})
    return spec, final


def run_leco(request: LecoRequest, install: TrainerInstall, run_root: Path, loras_dir: Path,
             progress: Progress | None = None, on_event: Callable[[Any], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Plan, launch through the launcher, and publish the verified LoRA into ``loras_dir``."""
    spec, final = plan_leco(request, install, run_root, loras_dir)
    return launch_leco(spec, final, progress, on_event, should_stop)


def launch_leco(spec: LaunchSpec, final: Path, progress: Progress | None = None,
                on_event: Callable[[Any], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Run a planned LECO launch and publish the verified LoRA at ``final`` (callers that show the
    plan first, or stop at a dry run, call ``plan_leco`` and then this)."""
    result = run_training(spec, progress=progress, on_event=on_event, should_stop=should_stop)
    if result.status == "success" and result.lora_path is not None:
        result.lora_path = publish_lora(result.lora_path, final, replace_existing=False)
    return result


def describe_leco(result: TrainResult | None, spec: LaunchSpec) -> str:
    """A short human report of a kohya LECO run (``None`` = a dry run): the exact command, how it
    ended, where the LoRA, the kept checkpoints, the log and the loss curve are."""
    run_dir = spec.log_path.parent
    lines = [f"command: {(run_dir / 'command.txt').read_text(encoding='utf-8').strip()}",
             f"config: {run_dir / 'run.toml'}", f"prompts: {run_dir / PROMPTS_FILE}"]
    if result is None:
        return "\n".join(["dry run: nothing was launched", *lines])
    speed = f"{result.steps_per_s:.3f} steps/s" if result.steps_per_s else "speed unknown"
    lines.insert(0, f"{result.status}: {result.steps_done}/{result.total_steps} steps in {result.elapsed_s:.1f} s "
                    f"({speed})")
    if result.lora_path:
        lines.append(f"LoRA: {result.lora_path}")
    if result.status == "cancelled":
        kept = ", ".join(str(p) for p in result.checkpoints)
        lines.append(f"kept checkpoints ({len(result.checkpoints)}): {kept}" if kept else
                     "no checkpoint was saved before the cancel (set save_every to keep intermediate LoRAs)")
    if result.loss_curve:
        lines.append(f"final avr_loss: {result.loss_curve[-1][1]:.4g} (step {result.loss_curve[-1][0]})")
    lines += [f"log: {result.log_path}", f"loss curve: {result.loss_path}.csv / .json"]
    return "\n".join(lines)
