"""ComfyUI's Missing Models dialog lists exactly the files a user still has to get, each once.

Skipped unless ``COMFYUI_DIR`` and ``LF_NODE_MODULES`` are set (as test_example_layout_ui.py). The
server's models come from a folder of its own holding WD14's ``model.onnx`` but not the
``selected_tags.csv`` that must sit beside it. The real front end then opens
background_dataset_from_video.json: its dialog must name the label file (with its source) and the
SAM 2 and LaMa files, and not the installed .onnx (front ends 1.27.10 and 1.35.9 cannot see .onnx
files in ComfyUI's model list; js/missing_models.js tells them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_api import ComfyServer  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
NODE_MODULES = os.environ.get("LF_NODE_MODULES")

pytestmark = pytest.mark.skipif(not (COMFYUI_DIR and NODE_MODULES) or shutil.which("node") is None,
                                reason="set COMFYUI_DIR and LF_NODE_MODULES (and install node) to run")


def test_the_dialog_names_each_missing_file_once_and_not_the_installed_ones(tmp_path):
    comfy_dir = Path(COMFYUI_DIR).resolve()
    tagger = tmp_path / "models" / "wd14" / "wd-vit-tagger-v3"
    tagger.mkdir(parents=True)
    (tagger / "model.onnx").write_bytes(b"listed only: never loaded here")
    config = tmp_path / "extra_model_paths.yaml"
    config.write_text(f'lf_test:\n  base_path: "{tmp_path / "models"}"\n  wd14: wd14\n', encoding="utf-8")
    comfy = ComfyServer.for_pack(comfy_dir, tmp_path, REPO, "--extra-model-paths-config", str(config))
    with comfy:
        done = subprocess.run(
            ["node", str(REPO / "scripts" / "workflow_screenshots.js"), "missing-models", "--url",
             comfy.client.base_url, "--workflow", str(REPO / "example_workflows" / "background_dataset_from_video.json"),
             "--out", str(tmp_path / "dialog.png"), "--chromium", os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")],
            capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "NODE_PATH": NODE_MODULES})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    dialog = json.loads(done.stdout.strip().splitlines()[-1])["dialog"]
    assert "Missing Models" in dialog, dialog
    for name in ("sam2 / sam2.1_hiera_tiny.pt", "lama / big-lama.pt", "wd14 / wd-vit-tagger-v3/selected_tags.csv"):
        assert dialog.count(name) == 1, (name, dialog)
    assert "model.onnx" not in dialog, dialog
