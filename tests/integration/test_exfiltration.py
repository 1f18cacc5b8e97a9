"""The two-node exfiltration workflow against a real ComfyUI: it now fails with a clear error.

Before issue 12, ``LF_LoadImageFolder`` with ``folder: "/some/private/dir"`` followed by
``LF_PreviewFrames`` copied a private picture into the workspace and served it back through
``GET /view``. Here a real server (``COMFYUI_DIR``, as in test_real_comfyui.py) gets that workflow,
its variants (``..``, a symlink in the input folder, a recursive load, a literal for a socket) and
one honest workflow as the control. Each hostile one must end in an execution error naming the
input and the value, with no thumbnail of the private picture anywhere ComfyUI serves files from.

The pack is linked into a temporary ``--base-directory`` (``custom_nodes/lora_foundry`` -> this
checkout), so the ComfyUI checkout is never written to and needs no link of its own.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_api import ComfyServer, status_messages  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
SECRET = (7, 77, 177)
OUTSIDE = "is outside the folders workflows may read"

pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout to run")


def _picture(path: Path, colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 32, 3), colour, np.uint8)).save(path)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("exfil")
    private = work / "private"
    _picture(private / "secret.png", SECRET)
    _picture(private / "deeper" / "secret2.png", SECRET)
    comfy = ComfyServer.for_pack(Path(COMFYUI_DIR).resolve(), work, REPO)
    comfy.dirs["input"].mkdir(parents=True, exist_ok=True)
    _picture(comfy.dirs["input"] / "mine" / "a.png", (200, 200, 200))
    (comfy.dirs["input"] / "innocent").symlink_to(private, target_is_directory=True)
    comfy.private = private
    with comfy:
        yield comfy


def _exfiltration(folder: str, recursive: bool = False) -> dict:
    return {
        "1": {"class_type": "LF_LoadImageFolder",
              "inputs": {"folder": folder, "workspace": "exfil", "long_side": 0, "recursive": recursive}},
        "2": {"class_type": "LF_PreviewFrames", "inputs": {"frames": ["1", 0], "max_thumbnails": 8}},
    }


def _served_secret(server) -> list[Path]:
    """Pictures under the folders ComfyUI serves (output, temp) that show the private colour."""
    found = []
    for folder in (server.dirs["output"], server.dirs["temp"]):
        for path in folder.rglob("*.png"):
            with Image.open(path) as image:
                if image.convert("RGB").getpixel((0, 0)) == SECRET:
                    found.append(path)
    return found


@pytest.mark.parametrize("folder,recursive", [("{private}", False), ("{private}", True), ("../../private", True),
                                              ("innocent", True), ("/", True)])
def test_the_exfiltration_workflow_fails_with_a_clear_error(server, folder, recursive):
    folder = folder.format(private=server.private)
    entry = server.client.run(_exfiltration(folder, recursive), timeout=120)
    assert entry["status"]["status_str"] == "error"
    (error,) = status_messages(entry, "execution_error")
    assert error["node_type"] == "LF_LoadImageFolder"
    assert f"folder {folder!r} {OUTSIDE}" in error["exception_message"]
    assert not entry.get("outputs", {}).get("2")
    assert _served_secret(server) == []


def test_a_literal_for_a_socket_is_refused_by_the_node(server):
    prompt = {"1": {"class_type": "LF_PreviewFrames",
                    "inputs": {"frames": str(server.private), "max_thumbnails": 8}}}
    try:
        entry = server.client.run(prompt, timeout=120)
    except Exception as rejected:  # ComfyUI 0.3.64 may itself refuse a literal for a link-only input
        assert "frames" in str(rejected)
        return
    (error,) = status_messages(entry, "execution_error")
    assert "input 'frames' must be connected to an LF_FRAMES output" in error["exception_message"]
    assert _served_secret(server) == []


def test_the_same_workflow_on_the_input_folder_still_works(server):
    entry = server.client.run(_exfiltration("mine"), timeout=120)
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = entry["outputs"]["2"]["images"]
    assert len(images) == 1 and server.client.view(images[0])
    assert _served_secret(server) == []
