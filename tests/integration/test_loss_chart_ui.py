"""The loss curve is visible on LF Kohya Train LoRA in ComfyUI's real front end.

Skipped unless ``COMFYUI_DIR`` (a ComfyUI checkout, used read-only: the server gets a
``--base-directory`` of its own whose custom_nodes links this checkout) and ``LF_NODE_MODULES`` (node_modules with playwright-core; Chromium at /usr/bin/chromium or
``CHROMIUM_PATH``) are set. A server of its own gets a fake sd-scripts (tests/fixtures_fake_trainer)
in its user folder, a stub base model in its models/checkpoints and a dataset in its output folder; ``scripts/loss_chart_ui.js`` loads the example training workflow and a fresh node,
runs training from the UI and reads where the chart and the extra_options box are on screen and
how many pixels of the curve were drawn. ``LF_UI_SCREENSHOT`` (a folder) keeps the screenshot.
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfy_api import ComfyServer, screenshot_folder  # noqa: E402
from fixtures_fake_trainer import configure_operator, make_base_model, make_dataset, make_fake_install  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
NODE_MODULES = os.environ.get("LF_NODE_MODULES")

pytestmark = pytest.mark.skipif(not (COMFYUI_DIR and NODE_MODULES) or shutil.which("node") is None,
                                reason="set COMFYUI_DIR and LF_NODE_MODULES (and install node) to run")


@pytest.fixture(scope="module")
def server(tmp_path_factory, monkeypatch_module):
    comfy_dir = Path(COMFYUI_DIR).resolve()
    work = tmp_path_factory.mktemp("chart_comfyui")
    comfy = ComfyServer.for_pack(comfy_dir, work, REPO)  # --base-directory: its own custom_nodes and models
    make_base_model(comfy.base / "models" / "checkpoints", "tiny_base.safetensors")
    monkeypatch_module.setenv("FAKE_STEP_S", "0.3")  # the stand-in trainer's step time, so a curve builds up
    configure_operator(make_fake_install(work / "trainer"), comfy.dirs["user"])
    make_dataset(comfy.dirs["output"] / "lora_foundry" / "datasets" / "hero")
    with comfy:
        yield comfy


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def test_loss_curve_has_its_own_area_and_is_drawn_after_a_run(server, tmp_path):
    screenshot = screenshot_folder(tmp_path) / "loss_chart.png"
    done = subprocess.run(
        ["node", str(REPO / "scripts" / "loss_chart_ui.js"), "--url", server.client.base_url,
         "--workflow", str(REPO / "example_workflows" / "train_character_lora.json"), "--dataset", "hero",
         "--base-model", "tiny_base.safetensors", "--steps", "12", "--screenshot", str(screenshot),
         "--node-modules", NODE_MODULES],
        capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    for layout in (report["loaded"], report["fresh"], report["run"]["layout"]):
        assert layout["chartVisible"] and layout["chart"]["h"] >= 100 and layout["chart"]["w"] >= 200
        assert layout["overlapPx"] == 0, layout  # extra_options no longer covers the chart
        assert layout["widgetsValues"] == layout["widgets"] - 1  # the chart is not saved in the workflow
    assert report["run"]["status"] == "success", report["run"]["messages"]
    assert report["run"]["curvePixels"] > 100  # the curve was drawn from the run's per-step loss events
    assert screenshot.stat().st_size > 0
