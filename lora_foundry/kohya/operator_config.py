"""Where sd-scripts and its Python live: decided by the server operator, never by a workflow.

Workflows are shared as JSON and queued over HTTP. If a workflow could name the trainer's folder,
its Python or free-form arguments, loading a stranger's workflow would run a program of the
stranger's choice. So the install comes only from the server's environment (``KOHYA_SD_SCRIPTS``,
``KOHYA_PYTHON``, ``KOHYA_TOKENIZER_CACHE``) or from ``<ComfyUI user dir>/lora_foundry/trainer.json``;
script names come from a fixed table; a workflow's extra options go through an allow-list of
sd-scripts training options with typed, validated values (``validate_extra_options``).
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..choices import one_of
from .toml_schema import table_problems

SD_SCRIPTS_ENV = "KOHYA_SD_SCRIPTS"
PYTHON_ENV = "KOHYA_PYTHON"
TOKENIZER_CACHE_ENV = "KOHYA_TOKENIZER_CACHE"
CONFIG_RELPATH = ("lora_foundry", "trainer.json")

SCRIPTS: Mapping[str, str] = {
    "sd15": "train_network.py",
    "sd2": "train_network.py",
    "sdxl": "sdxl_train_network.py",
    "flux": "flux_train_network.py",
    "sd3": "sd3_train_network.py",
}


class TrainerNotConfigured(RuntimeError):
    """The operator has not told us where sd-scripts is (or told us wrongly)."""


class OptionRefused(ValueError):
    """A workflow asked for a training option that is not on the allow-list or has a bad value."""


@dataclass(frozen=True)
class TrainerInstall:
    """An sd-scripts checkout and the interpreter of its own virtual environment."""

    sd_scripts_dir: Path
    python: Path
    python_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    tokenizer_cache_dir: Path | None = None
    source: str = ""

    def script(self, architecture: str) -> Path:
        """The training script for ``architecture``, from the fixed table only."""
        return self.sd_scripts_dir / SCRIPTS[one_of(architecture, sorted(SCRIPTS), "architecture", OptionRefused)]

    def command(self, architecture: str, config_toml: Path) -> tuple[str, ...]:
        """The exact argument list: python, operator's wrapper args, script, ``--config_file``."""
        return (str(self.python), *self.python_args, str(self.script(architecture)), "--config_file", str(config_toml))


def load_trainer_install(user_dir: Path | None, environ: Mapping[str, str] | None = None) -> TrainerInstall:
    """The operator's sd-scripts install: environment variables first, then ``trainer.json``."""
    environ = os.environ if environ is None else environ
    if environ.get(SD_SCRIPTS_ENV):
        root = Path(environ[SD_SCRIPTS_ENV]).expanduser()
        python = Path(environ[PYTHON_ENV]).expanduser() if environ.get(PYTHON_ENV) else root / "venv" / "bin" / "python"
        cache = environ.get(TOKENIZER_CACHE_ENV)
        return TrainerInstall(root, python, tokenizer_cache_dir=Path(cache) if cache else None, source=f"${SD_SCRIPTS_ENV}")
    config_path = Path(user_dir, *CONFIG_RELPATH) if user_dir is not None else None
    if config_path is None or not config_path.is_file():
        raise TrainerNotConfigured(
            f"sd-scripts is not configured: set {SD_SCRIPTS_ENV} (and optionally {PYTHON_ENV}) in the "
            f"server's environment, or write {config_path or '<user dir>/lora_foundry/trainer.json'} "
            '({"sd_scripts": "/path/to/sd-scripts", "python": "/path/to/sd-scripts/venv/bin/python"}); '
            "see docs/training.md"
        )
    return _install_from_json(config_path)


