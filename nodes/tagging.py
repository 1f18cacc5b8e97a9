"""Understanding nodes, part 2: pose, faces and expressions, lighting tags.

Each tagger writes its own annotation and adds its tags to the ``tags`` union the caption
builder reads. Model files resolve through the registry first: rtmlib and facexlib would
otherwise download a missing file (rtmlib treats a missing path as a URL).
"""

from __future__ import annotations

from typing import Any

from ..lora_foundry.media.contact_sheet import titled_sheet
from ..lora_foundry.models import expression_model, face_model, pose_model
from ..lora_foundry.models.device import DEVICE_CHOICES, pick_device, pick_onnx_device
from ..lora_foundry.models.registry import model_identity
from ..lora_foundry.stages.tagging import face_stage, faces, lighting_stage, pose_stage
from ..lora_foundry.workspace import Workspace
from . import _comfy
from ._declare import inputs, integer, mappings, node, number, socket, text
from ._models import ModelCache, file_state, installed_path, model_choices
from .clusters import save_previews

CATEGORY = f"{_comfy.CATEGORY}/understand"
FRAMES = socket("LF_FRAMES", "Frames or cut-outs in a LoRA Foundry workspace.")
DEVICE = (list(DEVICE_CHOICES), {"default": "auto", "tooltip": "auto = CUDA, then Apple MPS, else CPU."})
CLIP_OPTIONAL = socket("LF_CLIP_MODEL", "Optional open_clip model (LF CLIP Loader) for zero-shot tags.")


class PoseLoader:
    DESCRIPTION = ("Load an RTMPose / DWPose (top-down, runs on the character boxes we already have) or RTMO "
                   "ONNX file from models/rtmpose, on onnxruntime (CPU or CUDA). Never downloads.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LF_POSE_MODEL",)
    RETURN_NAMES = ("pose_model",)
    _cache = ModelCache()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "model_name": (model_choices(pose_model.POSE_SPEC), {"tooltip": "ONNX file in models/rtmpose (from mmpose's "
                           "onnx_sdk zips, renamed; or DWPose's dw-ll_ucoco_384.onnx)."}),
            "device": (["auto", "cpu", "cuda"], {"default": "auto", "tooltip": "onnxruntime provider."}),
        }}

    @classmethod
    def IS_CHANGED(cls, model_name: str, device: str = "auto") -> str:
        return f"{file_state(pose_model.POSE_SPEC, model_name)}|{device}"

    def load(self, model_name: str, device: str) -> tuple[Any]:
        path, target = installed_path(pose_model.POSE_SPEC, model_name), pick_onnx_device(device)
        return (self._cache.get((model_identity(path), target), lambda: pose_model.load_pose(path, target)),)


@node("LF_TagPose", "LF Tag Pose", category="understand", function="tag",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      description="Keypoints per item (on the cut-out's own box) and tags: action (standing, walking, running, "
      "jumping, sitting, lying; motion across a shot when frames have timestamps), view (front, three-quarter, "
      "side, back) and framing (close-up, upper body, full body).")
class TagPose:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return inputs({
            "frames": FRAMES,
            "pose_model": socket("LF_POSE_MODEL", "From LF Pose Loader."),
            "min_score": number("A keypoint counts as seen at or above this confidence.", 0.3, 0.0, 1.0, 0.05),
        })

    def tag(self, frames: Any, pose_model: Any, min_score: float, unique_id: str | None = None) -> tuple:
        with Workspace.from_handle(frames) as ws:
            out = pose_stage.pose_stage(ws, frames, pose_model, min_score, _comfy.ComfyProgress(unique_id))
            report = _tag_counts(ws.annotations(out, "pose_tags"), ws.count(out))
        return out, report


def _tag_counts(values: dict[int, Any], total: int) -> str:
    counts: dict[str, int] = {}
    for value in values.values():
        tags = value.values() if isinstance(value, dict) else value
        for tag in tags or ():
            if tag:
                counts[str(tag)] = counts.get(str(tag), 0) + 1
    lines = [f"{tag}: {n}" for tag, n in sorted(counts.items(), key=lambda kv: -kv[1])]
    return f"{total} items\n" + "\n".join(lines)


class FaceLoader:
    DESCRIPTION = ("Load facexlib's RetinaFace (detection_Resnet50_Final.pth or detection_mobilenet0.25_Final.pth) "
                   "from models/facedetection, safely (weights only). Never downloads.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LF_FACE_MODEL",)
    RETURN_NAMES = ("face_model",)
    _cache = ModelCache()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "model_name": (model_choices(face_model.FACE_SPEC), {"tooltip": "RetinaFace weights in models/facedetection "
                           "(the same folder face-restore packs use)."}),
            "device": DEVICE,
        }}

    @classmethod
    def IS_CHANGED(cls, model_name: str, device: str = "auto") -> str:
        return f"{file_state(face_model.FACE_SPEC, model_name)}|{device}"

    def load(self, model_name: str, device: str) -> tuple[Any]:
        path, target = installed_path(face_model.FACE_SPEC, model_name), pick_device(device)
        return (self._cache.get((model_identity(path), target), lambda: face_model.load_face(path, target)),)


