"""Where musubi-tuner, its Python and the video models live: the server operator's choice only.

As for sd-scripts (``kohya/operator_config.py``), a workflow never names a folder, a program or a
model path: the install comes from ``MUSUBI_TUNER`` / ``MUSUBI_PYTHON`` or from
``<ComfyUI user dir>/lora_foundry/musubi.json``, which also lists the model files per preset::

    {"musubi_tuner": "/opt/musubi-tuner", "python": "/opt/musubi-tuner/.venv/bin/python",
     "accelerate": true,
     "models": {"wan21_t2v_1.3B": {"dit": "...", "vae": "...", "t5": "..."},
                "hunyuan_video": {"dit": "...", "vae": "...", "text_encoder1": "...", "text_encoder2": "..."}}}

Presets fix the scripts and arguments of musubi-tuner's docs (``docs/wan.md``,
``docs/hunyuan_video.md``): the caching scripts, the training script, ``--task``, the network module
and the models each step needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..choices import pick
from ..kohya.operator_config import TrainerNotConfigured, check_folder_and_python, read_operator_json

MUSUBI_ENV = "MUSUBI_TUNER"
PYTHON_ENV = "MUSUBI_PYTHON"
CONFIG_RELPATH = ("lora_foundry", "musubi.json")


@dataclass(frozen=True)
class Preset:
    """One model family's scripts and arguments, from musubi-tuner's docs."""

    name: str
    architecture: str  # musubi's short name: cache files end in _<architecture>.safetensors
    clip_model: str  # lora_foundry.stages.clips.rules model whose clips this trains on
    cache_latents: str
    cache_text: str
    train: str
    network_module: str
    task: str = ""
    i2v: bool = False
    latent_models: tuple[str, ...] = ("vae",)
    text_models: tuple[str, ...] = ()
    train_models: tuple[str, ...] = ("dit",)
    flow_shift: float = 3.0


_WAN = {"architecture": "wan", "clip_model": "wan", "cache_latents": "wan_cache_latents.py",
        "cache_text": "wan_cache_text_encoder_outputs.py", "train": "wan_train_network.py",
        "network_module": "networks.lora_wan", "text_models": ("t5",)}
PRESETS: Mapping[str, Preset] = {
    "wan21_t2v_1.3B": Preset("wan21_t2v_1.3B", task="t2v-1.3B", **_WAN),
    "wan21_t2v_14B": Preset("wan21_t2v_14B", task="t2v-14B", **_WAN),
    "wan21_i2v_14B": Preset("wan21_i2v_14B", task="i2v-14B", i2v=True, latent_models=("vae", "clip"), **_WAN),
    "wan22_t2v_A14B": Preset("wan22_t2v_A14B", task="t2v-A14B", **_WAN),
    "wan22_i2v_A14B": Preset("wan22_i2v_A14B", task="i2v-A14B", i2v=True, **_WAN),
    "hunyuan_video": Preset("hunyuan_video", "hv", "hunyuan_video", "cache_latents.py",
                            "cache_text_encoder_outputs.py", "hv_train_network.py", "networks.lora",
                            text_models=("text_encoder1", "text_encoder2"), flow_shift=7.0),
}


def preset_for(name: str) -> Preset:
    return pick(PRESETS, name, "musubi-tuner preset")


@dataclass(frozen=True)
class MusubiInstall:
    """A musubi-tuner checkout, its venv's Python and the operator's model files per preset."""

    root: Path
    python: Path
    accelerate: bool = True
    models: Mapping[str, Mapping[str, Path]] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    source: str = ""

    def script(self, name: str) -> Path:
        return self.root / "src" / "musubi_tuner" / name

    def model(self, preset: Preset, role: str) -> Path:
        path = self.models.get(preset.name, {}).get(role)
        if path is None:
            raise TrainerNotConfigured(f"no {role} model for {preset.name} in {self.source or 'musubi.json'}: add "
                                       f'"models": {{"{preset.name}": {{"{role}": "/path/to/file"}}}}')
        return Path(path)


def load_musubi_install(user_dir: Path | None, environ: Mapping[str, str] | None = None) -> MusubiInstall:
    """``musubi.json`` (models included) first; ``MUSUBI_TUNER``/``MUSUBI_PYTHON`` override the folders."""
    environ = os.environ if environ is None else environ
    config_path = Path(user_dir, *CONFIG_RELPATH) if user_dir is not None else None
    data: dict = {}
    if config_path is not None and config_path.is_file():
        data = read_operator_json(config_path)
    root = environ.get(MUSUBI_ENV) or data.get("musubi_tuner")
    if not root:
        raise TrainerNotConfigured(
            f"musubi-tuner is not configured: set {MUSUBI_ENV} (and {PYTHON_ENV}) in the server's environment "
            f"or write {config_path or '<user dir>/lora_foundry/musubi.json'} (see docs/video_loras.md)")
    root_path = Path(root).expanduser()
    python = environ.get(PYTHON_ENV) or data.get("python") or root_path / ".venv" / "bin" / "python"
    models = {str(preset): {str(role): Path(str(path)).expanduser() for role, path in roles.items()}
              for preset, roles in dict(data.get("models", {})).items()}
    return MusubiInstall(root_path, Path(python).expanduser(), bool(data.get("accelerate", True)), models,
                         {str(k): str(v) for k, v in dict(data.get("env", {})).items()},
                         source=str(config_path) if data else f"${MUSUBI_ENV}")


def check_musubi(install: MusubiInstall, preset: Preset) -> None:
    """Fail before any step runs, naming what is missing: folder, python, scripts, model files."""
    where = f"(configured by {install.source})"
    check_folder_and_python("musubi-tuner", install.root, install.python, where)
    for script in (preset.cache_latents, preset.cache_text, preset.train):
        if not install.script(script).is_file():
            raise TrainerNotConfigured(f"{script} not found in {install.root / 'src' / 'musubi_tuner'} {where}")
    for role in (*preset.latent_models, *preset.text_models, *preset.train_models):
        if not install.model(preset, role).is_file():
            raise TrainerNotConfigured(f"{preset.name} {role} model {install.model(preset, role)} does not exist {where}")
