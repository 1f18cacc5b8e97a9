"""The model-loader nodes: SAM 2, LaMa, open_clip, pose, RetinaFace, expression classifiers.

Each declares only what is its own (file list, settings, how ``models/`` opens the file); the rest
is ``_models.ModelLoader``. Node ids, display names, categories and the inputs (names, order,
types, defaults, choices) are those the loaders had in layers.py, clusters.py and tagging.py:
saved workflows store widget values by position. Loaded models rest on the CPU; the nodes that
use them move them to the compute device for their work only (see ``models/handle.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lora_foundry.models import clip_model, expression_model, face_model, pose_model
from ..lora_foundry.models.handle import ModelHandle
from ..lora_foundry.models.lama_model import LAMA_SPEC, open_lama
from ..lora_foundry.models.registry import ModelMissingError
from ..lora_foundry.models.sam2_model import CONFIGS, SAM2_SPEC, open_sam2, sam2_identity
from ..lora_foundry.stages.layers.inpaint import OPENCV_METHOD
from . import _comfy
from ._declare import choice, mappings, node
from ._models import (
    ModelLoader,
    installed_path,
    model_choices,
    model_input,
    onnx_device_input,
    register_routes,
    torch_device_input,
)

AUTO_CONFIG = "auto (from file name)"
OPENCV_FALLBACK = "opencv fallback"


@node("LF_SAM2Loader", "LF SAM2 Loader", category="layers", function="load",
      outputs=[("LF_SAM2_MODEL", "sam2_model")],
      inputs={
          "model_name": model_input(SAM2_SPEC, "Checkpoint in models/sam2 (Meta's file names, e.g. "
                                    "sam2.1_hiera_tiny.pt; tiny is the fastest on CPU)."),
          "config": choice([AUTO_CONFIG, *CONFIGS], "The sam2 config that builds this checkpoint; 'auto' reads it "
                           "from the file name.", AUTO_CONFIG),
          "device": torch_device_input(),
      })
class SAM2Loader(ModelLoader):
    """Load a SAM 2 / 2.1 checkpoint (.pt or .safetensors) from models/sam2. Nothing is downloaded: a
    missing file fails at once with the file to get and the folder to put it in."""
    SPEC = SAM2_SPEC

    @classmethod
    def identity(cls, path: Path, settings: dict[str, Any]) -> str:
        return sam2_identity(path, _config(settings))

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        return open_sam2(path, device, _config(settings))


def _clip_names() -> list[str]:
    """open_clip's combo: weights files and model folders (ending in '/')."""
    _comfy.register_model_folder(clip_model.CLIP_FOLDER)
    installed = clip_model.installed_choices(_comfy.model_folder_paths(clip_model.CLIP_FOLDER))
    return model_choices(clip_model.CLIP_SPEC, installed)


def _expression_names() -> list[str]:
    spec = expression_model.EXPRESSION_SPEC
    _comfy.register_model_folder(spec.folder)
    installed = [n for n in _comfy.list_models(spec.folder) if n.lower().endswith(spec.formats)]
    return model_choices(spec, installed)


def _config(settings: dict[str, Any]) -> str | None:
    """The chosen sam2 config, None for "from the file name"."""
    return None if settings["config"] == AUTO_CONFIG else settings["config"]


@node("LF_LaMaLoader", "LF LaMa Loader", category="layers", function="load",
      outputs=[("LF_LAMA_MODEL", "inpaint_model")],
      inputs={
          "model_name": model_input(LAMA_SPEC, "big-lama.pt in models/lama ($LAMA_MODEL, when set, names the file "
                                    "instead)."),
          "if_missing": choice(["error", OPENCV_FALLBACK], "What to do when the file is not installed: stop with "
                               "where to get it, or use OpenCV Telea.", "error"),
          "device": torch_device_input(),
      })
class LaMaLoader(ModelLoader):
    """Load LaMa (big-lama.pt, TorchScript) from models/lama or $LAMA_MODEL. Nothing is downloaded.
    'opencv fallback' uses OpenCV's Telea inpainting when the file is missing (smooth fill, fine for
    small holes; recorded as such on every result)."""
    SPEC = LAMA_SPEC

    @classmethod
    def locate(cls, model_name: str) -> Path:
        # The default name defers to $LAMA_MODEL (resolve reads it only when no name is given).
        return installed_path(LAMA_SPEC, None if model_name == LAMA_SPEC.default_file() else model_name)

    @classmethod
    def VALIDATE_INPUTS(cls, model_name: str, if_missing: str) -> bool | str:
        """A missing file is fine when the fallback was chosen."""
        return True if if_missing == OPENCV_FALLBACK else super().VALIDATE_INPUTS(model_name)

    def load(self, model_name: str, *values: Any, unique_id: str | None = None, **named: Any
             ) -> tuple[ModelHandle]:
        settings = self.settings_of(values, named)
        try:
            return super().load(model_name, **settings)
        except ModelMissingError:
            if settings["if_missing"] != OPENCV_FALLBACK:
                raise
            return (ModelHandle(None, "cpu", OPENCV_METHOD, OPENCV_METHOD),)

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        return open_lama(path, device)


