"""Understanding nodes, part 2: pose, faces and expressions, lighting tags.

Each tagger writes its own annotation and adds its tags to the ``tags`` union the caption
builder reads. Model files resolve through the registry first: rtmlib and facexlib would
otherwise download a missing file (rtmlib treats a missing path as a URL).
"""

from __future__ import annotations

from typing import Any

from ..lora_foundry.media.contact_sheet import titled_sheet
from ..lora_foundry.stages.tagging import face_stage, faces, lighting_stage, pose_stage
from ..lora_foundry.workspace import Workspace
from . import _comfy
from .clusters import save_previews

CATEGORY = f"{_comfy.CATEGORY}/understand"
FRAMES = ("LF_FRAMES", {"tooltip": "Frames or cut-outs in a LoRA Foundry workspace."})
HIDDEN = {"unique_id": "UNIQUE_ID"}
CLIP_OPTIONAL = ("LF_CLIP_MODEL", {"tooltip": "Optional open_clip model (LF CLIP Loader) for zero-shot tags."})


class TagPose:
    DESCRIPTION = ("Keypoints per item (on the cut-out's own box) and tags: action (standing, walking, running, "
                   "jumping, sitting, lying; motion across a shot when frames have timestamps), view (front, "
                   "three-quarter, side, back) and framing (close-up, upper body, full body).")
    CATEGORY = CATEGORY
    FUNCTION = "tag"
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": FRAMES,
            "pose_model": ("LF_POSE_MODEL", {"tooltip": "From LF Pose Loader."}),
            "min_score": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                          "A keypoint counts as seen at or above this confidence."}),
        }, "hidden": HIDDEN}

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


class DetectFaces:
    DESCRIPTION = ("Find faces (boxes + 5 landmarks), save square crops with a margin as new items, and tag each "
                   "crop's expression with your classifier (LF Expression Classifier Loader) when connected, "
                   "else by CLIP zero-shot over a vocabulary when a CLIP model is connected. Reports "
                   "faces found per cluster and warns when a cluster has none (anime/3D faces are often missed).")
    CATEGORY = CATEGORY
    FUNCTION = "detect"
    OUTPUT_NODE = True
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("faces", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": FRAMES,
            "face_model": ("LF_FACE_MODEL", {"tooltip": "From LF Face Loader."}),
            "threshold": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                          "Detection confidence to keep a face."}),
            "margin": ("FLOAT", {"default": 0.3, "min": 0.0, "max": 2.0, "step": 0.05, "tooltip":
                       "Crop margin on each side, as a share of the face box."}),
            "min_size": ("INT", {"default": 64, "min": 1, "max": 4096, "tooltip": "Faces narrower than this "
                         "(pixels) are recorded but not cropped."}),
            "max_faces": ("INT", {"default": 5, "min": 1, "max": 100, "tooltip": "Most faces kept per image "
                          "(the most confident)."}),
            "expressions": ("STRING", {"default": ", ".join(faces.EXPRESSIONS), "multiline": True, "tooltip":
                            "Expression vocabulary for CLIP zero-shot, comma or line separated."}),
        }, "optional": {"clip_model": CLIP_OPTIONAL, "expression_model": (
            "LF_EXPRESSION_MODEL", {"tooltip": "Optional classifier (LF Expression Classifier Loader); when "
                                    "connected it tags expressions instead of CLIP and its labels replace the "
                                    "vocabulary."})}, "hidden": HIDDEN}

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


class TagLighting:
    DESCRIPTION = ("Lighting from pixels, no weights: key (high/low), contrast, colour temperature, light direction, "
                   "and tags (sunset, golden hour, midday, night, indoor, dramatic, soft, rim light); setting and "
                   "time of day by CLIP zero-shot too when a CLIP model is connected.")
    CATEGORY = CATEGORY
    FUNCTION = "tag"
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": FRAMES,
            "clip_min_probability": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                                     "CLIP setting/time tag only when its zero-shot probability reaches this."}),
        }, "optional": {"clip_model": CLIP_OPTIONAL}, "hidden": HIDDEN}

    def tag(self, frames: Any, clip_min_probability: float, clip_model: Any = None,
            unique_id: str | None = None) -> tuple:
        with Workspace.from_handle(frames) as ws:
            out = lighting_stage.lighting_stage(ws, frames, clip_model, clip_min_probability,
                                            _comfy.ComfyProgress(unique_id))
            report = _tag_counts(ws.annotations(out, "lighting_tags"), ws.count(out))
        return out, report


NODE_CLASS_MAPPINGS = {
    "LF_TagPose": TagPose,
    "LF_DetectFaces": DetectFaces,
    "LF_TagLighting": TagLighting,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LF_TagPose": "LF Tag Pose",
    "LF_DetectFaces": "LF Detect Faces",
    "LF_TagLighting": "LF Tag Lighting",
}
