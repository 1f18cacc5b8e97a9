"""Understanding nodes, part 2: pose, faces and expressions, lighting tags.

Each tagger writes its own annotation and adds its tags to the ``tags`` union the caption
builder reads. Model files resolve through the registry first: rtmlib and facexlib would
otherwise download a missing file (rtmlib treats a missing path as a URL).
"""

from __future__ import annotations

from typing import Any

from ..lora_foundry import names
from ..lora_foundry.media.contact_sheet import titled_sheet
from ..lora_foundry.stages.tagging import face_stage, faces, lighting_stage, pose_stage
from ..lora_foundry.workspace import Workspace
from . import _comfy
from ._declare import integer, mappings, node, number, socket, text
from ._preview import show_pictures

FRAMES = socket("LF_FRAMES", "Frames or cut-outs in a LoRA Foundry workspace.")
CLIP_OPTIONAL = socket("LF_CLIP_MODEL", "Optional open_clip model (LF CLIP Loader) for zero-shot tags.")


@node("LF_TagPose", "LF Tag Pose", category="understand", function="tag",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "frames": FRAMES,
          "pose_model": socket("LF_POSE_MODEL", "From LF Pose Loader."),
          "min_score": number("A keypoint counts as seen at or above this confidence.", 0.3, 0.0, 1.0, 0.05),
      })
class TagPose:
    """Keypoints per item (on the cut-out's own box) and tags: action (standing, walking, running,
    jumping, sitting, lying; motion across a shot when frames have timestamps), view (front,
    three-quarter, side, back) and framing (close-up, upper body, full body)."""

    def tag(self, frames: Any, pose_model: Any, min_score: float, unique_id: str | None = None) -> tuple:
        with Workspace.from_handle(frames) as ws:
            out = pose_stage.pose_stage(ws, frames, pose_model, min_score, _comfy.ComfyProgress(unique_id))
            report = _tag_counts(ws.annotations(out, names.POSE_TAGS), ws.count(out))
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


@node("LF_DetectFaces", "LF Detect Faces", category="understand", function="detect", output_node=True,
      outputs=[("LF_FRAMES", "faces"), ("STRING", "report")],
      inputs={
          "frames": FRAMES,
          "face_model": socket("LF_FACE_MODEL", "From LF Face Loader."),
          "threshold": number("Detection confidence to keep a face.", 0.8, 0.0, 1.0, 0.01),
          "margin": number("Crop margin on each side, as a share of the face box.", 0.3, 0.0, 2.0, 0.05),
          "min_size": integer("Faces narrower than this (pixels) are recorded but not cropped.", 64, 1, 4096),
          "max_faces": integer("Most faces kept per image (the most confident).", 5, 1, 100),
          "expressions": text("Expression vocabulary for CLIP zero-shot, comma or line separated.",
                              ", ".join(faces.EXPRESSIONS), True),
      },
      optional={
          "clip_model": CLIP_OPTIONAL,
          "expression_model": socket("LF_EXPRESSION_MODEL", "Optional classifier (LF Expression Classifier "
                                     "Loader); when connected it tags expressions instead of CLIP and its labels "
                                     "replace the vocabulary."),
      })
class DetectFaces:
    """Find faces (boxes + 5 landmarks), save square crops with a margin as new items, and tag each
    crop's expression with your classifier (LF Expression Classifier Loader) when connected, else by
    CLIP zero-shot over a vocabulary when a CLIP model is connected. Reports faces found per cluster and
    warns when a cluster has none (anime/3D faces are often missed)."""

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
        return {"ui": {"images": show_pictures(sheet), "text": [report]}, "result": (out, report)}


@node("LF_TagLighting", "LF Tag Lighting", category="understand", function="tag",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "frames": FRAMES,
          "clip_min_probability": number("CLIP setting/time tag only when its zero-shot probability reaches "
                                         "this.", 0.5, 0.0, 1.0, 0.05),
      },
      optional={"clip_model": CLIP_OPTIONAL})
class TagLighting:
    """Lighting from pixels, no weights: key (high/low), contrast, colour temperature, light direction,
    and tags (sunset, golden hour, midday, night, indoor, dramatic, soft, rim light); setting and time
    of day by CLIP zero-shot too when a CLIP model is connected."""

    def tag(self, frames: Any, clip_min_probability: float, clip_model: Any = None,
            unique_id: str | None = None) -> tuple:
        with Workspace.from_handle(frames) as ws:
            out = lighting_stage.lighting_stage(ws, frames, clip_model, clip_min_probability,
                                            _comfy.ComfyProgress(unique_id))
            report = _tag_counts(ws.annotations(out, names.LIGHTING_TAGS), ws.count(out))
        return out, report


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(TagPose, DetectFaces, TagLighting)