@node("LF_CLIPLoader", "LF CLIP Loader (open_clip)", category="understand", function="load",
      outputs=[("LF_CLIP_MODEL", "clip_model")],
      inputs={
          "model_name": model_input(clip_model.CLIP_SPEC, "Weights file, or a folder ending in '/' holding "
                                    "open_clip_config.json, in models/open_clip.", _clip_names),
          "architecture": choice(clip_model.ARCH_CHOICES, "open_clip architecture of a weights file; auto reads it "
                                 "from '<arch>__<tag>' in the file name. Only architectures with weights of known "
                                 "licence are listed (docs/understanding.md).", "auto"),
          "device": torch_device_input(),
      })
class CLIPLoader(ModelLoader):
    """Load an open_clip image/text model from models/open_clip: a weights file named
    <architecture>__<tag>.safetensors (or pick the architecture), or a folder with open_clip_config.json
    (a Hugging Face snapshot). Never downloads."""
    SPEC = clip_model.CLIP_SPEC

    @classmethod
    def locate(cls, model_name: str) -> Path:
        return clip_model.resolve_clip(model_name, _comfy.model_folder_paths(clip_model.CLIP_FOLDER))

    @classmethod
    def identity(cls, path: Path, settings: dict[str, Any]) -> str:
        return clip_model.clip_identity(path, settings["architecture"])

    @classmethod
    def IS_CHANGED(cls, model_name: str, *values: Any, unique_id: str | None = None, **named: Any) -> str:
        value = super().IS_CHANGED(model_name, *values, **named)
        return "missing" if value.startswith("missing|") else value

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        return clip_model.load_clip(path, settings["architecture"], device)


@node("LF_PoseLoader", "LF Pose Loader (RTMPose/DWPose/RTMO)", category="understand", function="load",
      outputs=[("LF_POSE_MODEL", "pose_model")],
      inputs={
          "model_name": model_input(pose_model.POSE_SPEC, "ONNX file in models/rtmpose (from mmpose's onnx_sdk "
                                    "zips, renamed; or DWPose's dw-ll_ucoco_384.onnx)."),
          "device": onnx_device_input(),
      })
class PoseLoader(ModelLoader):
    """Load an RTMPose / DWPose (top-down, runs on the character boxes we already have) or RTMO ONNX
    file from models/rtmpose, on onnxruntime (CPU or CUDA). Never downloads."""
    SPEC = pose_model.POSE_SPEC
    ONNX = True

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        return pose_model.load_pose(path, device)


@node("LF_FaceLoader", "LF Face Loader (RetinaFace)", category="understand", function="load",
      outputs=[("LF_FACE_MODEL", "face_model")],
      inputs={
          "model_name": model_input(face_model.FACE_SPEC, "RetinaFace weights in models/facedetection (the same "
                                    "folder face-restore packs use)."),
          "device": torch_device_input(),
      })
class FaceLoader(ModelLoader):
    """Load facexlib's RetinaFace (detection_Resnet50_Final.pth or detection_mobilenet0.25_Final.pth)
    from models/facedetection, safely (weights only). Never downloads."""
    SPEC = face_model.FACE_SPEC

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        return face_model.load_face(path, device)


@node("LF_ExpressionClassifierLoader", "LF Expression Classifier Loader (ONNX)", category="understand",
      function="load", outputs=[("LF_EXPRESSION_MODEL", "expression_model")],
      inputs={
          "model_name": model_input(expression_model.EXPRESSION_SPEC, "ONNX classifier in models/expression (e.g. "
                                    "FER+ emotion-ferplus-8.onnx, or your own); labels in the same-name .txt.",
                                    _expression_names),
          "device": onnx_device_input(),
      })
class ExpressionClassifierLoader(ModelLoader):
    """Load your own facial-expression classifier: an ONNX image classifier from models/expression,
    labels in NAME.txt beside it (one per line) or its 'labels' metadata; input size from the model,
    mean/std from its metadata (ImageNet by default). onnxruntime, CPU or CUDA. Never downloads."""
    SPEC = expression_model.EXPRESSION_SPEC
    ONNX = True

    @classmethod
    def identity(cls, path: Path, settings: dict[str, Any]) -> str:
        return expression_model.model_state(path)

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        return expression_model.load_expression(path, device)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    SAM2Loader, LaMaLoader, CLIPLoader, PoseLoader, FaceLoader, ExpressionClassifierLoader)
register_routes()  # the Missing Models dialog's check; ComfyUI mounts routes added while it imports packs