def read_operator_json(config_path: Path) -> dict[str, Any]:
    """An operator's trainer settings file (``trainer.json``, ``musubi.json``) as a JSON object, or
    the refusal that names it: a list or a number there is a mistake to fix, not a crash."""
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TrainerNotConfigured(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise TrainerNotConfigured(f"{config_path} is not valid: it must hold one JSON object {{...}}")
    return data


def _install_from_json(config_path: Path) -> TrainerInstall:
    data = read_operator_json(config_path)
    try:
        root = Path(data["sd_scripts"]).expanduser()
    except (KeyError, TypeError) as exc:
        raise TrainerNotConfigured(f"{config_path} is not valid: {exc}") from exc
    python = Path(data.get("python") or root / "venv" / "bin" / "python").expanduser()
    cache = data.get("tokenizer_cache_dir")
    return TrainerInstall(
        sd_scripts_dir=root,
        python=python,
        python_args=tuple(str(a) for a in data.get("python_args", [])),
        env={str(k): str(v) for k, v in data.get("env", {}).items()},
        tokenizer_cache_dir=Path(cache).expanduser() if cache else None,
        source=str(config_path),
    )


def check_folder_and_python(trainer: str, folder: Path, python: Path, where: str) -> None:
    """A trainer's checkout and its interpreter exist (sd-scripts, musubi-tuner), else the fix."""
    if not folder.is_dir():
        raise TrainerNotConfigured(f"{trainer} folder {folder} does not exist {where}")
    if not (python.is_file() and os.access(python, os.X_OK)):
        raise TrainerNotConfigured(f"{trainer} python {python} is not an executable file {where}")


def check_sd_scripts(install: TrainerInstall) -> None:
    """Fail, with the fix, if sd-scripts' folder or its python is missing (what every architecture
    needs: ``check_install`` adds the script, a node that only validates stops here)."""
    check_folder_and_python("sd-scripts", install.sd_scripts_dir, install.python, f"(configured by {install.source})")


def check_install(install: TrainerInstall, architecture: str) -> None:
    """Fail before launch, with the fix, if the folder, python or script is missing."""
    check_sd_scripts(install)
    script = install.script(architecture)
    if not script.is_file():
        raise TrainerNotConfigured(f"{script.name} not found in {install.sd_scripts_dir}: is this sd-scripts v0.9+? "
                                   f"(configured by {install.source})")


# --- the allow-list of options a workflow may set --------------------------------------------

Validator = Callable[[Any], Any]


def _number(kind: type, low: float, high: float) -> Validator:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionRefused(f"expected a number, got {value!r}")
        if kind is int and (not isinstance(value, int)):
            raise OptionRefused(f"expected a whole number, got {value!r}")
        if not (math.isfinite(value) and low <= value <= high):
            raise OptionRefused(f"{value!r} is outside {low}..{high}")
        return kind(value)

    return check


def _choice(*allowed: str | int) -> Validator:
    def check(value: Any) -> Any:
        typed = str(value).lower() if isinstance(value, bool) else value  # True == 1: a flag is no number
        return one_of(typed, allowed, "value", OptionRefused)

    return check


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise OptionRefused(f"expected true or false, got {value!r}")
    return value


_INT_STEPS = _number(int, 0, 1_000_000)
_RATE = _number(float, 0.0, 1.0)
_FRACTION = _number(float, 0.0, 1.0)

# Only options whose values are numbers, flags or fixed words: nothing that names a file, a
# folder, a module to import (optimizer_type / lr_scheduler_type accept "module.Class"), a URL,
# a logger or an upload target.
ALLOWED_OPTIONS: Mapping[str, Validator] = {
    "learning_rate": _RATE, "unet_lr": _RATE, "text_encoder_lr": _RATE,
    "max_train_steps": _number(int, 1, 1_000_000), "max_train_epochs": _number(int, 1, 100_000),
    "train_batch_size": _number(int, 1, 256), "gradient_accumulation_steps": _number(int, 1, 1024),
    "lr_warmup_steps": _INT_STEPS, "lr_scheduler_num_cycles": _number(int, 1, 1000),
    "lr_scheduler_power": _number(float, 0.0, 10.0),
    "lr_scheduler": _choice("linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                            "constant_with_warmup", "adafactor"),
    "optimizer_type": _choice("AdamW", "AdamW8bit", "Lion", "Lion8bit", "SGDNesterov", "SGDNesterov8bit",
                              "DAdaptation", "Prodigy", "Adafactor", "PagedAdamW8bit"),
    "mixed_precision": _choice("no", "fp16", "bf16"), "save_precision": _choice("float", "fp16", "bf16"),
    "network_dim": _number(int, 1, 1024), "network_alpha": _number(float, 0.0, 1024.0),
    "network_dropout": _FRACTION, "scale_weight_norms": _number(float, 0.0, 100.0),
    "network_train_unet_only": _flag, "network_train_text_encoder_only": _flag,
    "gradient_checkpointing": _flag, "cache_latents": _flag, "cache_latents_to_disk": _flag,
    "cache_text_encoder_outputs": _flag, "full_fp16": _flag, "full_bf16": _flag, "fp8_base": _flag,
    "sdpa": _flag, "xformers": _flag, "mem_eff_attn": _flag, "lowram": _flag, "no_half_vae": _flag,
    "noise_offset": _number(float, 0.0, 1.0), "multires_noise_iterations": _number(int, 0, 64),
    "multires_noise_discount": _FRACTION, "min_snr_gamma": _number(float, 0.0, 100.0),
    "max_grad_norm": _number(float, 0.0, 100.0), "clip_skip": _number(int, 1, 12),
    "max_token_length": _choice(75, 150, 225),
    "max_data_loader_n_workers": _number(int, 0, 64), "persistent_data_loader_workers": _flag,
    "save_every_n_steps": _number(int, 1, 1_000_000), "save_every_n_epochs": _number(int, 1, 100_000),
    "save_last_n_steps": _number(int, 1, 1_000_000), "save_state": _flag,
    "sample_every_n_steps": _number(int, 1, 1_000_000), "sample_every_n_epochs": _number(int, 1, 100_000),
    "sample_sampler": _choice("ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a",
                              "dpmsolver", "dpmsolver++", "dpmsingle", "k_lms", "k_euler", "k_euler_a",
                              "k_dpm_2", "k_dpm_2_a"),
    "seed": _number(int, 0, 2**32 - 1), "guidance_scale": _number(float, 0.0, 100.0),
    "timestep_sampling": _choice("sigma", "uniform", "sigmoid", "shift", "flux_shift"),
    "discrete_flow_shift": _number(float, 0.0, 100.0), "sigmoid_scale": _number(float, 0.0, 100.0),
    "model_prediction_type": _choice("raw", "additive", "sigma_scaled"),
    "weighting_scheme": _choice("sigma_sqrt", "logit_normal", "mode", "cosmap", "none", "uniform"),
    "t5xxl_max_token_length": _number(int, 1, 512), "apply_t5_attn_mask": _flag,
    "blocks_to_swap": _number(int, 0, 64),
}


# Options that say where things are written or read: LoRA Foundry sets them itself.
PATH_OPTIONS = ("output_dir", "output_name", "logging_dir", "dataset_config", "config_file", "sample_prompts",
                "resume", "save_model_as", "train_data_dir", "reg_data_dir", "pretrained_model_name_or_path",
                "tokenizer_cache_dir", "network_weights", "prompts_file")
_FLAG_LINE = re.compile(r"^\s*--?(?P<name>[A-Za-z_][\w-]*)")


def _refuse_path_option(key: str) -> None:
    if key in PATH_OPTIONS:
        raise OptionRefused(f"{key} is chosen by LoRA Foundry, not by extra options: runs go to "
                            "<output>/lora_foundry/training/<name>/ and LoRAs to models/loras/lora_foundry/ (on the "
                            "command line, --out chooses the output folder)")


def _refuse_flags(text: str) -> None:
    """``--output_dir /etc`` is a command-line flag, not an option line: say which, and what to write."""
    for line in text.splitlines():
        flag = _FLAG_LINE.match(line)
        if flag:
            key = flag["name"].replace("-", "_")
            _refuse_path_option(key)
            raise OptionRefused(f"extra options are TOML 'key = value' lines, not command-line flags: write "
                                f"{line.strip()!r} as '{key} = <value>'")


def validate_extra_options(text: str) -> dict[str, Any]:
    """Parse a workflow's extra options (TOML ``key = value`` lines) against the allow-list.

    Anything else — unknown keys, ``--``-prefixed keys, paths, tables, lists, wrong types — is
    refused with an error naming it; nothing is passed through unchecked.
    """
    if not text or not text.strip():
        return {}
    _refuse_flags(text)
    try:
        parsed = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise OptionRefused(f"extra options are not valid TOML 'key = value' lines: {exc}") from exc
    for key, problem in table_problems(parsed, ALLOWED_OPTIONS):
        _refuse_path_option(key)
        if problem is None:
            raise OptionRefused(
                f"training option {key!r} is not allowed from a workflow (only numbers, flags and fixed "
                "choices; paths and programs are set by the server operator, see docs/training.md)"
            )
        raise OptionRefused(f"training option {key!r}: {problem}")
    return {key: ALLOWED_OPTIONS[key](value) for key, value in parsed.items()}
