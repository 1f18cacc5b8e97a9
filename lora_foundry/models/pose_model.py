"""Pose estimators through rtmlib (RTMPose, DWPose, RTMO ONNX files) on onnxruntime.

Folder: ``models/rtmpose``. rtmlib treats a path that does not exist as a URL and downloads it,
so we only ever hand it a file ``registry.resolve`` found. RTMPose/DWPose are top-down: they run
on the boxes we already have (character cut-outs), not rtmlib's own person detector. RTMO is
one-stage (whole frame in, people out); we match its people to our boxes afterwards.

The kind of model is read from the ONNX graph itself: two outputs shaped ``[1, K, W*2]`` and
``[1, K, H*2]`` are SimCC (RTMPose/DWPose); ``[1, N, 5]`` + ``[1, N, K, 3]`` is RTMO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import one_of
from ..fileio import announce_read
from .handle import ModelHandle, reopen_on
from .registry import ModelSpec, model_identity

POSE_FOLDER = "rtmpose"
POSE_SPEC = ModelSpec(
    backend="rtmpose",
    folder=POSE_FOLDER,
    files={
        "rtmpose-m_simcc-body7_pt-body7_420e-256x192.onnx": "",
        "dw-ll_ucoco_384.onnx": "",
        "rtmo-s_8xb32-600e_body7-640x640.onnx": "",
    },
    formats=(".onnx",),
    licence="Apache-2.0 (OpenMMLab mmpose RTMPose/RTMO; DWPose by IDEA-Research)",
    source="https://github.com/open-mmlab/mmpose/tree/main/projects/rtmpose (onnx_sdk zip: end2end.onnx)",
    urls={
        "rtmpose-m_simcc-body7_pt-body7_420e-256x192.onnx": "https://download.openmmlab.com/mmpose/v1/"
        "projects/rtmposev1/onnx_sdk/rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.zip"
        " (unzip, rename end2end.onnx)",
        "dw-ll_ucoco_384.onnx": "https://huggingface.co/yzd-v/DWPose/resolve/main/dw-ll_ucoco_384.onnx",
        "rtmo-s_8xb32-600e_body7-640x640.onnx": "https://download.openmmlab.com/mmpose/v1/projects/rtmo/"
        "onnx_sdk/rtmo-s_8xb32-600e_body7-640x640-dac2bf74_20231211.zip (unzip, rename end2end.onnx)",
    },
    env_var="LORA_FOUNDRY_POSE_MODEL",
)
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


# Room asked for besides the file's size when a CUDA session opens (an estimate): onnxruntime's
# arena for one person crop (top-down) or one 640 px frame (RTMO).
POSE_WORK_BYTES = 512 << 20


@dataclass(frozen=True)
class PoseFacts:
    """What a pose handle's file declares (its ``details``); its ``kind`` is "simcc" (RTMPose /
    DWPose, top-down) or "rtmo" (one-stage)."""

    input_size: tuple[int, int]  # (width, height), rtmlib's order
    num_keypoints: int


def _onnx_shapes(path: Path) -> tuple[list[Any], list[list[Any]]]:
    """The input shape and output shapes an ONNX file declares (dims may be names), read with
    onnxruntime (the runtime we need anyway; the ``onnx`` package is often not installed)."""
    import onnxruntime

    announce_read(path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return list(session.get_inputs()[0].shape), [list(o.shape) for o in session.get_outputs()]


def inspect_onnx(path: Path) -> tuple[str, tuple[int, int], int]:
    """(kind, (width, height), keypoints) of a pose ONNX file, or ValueError if it is neither."""
    in_shape, outs = _onnx_shapes(path)
    height, width = in_shape[2], in_shape[3]
    if len(outs) != 2:
        raise ValueError(f"{path.name}: expected 2 outputs (SimCC x/y or RTMO dets/poses), got {len(outs)}")
    if len(outs[0]) == 3 and len(outs[1]) == 3 and outs[0][-1] != 5:
        size = (int(width) if isinstance(width, int) and width else 192,
                int(height) if isinstance(height, int) and height else 256)
        keypoints = outs[0][1] if isinstance(outs[0][1], int) and outs[0][1] else 17
        return "simcc", size, keypoints
    if len(outs[1]) == 4:
        size = (int(width) if isinstance(width, int) and width else 640,
                int(height) if isinstance(height, int) and height else 640)
        keypoints = outs[1][2] if isinstance(outs[1][2], int) and outs[1][2] else 17
        return "rtmo", size, keypoints
    raise ValueError(f"{path.name}: outputs {outs} match neither RTMPose (SimCC) nor RTMO")


def load_pose(path: Path, device: str = "cpu") -> ModelHandle[PoseFacts]:
    """Open a resolved ONNX file with rtmlib on onnxruntime (``device`` "cpu" or "cuda").

    An onnxruntime session cannot move between devices, so the handle keeps a CPU session (what
    loader caches hold) and, when ``device`` is "cuda", opens a CUDA session inside each
    ``on_device()`` and drops it afterwards, which frees its GPU memory.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pose model {path} does not exist (resolve it first; rtmlib would download)")
    one_of(device, PROVIDERS, "pose device")
    kind, size, keypoints = inspect_onnx(path)

    def open_for(target: str) -> Any:
        return _estimator(path, kind, size, target)

    return ModelHandle(open_for("cpu"), device, model_identity(path), kind, name=path.name,
                       details=PoseFacts(size, int(keypoints)), placer=reopen_on(open_for),
                       weight_bytes=path.stat().st_size, work_bytes=POSE_WORK_BYTES)


def _estimator(path: Path, kind: str, size: tuple[int, int], device: str) -> Any:
    """rtmlib's estimator for ``kind`` on ``device`` (a new onnxruntime session)."""
    from rtmlib import RTMO, RTMPose

    if kind == "simcc":
        return RTMPose(onnx_model=str(path), model_input_size=size, backend="onnxruntime", device=device)
    return RTMO(onnx_model=str(path), model_input_size=(size[1], size[0]), backend="onnxruntime", device=device)


def estimate(pose: ModelHandle[PoseFacts], bgr: Any, boxes: Sequence[Sequence[float]]) -> tuple[Any, Any]:
    """Keypoints ``[N, K, 2]`` (pixels) and scores ``[N, K]``, one row per box, in box order.

    Top-down models run once per box. RTMO runs on the whole frame; each box then takes the
    detected person with most keypoints inside it (zero scores when none falls inside).
    """
    import numpy as np

    boxes = [list(map(float, b)) for b in boxes] or [[0.0, 0.0, float(bgr.shape[1]), float(bgr.shape[0])]]
    if pose.kind == "simcc":
        keypoints, scores = pose.model(bgr, bboxes=boxes)
        return np.asarray(keypoints, np.float32), np.asarray(scores, np.float32)
    people, people_scores = pose.model(bgr)
    count = pose.details.num_keypoints
    out_k = np.zeros((len(boxes), count, 2), np.float32)
    out_s = np.zeros((len(boxes), count), np.float32)
    for row, (x1, y1, x2, y2) in enumerate(boxes):
        inside = ((people[..., 0] >= x1) & (people[..., 0] <= x2) & (people[..., 1] >= y1)
                  & (people[..., 1] <= y2) & (people_scores > 0.3)).sum(axis=1)
        if len(inside) and inside.max() > 0:
            best = int(inside.argmax())
            out_k[row], out_s[row] = people[best], people_scores[best]
    return out_k, out_s
