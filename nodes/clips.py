"""Video clips from shots: cut, filter and caption them (the clips family of the engine)."""

from __future__ import annotations

from typing import Any

from ..lora_foundry import names
from ..lora_foundry.captions.strategies import LORA_TYPES
from ..lora_foundry.stages.clips import caption_stage, cut_stage, filter_stage
from ..lora_foundry.stages.clips.rules import MODEL_RULES, X264_PRESETS, ClipOptions
from ..lora_foundry.workspace import Handle, Workspace
from . import _comfy, _preview
from ._declare import boolean, choice, integer, mappings, node, number, socket, text

MAX_STRIPS = 24


def clip_previews(ws: Workspace, clips: Handle) -> tuple[list[dict[str, str]], list[str]]:
    """Each clip's contact strip (a file of the workspace, under ComfyUI's output folder) for the
    node's preview, and one line per clip (name, shot, frames, caption when there is one)."""
    captions = ws.annotations(clips, names.CAPTION)
    strips, lines = [], []
    for item in ws.items(clips):
        meta = item.meta.get(names.META_CLIP, {})
        lines.append(f"{item.path.name}: shot {item.shot}, {meta.get('frames')} frames at {meta.get('fps'):g} fps"
                     + (f": {captions[item.id]}" if item.id in captions else ""))
        if len(strips) < MAX_STRIPS and meta.get("strip"):
            strips.append(ws.root / meta["strip"])
    return _preview.show_files(strips), lines


def _result(ws: Workspace, clips: Handle, header: str) -> dict[str, Any]:
    strips, lines = clip_previews(ws, clips)
    report = "\n".join([header, *lines])
    return {"ui": {"images": strips, "text": [report]}, "result": (clips, report)}


@node("LF_CutClips", "LF Cut Clips", category="clips", function="cut", output_node=True,
      outputs=[("LF_CLIPS", "clips"), ("STRING", "report")],
      inputs={
          "frames": socket("LF_FRAMES", "Frames of a video ingest, or a selection of them (e.g. one cluster)."),
          "model": choice(sorted(MODEL_RULES), "The video model the clips are for: sets frame count rule, "
                          "frame rate and bucket size.", "wan"),
          "min_seconds": number("Shortest clip, in seconds (shots shorter than this give no clip).", 2.0, 0.5,
                                30.0, 0.1),
          "max_seconds": number("Longest clip, in seconds (the model's frame limit applies too).", 5.0, 0.5,
                                30.0, 0.1),
          "split_long_shots": boolean("A long shot gives several clips, spread over it.", True),
          "max_per_shot": integer("At most this many clips from one shot.", 4, 1, 1000),
      },
      optional={
          "resolution": integer("Short side of the bucket; 0 = the model's usual size (Wan 480, HunyuanVideo "
                                "544, CogVideoX 480). Never upscales.", 0, 0, 2160, 16),
          "crf": integer("x264 quality (lower is better and bigger; 18 is visually lossless).", 18, 0, 51),
          "x264_preset": choice(X264_PRESETS, "x264 speed: slower presets give smaller files at the same "
                                "quality.", "medium"),
      })
class CutClips:
    """Cuts the shots of a video (the cuts LF Load Video Frames found) into training clips that never
    cross a cut: the target model's frame count (N*4+1 for Wan, HunyuanVideo and CogVideoX), its frame
    rate (16 / 24 / 8 fps, resampled by the source's timestamps), an aspect bucket near its training
    size, a duration window (2-5 s by default). Long shots give several clips, shots too short give
    none. Given a selection of frames (a character's cluster), only the clips those frames belong to are
    cut. H.264 MP4 files, written atomically and resumable; a contact strip per clip is shown."""

    def cut(self, frames: Handle, model: str, min_seconds: float, max_seconds: float, split_long_shots: bool,
            max_per_shot: int, resolution: int = 0, crf: int = 18, x264_preset: str = "medium",
            unique_id: str | None = None) -> dict[str, Any]:
        options = ClipOptions(model=model, min_s=min_seconds, max_s=max_seconds, split_long=split_long_shots,
                              max_per_shot=max_per_shot, resolution=resolution, crf=crf, preset=x264_preset)
        with Workspace.from_handle(frames) as ws:
            clips = cut_stage.cut_clips_stage(ws, frames, options, _comfy.ComfyProgress(unique_id))
            plan = ws.stage_info(clips).get(names.INFO_CLIP_PLAN, {})
            header = (f"{ws.count(clips)} {model} clips, {plan.get('size')} at {plan.get('fps')} fps; "
                      f"shots too short: {plan.get('short_shots') or 'none'}")
            return _result(ws, clips, header)