class ExpressionClassifierLoader:
    DESCRIPTION = ("Load your own facial-expression classifier: an ONNX image classifier from models/expression, "
                   "labels in NAME.txt beside it (one per line) or its 'labels' metadata; input size from the "
                   "model, mean/std from its metadata (ImageNet by default). onnxruntime, CPU or CUDA. "
                   "Never downloads.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LF_EXPRESSION_MODEL",)
    RETURN_NAMES = ("expression_model",)
    _cache = ModelCache()

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        spec = expression_model.EXPRESSION_SPEC
        installed = [n for n in _comfy_list(spec.folder) if n.lower().endswith(spec.formats)]
        return {"required": {
            "model_name": (model_choices(spec, installed), {"tooltip": "ONNX classifier in models/expression "
                           "(e.g. FER+ emotion-ferplus-8.onnx, or your own); labels in the same-name .txt."}),
            "device": (["auto", "cpu", "cuda"], {"default": "auto", "tooltip": "onnxruntime provider."}),
        }}

    @classmethod
    def IS_CHANGED(cls, model_name: str, device: str = "auto") -> str:
        try:
            state = expression_model.model_state(installed_path(expression_model.EXPRESSION_SPEC, model_name))
        except (OSError, ValueError):
            state = "missing"
        return f"{state}|{device}"

    def load(self, model_name: str, device: str) -> tuple[Any]:
        path, target = installed_path(expression_model.EXPRESSION_SPEC, model_name), pick_onnx_device(device)
        return (self._cache.get((expression_model.model_state(path), target), lambda: expression_model.load_expression(path, target)),)


def _comfy_list(folder: str) -> list[str]:
    _comfy.register_model_folder(folder)
    return _comfy.list_models(folder)


@node("LF_DetectFaces", "LF Detect Faces", category="understand", function="detect", output_node=True,
      outputs=[("LF_FRAMES", "faces"), ("STRING", "report")],
      description="Find faces (boxes + 5 landmarks), save square crops with a margin as new items, and tag each "
      "crop's expression with your classifier (LF Expression Classifier Loader) when connected, else by CLIP "
      "zero-shot over a vocabulary when a CLIP model is connected. Reports faces found per cluster and warns "
      "when a cluster has none (anime/3D faces are often missed).")
class DetectFaces:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return inputs({
            "frames": FRAMES,
            "face_model": socket("LF_FACE_MODEL", "From LF Face Loader."),
            "threshold": number("Detection confidence to keep a face.", 0.8, 0.0, 1.0, 0.01),
            "margin": number("Crop margin on each side, as a share of the face box.", 0.3, 0.0, 2.0, 0.05),
            "min_size": integer("Faces narrower than this (pixels) are recorded but not cropped.", 64, 1, 4096),
            "max_faces": integer("Most faces kept per image (the most confident).", 5, 1, 100),
            "expressions": text("Expression vocabulary for CLIP zero-shot, comma or line separated.",
                                ", ".join(faces.EXPRESSIONS), True),
        }, {
            "clip_model": CLIP_OPTIONAL,
            "expression_model": socket("LF_EXPRESSION_MODEL", "Optional classifier (LF Expression Classifier "
                                       "Loader); when connected it tags expressions instead of CLIP and its labels "
                                       "replace the vocabulary."),
        })

    def detect(self, frames: Any, face_model: Any, threshold: float, margin: float, min_size: int,
               max_faces: int, expressions: str, clip_model: Any = None, expression_model: Any = None,
               unique_id: str | None = None) -> dict[str, Any]:
        with Workspace.from_handle(frames) as ws:
            out, report = face_stage.faces_stage(ws, frames, face_model, clip_model, threshold, margin, min_size,
                                            expressions, _comfy.ComfyProgress(unique_id), max_faces,
                                            expression_model)
            crops = ws.items(out)
            sheet = [(f"{out.stage_key[:16]}_faces", titled_sheet([c.path for c in crops],
                                                                          f"{len(crops)} face crops"))]
        report = f"{len(crops)} face crops\n{report}"
        return {"ui": {"images": save_previews(sheet), "text": [report]}, "result": (out, report)}


@node("LF_TagLighting", "LF Tag Lighting", category="understand", function="tag",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      description="Lighting from pixels, no weights: key (high/low), contrast, colour temperature, light "
      "direction, and tags (sunset, golden hour, midday, night, indoor, dramatic, soft, rim light); setting and "
      "time of day by CLIP zero-shot too when a CLIP model is connected.")
class TagLighting:
    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return inputs({
            "frames": FRAMES,
            "clip_min_probability": number("CLIP setting/time tag only when its zero-shot probability reaches "
                                           "this.", 0.5, 0.0, 1.0, 0.05),
        }, {"clip_model": CLIP_OPTIONAL})

    def tag(self, frames: Any, clip_min_probability: float, clip_model: Any = None,
            unique_id: str | None = None) -> tuple:
        with Workspace.from_handle(frames) as ws:
            out = lighting_stage.lighting_stage(ws, frames, clip_model, clip_min_probability,
                                            _comfy.ComfyProgress(unique_id))
            report = _tag_counts(ws.annotations(out, "lighting_tags"), ws.count(out))
        return out, report


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(TagPose, DetectFaces, TagLighting)
# --- model loaders, declared by hand until the loader rewrite replaces this block ---
NODE_CLASS_MAPPINGS.update({"LF_PoseLoader": PoseLoader, "LF_FaceLoader": FaceLoader,
                            "LF_ExpressionClassifierLoader": ExpressionClassifierLoader})
NODE_DISPLAY_NAME_MAPPINGS.update({"LF_PoseLoader": "LF Pose Loader (RTMPose/DWPose/RTMO)",
                                   "LF_FaceLoader": "LF Face Loader (RetinaFace)",
                                   "LF_ExpressionClassifierLoader": "LF Expression Classifier Loader (ONNX)"})
# --- end of model loader block ---
