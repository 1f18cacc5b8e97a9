"""LF Kohya Train LECO in a real ComfyUI server, running the operator's real sd-scripts
``train_leco.py`` on upstream's docs slider with ``neutral_prompt_file`` (docs/train_leco.md 2.3).

Skipped unless ``COMFYUI_DIR`` names a ComfyUI checkout (its Python: ``$COMFYUI_PYTHON`` or
``COMFYUI_DIR/venv/bin/python``) and ``KOHYA_SD_SCRIPTS`` an sd-scripts checkout with ``train_leco.py``
(its Python: ``$KOHYA_PYTHON`` or its ``venv``). The server gets its own base folder: the pack
linked into custom_nodes, the TOML and its neutral file in the input folder, the operator's
trainer.json (sd-scripts with kohya_real_assets' tiny-UNet wrapper and offline tokenizers) in the
user folder, and a random tiny-UNet SD1.5 checkpoint in models/checkpoints. What is checked is what
an operator sees: the queue item succeeds, the LoRA lands where ComfyUI lists it with sd-scripts'
LECO metadata (8 settings: upstream's expansion of the neutral file), the neutral file went with the
TOML, and the intermediate checkpoint sd-scripts saved is listed. CPU-bound: minutes per step here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from lora_foundry.kohya.launcher import read_lora_metadata
from lora_foundry.kohya.operator_config import PYTHON_ENV, SD_SCRIPTS_ENV, TOKENIZER_CACHE_ENV, load_trainer_install

COMFYUI_DIR, SD_SCRIPTS = os.environ.get("COMFYUI_DIR"), os.environ.get(SD_SCRIPTS_ENV)
pytestmark = pytest.mark.skipif(
    not (COMFYUI_DIR and SD_SCRIPTS and Path(SD_SCRIPTS, "train_leco.py").is_file()),
    reason="set COMFYUI_DIR and KOHYA_SD_SCRIPTS (a checkout with train_leco.py) to run against both")
REPO = Path(__file__).resolve().parents[1]
TOML = ('neutral_prompt_file = "neutrals.txt"\nresolution = 64\n\n[[targets]]\ntarget_class = ""\n'
        'positive = "high detail"\nnegative = "low detail"\n')


def _comfy_python() -> str:
    venv = Path(COMFYUI_DIR or ".") / "venv" / "bin" / "python"
    return os.environ.get("COMFYUI_PYTHON") or (str(venv) if venv.exists() else sys.executable)


def _operator_layout(work: Path, monkeypatch) -> Path:
    """ComfyUI's base folder; sd-scripts configured the way an operator does, in trainer.json (the
    server must not see KOHYA_* from this environment, which would take precedence)."""
    from kohya_real_assets import build_real_assets

    install, _ = build_real_assets(load_trainer_install(None), work / "assets")
    for name in (SD_SCRIPTS_ENV, PYTHON_ENV, TOKENIZER_CACHE_ENV):
        monkeypatch.delenv(name, raising=False)
    base = work / "base"
    (base / "custom_nodes").mkdir(parents=True)
    (base / "custom_nodes" / "lora_foundry").symlink_to(REPO)
    (base / "models").mkdir()
    (base / "models" / "checkpoints").symlink_to(work / "assets")  # a linked model folder is the operator's choice
    (work / "input").mkdir()
    (work / "input" / "detail_slider.toml").write_text(TOML, encoding="utf-8")
    (work / "input" / "neutrals.txt").write_text("a photo\nstudio portrait\n", encoding="utf-8")
    config = work / "user" / "lora_foundry" / "trainer.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"sd_scripts": str(install.sd_scripts_dir), "python": str(install.python),
                                  "python_args": list(install.python_args), "env": dict(install.env),
                                  "tokenizer_cache_dir": str(install.tokenizer_cache_dir)}), encoding="utf-8")
    return base


def _graph() -> dict:
    return {"1": {"class_type": "LF_KohyaTrainLECO", "inputs": {
        "architecture": "sd15", "base_model": "base.safetensors", "output_name": "docs_slider_kohya", "steps": 2,
        "learning_rate": 1e-4, "rank": 4, "alpha": 1.0, "seed": 0, "save_every": 1, "dry_run": False,
        "prompts_file": "detail_slider.toml", "max_denoising_steps": 4, "denoise_guidance": 3.0,
        "mixed_precision": "no", "attention": "sdpa", "gradient_checkpointing": True}}}


def test_upstream_docs_neutral_file_slider_trains_through_sd_scripts_from_comfyui(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from comfy_api import ComfyServer

    base = _operator_layout(tmp_path, monkeypatch)
    with ComfyServer(Path(COMFYUI_DIR), Path(_comfy_python()), tmp_path, extra_args=("--base-directory", base)) as server:
        entry = server.client.run(_graph(), timeout=7200)
    status = entry["status"]
    assert status["status_str"] == "success", json.dumps(status.get("messages"))[-3000:]
    report = entry["outputs"]["1"]["text"][0]
    print(f"\nreal ComfyUI + real train_leco.py, upstream docs slider:\n{report}")
    lora = base / "models" / "loras" / "lora_foundry" / "docs_slider_kohya.safetensors"
    metadata = read_lora_metadata(lora)
    assert metadata["ss_leco_prompt_count"] == "8" and metadata["ss_network_module"] == "networks.lora"
    assert len(metadata["sshs_model_hash"]) == 64
    assert report.startswith("success: 2/2 steps") and "last step's loss: " in report
    run = next(tmp_path.glob("output/**/docs_slider_kohya/prompts.toml")).parent
    assert (run / "neutrals.txt").read_text(encoding="utf-8") == "a photo\nstudio portrait\n"
    assert (run / "docs_slider_kohya-step00000001.safetensors").is_file()