@node("LF_FilterClips", "LF Filter Clips", category="clips", function="filter", output_node=True,
      outputs=[("LF_CLIPS", "clips"), ("STRING", "report")],
      inputs={
          "clips": socket("LF_CLIPS", "Clips from LF Cut Clips."),
          "min_motion": number("Mean grey-level change per frame (0-255) below which a clip is static.", 0.4,
                               0.0, 50.0, 0.05),
          "drop_dark": boolean("Drop clips too dark to learn from.", True),
          "drop_blurred": boolean("Drop clips much less sharp than the others.", True),
          "drop_duplicates": boolean("Drop near-duplicates of an earlier clip (perceptual hash).", True),
      })
class FilterClips:
    """Drops clips a video LoRA should not learn from, saying why: static (nothing moves), too dark,
    blurred (much less sharp than the other clips) and near-duplicates of an earlier clip."""

    def filter(self, clips: Handle, min_motion: float, drop_dark: bool, drop_blurred: bool, drop_duplicates: bool,
               unique_id: str | None = None) -> dict[str, Any]:
        options = filter_stage.ClipFilterOptions(min_motion=min_motion, dark=drop_dark, blur=drop_blurred,
                                                 dedup=drop_duplicates)
        with Workspace.from_handle(clips) as ws:
            kept = filter_stage.filter_clips(ws, clips, options)
            report = ws.stage_info(kept).get(names.INFO_REPORT, {})
            dropped = "; ".join(f"{name}: {why}" for name, why in report.get("dropped", {}).items())
            return _result(ws, kept, f"{report.get('kept')} clips kept" + (f"; dropped {dropped}" if dropped else ""))


@node("LF_CaptionClips", "LF Caption Clips", category="clips", function="caption", output_node=True,
      outputs=[("LF_CLIPS", "clips"), ("STRING", "report")],
      inputs={
          "clips": socket("LF_CLIPS", "Clips to caption."),
          "trigger": text("Trigger word: first in every caption.", "ohwx"),
          "class_word": text("Class word after the trigger (woman, dog, ...).", "person"),
          "lora_type": choice(LORA_TYPES, "What the LoRA learns: its binding rule sets the caption's head.",
                              "character"),
          "template": text("Order of the caption's parts: {head}, {action}, {tags}, {camera} only; {head} is "
                           "required.", caption_stage.DEFAULT_TEMPLATE),
      },
      optional={
          "tagged_frames": socket("LF_FRAMES", "Frames of the same video with pose / WD14 tags (LF Tag Pose, "
                                  "LF Tag Frames): their tags describe the clips they fall in."),
      })
class CaptionClips:
    """Writes a natural-language caption per clip in the video guide's style: trigger and class first
    (the LoRA type's binding rule), then the action and a turn towards or away from the camera (from the
    pose tags of the frames inside the clip, when tagged frames are connected), setting tags (the tag
    union of those frames) and the camera motion measured from the clip (static, pan, tilt, zoom,
    handheld)."""

    def caption(self, clips: Handle, trigger: str, class_word: str, lora_type: str, template: str,
                tagged_frames: Handle | None = None, unique_id: str | None = None) -> dict[str, Any]:
        with Workspace.from_handle(clips) as ws:
            captioned = caption_stage.caption_clips(
                ws, clips, trigger.strip(), class_word.strip(), lora_type=lora_type, tagged_frames=tagged_frames,
                template=template, progress=_comfy.ComfyProgress(unique_id))
            return _result(ws, captioned, f"{ws.count(captioned)} clips captioned")


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(CutClips, FilterClips, CaptionClips)
