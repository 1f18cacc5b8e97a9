"""RetinaFace face detector (facexlib), built here and loaded with ``weights_only=True``.

Folder: ``models/facedetection`` (where ReActor and face-restore packs already keep
``detection_Resnet50_Final.pth``, so one copy serves all). facexlib's own
``init_detection_model`` downloads when the file is missing (no timeout) and calls ``torch.load``
without ``weights_only``; so we build its ``RetinaFace`` network ourselves and load the state dict
from a file ``registry.resolve`` found, with ``torch.load(weights_only=True)``.

Real-face detectors miss many anime and 3D faces: callers report faces found per cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .handle import ModelHandle
from .registry import ModelSpec, model_identity
from .weights_file import torch_load_weights

FACE_FOLDER = "facedetection"
NETWORKS = {
    "detection_Resnet50_Final.pth": "resnet50",
    "detection_mobilenet0.25_Final.pth": "mobile0.25",
}
FACE_SPEC = ModelSpec(
    backend="retinaface",
    folder=FACE_FOLDER,
    files={name: "" for name in NETWORKS},
    formats=(".pth",),
    licence="MIT (biubug6/Pytorch_Retinaface weights as redistributed by facexlib)",
    source="https://github.com/xinntao/facexlib/releases/tag/v0.1.0",
    urls={name: f"https://github.com/xinntao/facexlib/releases/download/v0.1.0/{name}" for name in NETWORKS},
    env_var="LORA_FOUNDRY_FACE_MODEL",
)


# Room asked for besides the weights (an estimate): RetinaFace runs at the frame's own size
# (use_origin_size), about 1 GB of activations for a 1080p frame through ResNet-50.
FACE_WORK_BYTES = 1 << 30


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float
    landmarks: tuple[tuple[float, float], ...]  # eyes, nose, mouth corners


def network_for(path: Path) -> str:
    """facexlib's network name for a weights file, from its name or its keys."""
    if path.name in NETWORKS:
        return NETWORKS[path.name]
    return "mobile0.25" if "mobile" in path.name.lower() else "resnet50"


def load_face(path: Path, device: str = "cpu") -> ModelHandle:
    """Build facexlib's RetinaFace for ``path``'s network and load its weights safely; the handle
    rests on the CPU and works on ``device`` inside ``on_device()``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"face model {path} does not exist (resolve it first; facexlib would download)")
    import torch
    from facexlib.detection.retinaface import RetinaFace

    state = torch_load_weights(path)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    net = RetinaFace(network_name=network_for(path), half=False, device=torch.device("cpu"))
    net.load_state_dict(state, strict=True)
    net.eval()
    return ModelHandle(net, device, model_identity(path), "retinaface", name=path.name, placer=place_retinaface,
                       work_bytes=FACE_WORK_BYTES)


def place_retinaface(net: Any, device: str) -> Any:
    """Move RetinaFace: its weights, and what facexlib keeps outside them (the device its inputs
    go to and the mean it subtracts, a plain tensor attribute that ``.to`` does not move)."""
    import torch

    net.to(device)
    net.device = torch.device(device)
    net.mean_tensor = net.mean_tensor.to(device)
    return net


def detect(face: ModelHandle, bgr: Any, threshold: float = 0.8, nms: float = 0.4) -> list[Face]:
    """Faces in one BGR uint8 image, best first (on the device the model is on now)."""
    import torch

    with torch.inference_mode():
        rows = face.model.detect_faces(bgr, conf_threshold=threshold, nms_threshold=nms, use_origin_size=True)
    faces = []
    for row in rows:
        box = tuple(float(v) for v in row[:4])
        marks = tuple((float(row[5 + 2 * i]), float(row[6 + 2 * i])) for i in range(5))
        faces.append(Face(box, float(row[4]), marks))  # type: ignore[arg-type]
    return faces
