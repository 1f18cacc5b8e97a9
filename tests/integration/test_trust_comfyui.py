"""Issue 23 and issue 28 item 5 against a real ComfyUI (``COMFYUI_DIR``, as in test_exfiltration.py):
the upload-then-queue attacks of holes 1, 4 and 5, and a NaN prompt.

Each attack uses only what any client of a shared server may do: ``POST /upload/image`` (any bytes,
``type=input`` or ``output``, a ``subfolder``, ``overwrite``), ``GET /view`` and ``POST /prompt``. Each
must be refused with a clear message naming the input or the file and field, the server must keep
answering ``/system_stats``, and after the NaN prompt ``GET /api/history`` must still be strict JSON.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import sys
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from comfy_api import ComfyServer, PromptRejected, status_messages  # noqa: E402
from fixtures_fake_trainer import configure_operator, make_base_model, make_fake_install  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
SECRET = (7, 77, 177)
SLASH_HOME_USER = next((line.split(":")[0] for line in Path("/etc/passwd").read_text().splitlines()
                        if line.count(":") >= 6 and line.split(":")[5] == "/"), None) if Path("/etc/passwd").exists() else None

pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout to run")


def _png(colour) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((24, 32, 3), colour, np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("trust")
    comfy = ComfyServer.for_pack(Path(COMFYUI_DIR).resolve(), work, REPO)
    make_base_model(comfy.base / "models" / "checkpoints")
    private = work / "private"
    (private / "photos").mkdir(parents=True)
    (private / "photos" / "holiday.png").write_bytes(_png(SECRET))
    configure_operator(make_fake_install(work / "kohya"), comfy.dirs["user"])
    comfy.private = private
    with comfy:
        yield comfy


def _upload(server, name: str, content: bytes, kind: str = "input", subfolder: str = "") -> dict:
    """ComfyUI's own ``POST /upload/image``: what any client may call."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (("subfolder", subfolder), ("overwrite", "true"), ("type", kind))]
    parts.append((f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
                  "Content-Type: application/octet-stream\r\n\r\n").encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    request = urllib.request.Request(server.client.base_url + "/upload/image", data=b"".join(parts),
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _still_answers(server) -> None:
    assert "system" in server.client.get("/system_stats")


def _error(entry: dict) -> dict:
    assert entry["status"]["status_str"] == "error", entry["status"]
    (error,) = status_messages(entry, "execution_error")
    return error


@pytest.mark.skipif(SLASH_HOME_USER is None, reason="no system user whose home is /")
def test_hole_1_an_uploaded_model_named_by_tilde_user_is_refused_at_validation(server):
    torch = pytest.importorskip("torch")
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(torch.nn.Identity()), buffer)
    info = _upload(server, "x.pt", buffer.getvalue())
    name = f"~{SLASH_HOME_USER}/{str(server.dirs['input'].resolve() / info['name']).lstrip('/')}"
    with pytest.raises(PromptRejected) as rejected:
        server.client.submit({"1": {"class_type": "LF_LaMaLoader",
                                    "inputs": {"model_name": name, "if_missing": "error", "device": "cpu"}},
                              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}})
    details = [e["details"] for e in rejected.value.body["node_errors"]["1"]["errors"]]
    assert details == [f"model_name {name!r} is not one of the files in models/lama"]  # once, not per input
    _still_answers(server)


def _workspace_graph(name: str, count: int) -> dict:
    return {"1": {"class_type": "LF_LoadImageFolder", "inputs": {"folder": "pics", "workspace": name,
                                                                 "long_side": 0, "recursive": False}},
            "2": {"class_type": "LF_FramesToImages", "inputs": {"frames": ["1", 0], "output": "batch", "start": 0,
                                                               "count": count, "long_side": 64}},
            "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}


def test_hole_4_a_manifest_rewritten_through_upload_is_refused_naming_file_and_field(server, tmp_path):
    for index in range(2):
        _upload(server, f"{index}.png", _png((60 + 40 * index, 90, 120)), subfolder="pics")
    assert server.client.run(_workspace_graph("victim", 16), timeout=120)["status"]["status_str"] == "success"
    sub = "lora_foundry/workspaces/victim"
    manifest = tmp_path / "manifest.sqlite"
    manifest.write_bytes(server.client.view({"filename": "manifest.sqlite", "subfolder": sub, "type": "output"}))
    with sqlite3.connect(manifest) as conn:
        conn.execute("UPDATE items SET relpath=? WHERE id=(SELECT MAX(id) FROM items)",
                     (str(server.private / "photos" / "holiday.png"),))
    conn.close()
    _upload(server, "manifest.sqlite", manifest.read_bytes(), kind="output", subfolder=sub)
    error = _error(server.client.run(_workspace_graph("victim", 15), timeout=120))
    assert error["node_type"] == "LF_FramesToImages" and error["exception_type"] == "ValueError"
    assert "workspace 'victim' manifest.sqlite items.relpath of item" in error["exception_message"]
    assert "is not a path inside the workspace" in error["exception_message"]
    _still_answers(server)


def test_hole_5_an_uploaded_dataset_toml_is_refused_naming_file_and_field(server):
    toml = (f'[[datasets]]\nresolution = 64\n[[datasets.subsets]]\nimage_dir = "{server.private / "photos"}"\n'
            "num_repeats = 1\n")
    _upload(server, "dataset.toml", toml.encode(), kind="output", subfolder="lora_foundry/datasets/evil")
    inputs = {"architecture": "sd15", "lora_type": "character", "base_model": "base.safetensors",
              "output_name": "evil", "network_variant": "lora", "steps": 4, "learning_rate": 0.0, "rank": 0,
              "alpha": 0.0, "resolution": 64, "train_seed": 1, "dry_run": True, "resume": False,
              "dataset_path": "evil"}
    error = _error(server.client.run({"1": {"class_type": "LF_KohyaTrainLoRA", "inputs": inputs}}, timeout=120))
    assert ("dataset config dataset.toml: datasets[0].subsets[0].image_dir" in error["exception_message"]
            and "is outside the folders workflows may read" in error["exception_message"])
    assert str(server.dirs["output"]) not in error["exception_message"]
    _still_answers(server)


def test_a_nan_float_is_refused_at_validation_and_the_history_stays_json(server):
    graph = {"1": {"class_type": "LF_LoadVideoFrames", "inputs": {
        "video": "lf_example_montage.mp4", "workspace": "nan", "mode": "interval", "interval_s": float("nan"),
        "per_shot": 1, "start_s": 0.0, "end_s": 0.0, "max_frames": 10, "long_side": 0, "frame_format": "jpg"}},
        "2": {"class_type": "LF_PreviewFrames", "inputs": {"frames": ["1", 0], "max_thumbnails": 4}}}
    with pytest.raises(PromptRejected) as rejected:
        server.client.submit(graph)
    details = [e["details"] for e in rejected.value.body["node_errors"]["1"]["errors"]]
    assert details == ["LF Load Video Frames: input 'interval_s' must be a finite number, got nan"]  # once
    with urllib.request.urlopen(server.client.base_url + "/api/history", timeout=60) as response:
        raw = response.read()

    def bare(constant: str):
        raise ValueError(f"GET /api/history holds a bare {constant}")

    json.loads(raw, parse_constant=bare)
    _still_answers(server)
