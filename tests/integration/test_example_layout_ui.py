"""Every example workflow opens in ComfyUI's real front end with no box drawn over another.

Skipped unless ``COMFYUI_DIR`` (a ComfyUI checkout, used read-only: the server gets a
``--base-directory`` of its own whose custom_nodes links this checkout) and ``LF_NODE_MODULES``
(node_modules with playwright-core; Chromium at /usr/bin/chromium or ``CHROMIUM_PATH``) are set.
``scripts/workflow_screenshots.js layout`` opens each ``example_workflows/*.json`` as a user does,
waits until the video previews have loaded (they resize their node), and reads from the graph every
node's box grown to what its widgets need and to where its DOM widgets (video preview, loss chart)
are drawn, plus every group. No two may overlap. ``LF_UI_SCREENSHOT`` names a folder to keep the
screenshots in. Run it once per front end: ComfyUI 0.3.64 (1.27.10) and 0.8.0 (1.35.9).
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
from comfy_api import ComfyServer, screenshot_folder  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
NODE_MODULES = os.environ.get("LF_NODE_MODULES")
# nodes whose size changes once the front end has loaded them, and the DOM widget that does it
GROWING = {"LF_LoadVideoFrames": "lf_example_preview", "LF_TrainLECO": "loss_chart",
           "LF_KohyaTrainLoRA": "loss_chart", "LF_KohyaTrainLECO": "loss_chart"}

pytestmark = pytest.mark.skipif(not (COMFYUI_DIR and NODE_MODULES) or shutil.which("node") is None,
                                reason="set COMFYUI_DIR and LF_NODE_MODULES (and install node) to run")


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    comfy_dir = Path(COMFYUI_DIR).resolve()
    work = tmp_path_factory.mktemp("layout_comfyui")
    shots = screenshot_folder(work / "shots")
    comfy = ComfyServer.for_pack(comfy_dir, work, REPO)
    with comfy:
        done = subprocess.run(
            ["node", str(REPO / "scripts" / "workflow_screenshots.js"), "layout", "--url", comfy.client.base_url,
             "--out-dir", str(shots), "--chromium", os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")],
            capture_output=True, text=True, timeout=1200, check=False,
            env={**os.environ, "NODE_PATH": NODE_MODULES})
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_example_was_measured_with_its_previews_loaded(layout):
    assert sorted(layout) == sorted(p.name for p in (REPO / "example_workflows").glob("*.json"))
    for name, report in layout.items():
        for node in report["nodes"]:
            if node["type"] in GROWING:  # else the oracle would pass on a node not yet grown
                assert GROWING[node["type"]] in [part["widget"] for part in node["parts"]], (name, node)


def test_no_example_opens_with_one_box_over_another(layout):
    found = {name: report["overlaps"] for name, report in layout.items() if report["overlaps"]}
    assert not found, json.dumps(found, indent=1)
