"""Issue 28 against a real ComfyUI (``COMFYUI_DIR``, as in test_trust_comfyui.py): the training
example queued on a server where training cannot run (no sd-scripts set up, no base model) is
refused as a whole, with one message naming what is missing, and writes nothing.

Before, ComfyUI queued the outputs that validated (the dataset writer is one), so the dataset was
written and the trainer's refusal only outlined two nodes in red, one of them hidden.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_api import ComfyServer, PromptRejected, comfy_python, pack_base  # noqa: E402
from ui_to_api import ui_to_api  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_workflows" / "train_character_lora.json"
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")

pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout to run")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    comfy_dir = Path(COMFYUI_DIR).resolve()
    work = tmp_path_factory.mktemp("no_trainer")
    comfy = ComfyServer(comfy_dir, comfy_python(comfy_dir), work / "comfyui",
                        port=int(os.environ["COMFYUI_PORT"]) if os.environ.get("COMFYUI_PORT") else None,
                        extra_args=("--base-directory", str(pack_base(work, REPO))))
    with comfy:
        yield comfy


def test_the_training_example_without_a_trainer_is_refused_and_writes_nothing(server):
    if os.environ.get("KOHYA_SD_SCRIPTS"):
        pytest.skip("KOHYA_SD_SCRIPTS is set: this server can train")
    prompt = ui_to_api(json.loads(EXAMPLE.read_text(encoding="utf-8")), server.client.object_info())
    writer = next(key for key, node in prompt.items() if node["class_type"] == "LF_WriteKohyaDataset")
    with pytest.raises(PromptRejected) as rejected:  # HTTP 400: the front end shows its error dialog
        server.client.submit(prompt)
    errors = rejected.value.body["node_errors"][writer]["errors"]
    assert len(errors) == 1, errors
    assert "this dataset is for training, which cannot run: sd-scripts is not configured" in errors[0]["details"]
    assert "KOHYA_SD_SCRIPTS" in errors[0]["details"]
    written = [p for p in server.dirs["output"].rglob("*") if p.is_file()]
    assert written == []
    assert server.client.get("/queue")["queue_running"] == []
