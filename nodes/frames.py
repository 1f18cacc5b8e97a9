"""Frames nodes: load a video or a folder into a workspace, filter, preview, and convert to and
from ComfyUI IMAGE. The graph carries a light handle (LF_FRAMES); pixels stay on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..lora_foundry.media import images
from ..lora_foundry.stages.frames import filter_stage as filters
from ..lora_foundry.stages.frames import ingest_stage as ingest
from ..lora_foundry.stages.frames import interop_stage as interop
from ..lora_foundry.stages.frames.parallel_ingest_stage import ingest_videos
from ..lora_foundry.workspace import Handle, Workspace, workspace_path
from . import _comfy
from . import _tensors as tensors
from ._changed import files_state
from ._declare import boolean, choice, integer, mappings, node, number, socket, text
from ._preview import show_pictures
from ._video_input import default_video, register_routes, resolve_video, video_choices, video_problem

WORKSPACE_INPUT = text("Workspace name: a folder under <output>/lora_foundry/workspaces/ holding the frames on "
                       "disk. Plain name, no slashes.", "default")


def open_workspace(name: str) -> Workspace:
    return Workspace.open(workspace_path(_comfy.output_root(), name))


def resolve_media_path(text: str, what: str, kind: str = "any") -> Path:
    """A path typed by the user, resolved inside the folders workflows may read (ComfyUI's input
    and output folders, the operator's extra roots): absolute paths, ``..`` and symlinks that leave
    them are refused (``lora_foundry/read_roots.py``)."""
    return _comfy.read_roots().resolve(text, what, kind)


@node("LF_LoadVideoFrames", "LF Load Video Frames", category="frames", function="load",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "video": choice(video_choices, "Video: one in ComfyUI's input folder (sub-folders too; the button "
                          "uploads one there), or the bundled example clip. Saved workflows may also hold a path, "
                          "absolute or relative to the input folder (mp4, mkv, avi, mpg, webm, mov, gif, webp).",
                          default_video, video_upload=True),
          "workspace": WORKSPACE_INPUT,
          "mode": choice(["scene", "interval", "keyframes", "all"], "scene: N frames per detected shot; interval: "
                         "one frame every N seconds; keyframes: the encoder's keyframes only (fast); all: every "
                         "frame.", "scene"),
          "interval_s": number("Seconds between frames in interval mode.", 1.0, 0.01, 3600.0, 0.01),
          "per_shot": integer("Frames per shot in scene mode.", 3, 1, 100),
          "start_s": number("Start of the time range, in seconds.", 0.0, 0.0, 1e6, 0.1),
          "end_s": number("End of the time range in seconds; 0 means the end of the video.", 0.0, 0.0, 1e6, 0.1),
          "max_frames": integer("Cap on the number of frames, spread evenly over the video; 0 = no cap.",
                                0, 0, 1_000_000),
          "long_side": integer("Resize so the long side is at most this many pixels; 0 keeps the size.",
                               0, 0, 8192, 8),
          "frame_format": choice(ingest.FRAME_FORMATS, "How frames are stored in the workspace: jpg (quality 95, "
                                 "fast), png (lossless).", "jpg"),
      })
class LoadVideoFrames:
    """Samples frames from a video (anything FFmpeg decodes, GIF and animated WebP too) into a workspace
    on disk. Scene mode finds the cuts and takes N frames per shot; every frame keeps its source,
    timestamp and shot id. Resumes where a cancelled run stopped."""

    @classmethod
    def VALIDATE_INPUTS(cls, video: str) -> bool | str:
        """Takes any value that names a video, listed or typed (ComfyUI then skips its list check)."""
        return video_problem(video) or True

    @classmethod
    def IS_CHANGED(cls, video: str, **kwargs: Any) -> str:
        return files_state(lambda: [resolve_video(video)], video)

    def load(self, video: str, workspace: str, mode: str, interval_s: float, per_shot: int, start_s: float,
             end_s: float, max_frames: int, long_side: int, frame_format: str,
             unique_id: str | None = None) -> tuple:
        path = resolve_video(video)
        options = ingest.VideoIngestOptions(mode=mode, interval_s=interval_s, per_shot=per_shot, start_s=start_s,
                                            end_s=end_s, max_frames=max_frames, long_side=long_side,
                                            frame_format=frame_format)
        with open_workspace(workspace) as ws:  # one unit: here, or on the operator's Ray cluster (docs/scaling.md)
            handle = ingest_videos(ws, [path], options, workers=1, progress=_comfy.ComfyProgress(unique_id),
                                   runner=_comfy.ray_runner())[0]
            summary = ingest.ingest_summary(ws, handle)
            report = {"frames": ws.count(handle), "shots": summary.shots, "cuts_at_frames": list(summary.cuts),
                      "missing_frames": list(summary.missing_frames)}
        return handle, json.dumps(report, indent=1)


@node("LF_LoadImageFolder", "LF Load Image Folder", category="frames", function="load",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "folder": text("Image folder, relative to ComfyUI's input folder (absolute paths only inside the input "
                         "or output folders, or a folder the server operator allowed; see docs/trust.md)."),
          "workspace": WORKSPACE_INPUT,
          "long_side": integer("Resize so the long side is at most this; 0 keeps the size.", 0, 0, 8192, 8),
          "recursive": boolean("Also read images in sub-folders.", False),
      })
class LoadImageFolder:
    """Copies every readable image of a folder (png, jpg, webp, ...; EXIF rotation, CMYK, 16-bit and
    palette images handled) into a workspace. Broken files are skipped and listed."""

    @classmethod
    def IS_CHANGED(cls, folder: str, recursive: bool = False, **kwargs: Any) -> str:
        """The images the load would read (sub-folders too when recursive), with their sizes and mtimes."""
        return files_state(lambda: images.list_image_files(resolve_media_path(folder, "folder", "folder"),
                                                           recursive=recursive, roots=_comfy.read_roots()),
                           folder)

    def load(self, folder: str, workspace: str, long_side: int, recursive: bool,
             unique_id: str | None = None) -> tuple:
        path = resolve_media_path(folder, "folder", "folder")
        with open_workspace(workspace) as ws:
            handle = ingest.ingest_folder(ws, path, long_side, recursive, _comfy.ComfyProgress(unique_id),
                                          roots=_comfy.read_roots())
            skipped = ingest.ingest_summary(ws, handle).skipped
            report = {"images": ws.count(handle), "skipped": [entry.as_dict() for entry in skipped]}
        return handle, json.dumps(report, indent=1)


@node("LF_FilterFrames", "LF Filter Frames (duplicates, blur)", category="frames", function="filter",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "frames": socket("LF_FRAMES", "Frames to filter."),
          "dedup": boolean("Drop near-duplicate frames (keeps the first).", True),
          "hash_threshold": integer("Perceptual-hash distance at or under which two frames count as duplicates.",
                                    6, 0, 32),
          "blur": boolean("Drop blurry and too dark frames.", True),
          "blur_relative": number("A frame is blurry when its sharpness is under this share of its shot's "
                                  "median.", 0.35, 0.0, 1.0, 0.01),
      })
class FilterFrames:
    """Drops near-duplicates over the whole set (perceptual hash) and blurry or too dark frames
    (variance of the Laplacian, judged per shot), and reports each dropped frame and why."""

    def filter(self, frames: Handle, dedup: bool, hash_threshold: int, blur: bool, blur_relative: float,
               unique_id: str | None = None) -> tuple:
        options = filters.FilterOptions(dedup=dedup, hash_threshold=hash_threshold, blur=blur,
                                        blur_relative=blur_relative)
        with Workspace.from_handle(frames) as ws:
            handle, report = filters.filter_frames(ws, frames, options,
                                                   _comfy.ComfyProgress(unique_id))
        return handle, json.dumps(report, indent=1)


@node("LF_FramesToImages", "LF Frames to IMAGE", category="frames", function="convert",
      outputs=[("IMAGE", "images"), ("MASK", "masks"), ("STRING", "captions")],
      inputs={
          "frames": socket("LF_FRAMES", "Frames to convert."),
          "output": choice(["batch", "contact_sheet"], "batch: one IMAGE per frame; contact_sheet: one IMAGE with "
                           "thumbnails of the slice.", "batch"),
          "start": integer("First frame of the slice.", 0, 0, 10_000_000),
          "count": integer("How many frames (keep small: an IMAGE batch lives in RAM).", 16, 1, 4096),
          "long_side": integer("Frames are fitted (letterboxed) into this size so the batch has one shape.",
                               768, 64, 8192, 8),
      })
class FramesToImages:
    """Turns frames into a ComfyUI IMAGE batch (a chosen slice, resized to one size) or one contact
    sheet, for previews and other node packs. Use start/count to walk a big set in chunks."""

    def convert(self, frames: Handle, output: str, start: int, count: int, long_side: int,
                unique_id: str | None = None) -> tuple:
        with Workspace.from_handle(frames) as ws:
            batch = interop.frames_to_arrays(ws, frames, start, count, long_side, output == "contact_sheet")
        return tensors.images_to_tensor(list(batch.rgb)), tensors.masks_to_tensor(list(batch.alpha)), "\n".join(batch.captions)


@node("LF_ImagesToFrames", "LF IMAGE to Frames", category="frames", function="convert",
      outputs=[("LF_FRAMES", "frames")],
      inputs={
          "images": socket("IMAGE", "Images to add."),
          "workspace": WORKSPACE_INPUT,
      },
      optional={
          "captions": text("Optional captions, one line per image, stored as each frame's caption.", "", True,
                           forceInput=True),
          "masks": socket("MASK", "Optional masks, stored as the frames' alpha channel."),
      })
class ImagesToFrames:
    """Adds images made by other nodes (e.g. generated ones) to a workspace as frames, with optional
    captions (one line per image) and masks."""

    def convert(self, images: Any, workspace: str, captions: str = "", masks: Any = None,
                unique_id: str | None = None) -> tuple:
        rgb = np.stack(tensors.tensor_to_images(images))
        alpha = tensors.masks_for_images(masks, rgb.shape[:3]) if masks is not None else None
        lines = [line.strip() for line in captions.splitlines()] if captions else []
        with open_workspace(workspace) as ws:
            handle = interop.add_arrays(ws, rgb, alpha, lines, _comfy.ComfyProgress(unique_id))
        return (handle,)


@node("LF_PreviewFrames", "LF Preview Frames", category="frames", function="preview", output_node=True,
      inputs={
          "frames": socket("LF_FRAMES", "Frames to preview."),
          "max_thumbnails": integer("How many thumbnails to show, spread over the set.", 24, 1, 256),
      })
class PreviewFrames:
    """Shows thumbnails of the frames in the node, with how many were kept and dropped."""

    def preview(self, frames: Handle, max_thumbnails: int, unique_id: str | None = None) -> dict[str, Any]:
        with Workspace.from_handle(frames) as ws:
            thumbnails, summary = interop.preview_thumbnails(ws, frames, max_thumbnails)
            shown = show_pictures(thumbnails)
        return {"ui": {"images": shown, "text": [summary]}}


register_routes()  # the bundled clip's preview; ComfyUI mounts routes added while it imports packs
NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    LoadVideoFrames, LoadImageFolder, FilterFrames, FramesToImages, ImagesToFrames, PreviewFrames)
