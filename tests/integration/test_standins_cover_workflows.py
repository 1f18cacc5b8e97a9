"""Every model file an example workflow names has a stand-in, in the folder its loader reads
(runs without ComfyUI or torch, in CI). A new workflow naming a new model fails here until
``standins.py`` builds one, instead of silently staying an xfail in the real-ComfyUI test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from standins import STANDIN_FILES  # noqa: E402
from test_workflows_match_nodes import MODEL_SUFFIXES  # noqa: E402

from lora_foundry.models.clip_model import CLIP_SPEC  # noqa: E402
from lora_foundry.models.face_model import FACE_SPEC  # noqa: E402
from lora_foundry.models.lama_model import LAMA_SPEC  # noqa: E402
from lora_foundry.models.pose_model import POSE_SPEC  # noqa: E402
from lora_foundry.models.sam2_model import SAM2_SPEC  # noqa: E402
from lora_foundry.models.wd14_model import WD14_SPEC  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / "example_workflows").glob("*.json"))
# node type -> the models/ folder its model-file widgets are read from
FOLDER_OF_NODE = {
    "LF_SAM2Loader": SAM2_SPEC.folder,
    "LF_LaMaLoader": LAMA_SPEC.folder,
    "LF_CLIPLoader": CLIP_SPEC.folder,
    "LF_FaceLoader": FACE_SPEC.folder,
    "LF_PoseLoader": POSE_SPEC.folder,
    "LF_TaggerLoader": WD14_SPEC.folder,
    "LF_LoRAStack": "loras",
    "CheckpointLoaderSimple": "checkpoints",
    "LF_KohyaTrainLoRA": "checkpoints",  # base_model (models/checkpoints or diffusion_models)
    "LF_EvaluateLoRA": "loras",
    "LF_TuneTraining": "checkpoints",  # base_model, as LF_KohyaTrainLoRA
}


def named_model_files(workflow: dict) -> list[tuple[str, str]]:
    """(node type, file name) for every widget value that names a model file."""
    found = []
    for node in workflow.get("nodes", []):
        values = node.get("widgets_values") or []
        for value in values.values() if isinstance(values, dict) else values:
            if isinstance(value, str) and value.lower().endswith(MODEL_SUFFIXES):
                found.append((node["type"], value))
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_model_file_a_workflow_names_has_a_standin(path):
    missing = []
    for kind, name in named_model_files(json.loads(path.read_text(encoding="utf-8"))):
        folder = FOLDER_OF_NODE.get(kind)
        if folder is None:
            missing.append(f"{kind}: {name} (node type unknown to standins; add it to FOLDER_OF_NODE)")
        elif name not in STANDIN_FILES.get(folder, ()):
            missing.append(f"{kind}: {name} has no stand-in in models/{folder}")
    assert not missing, f"{path.name}:\n" + "\n".join(missing)


def test_the_scan_finds_the_models():
    names = {name for path in WORKFLOWS for _, name in named_model_files(json.loads(path.read_text()))}
    assert {"sam2.1_hiera_tiny.pt", "big-lama.pt", "v1-5-pruned-emaonly.safetensors"} <= names
