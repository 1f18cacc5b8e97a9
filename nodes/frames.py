"""Frames nodes: load a video or a folder into a workspace, filter, preview, and convert to and
from ComfyUI IMAGE. The graph carries a light handle (LF_FRAMES); pixels stay on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..lora_foundry import tensors
from ..lora_foundry.media import images
from ..lora_foundry.stages.frames import filter_stage as filters
from ..lora_foundry.stages.frames import ingest_stage as ingest
from ..lora_foundry.stages.frames import interop_stage as interop
from ..lora_foundry.workspace import Handle, Workspace, workspace_path
from . import _comfy

CATEGORY = f"{_comfy.CATEGORY}/frames"
HIDDEN = {"hidden": {"unique_id": "UNIQUE_ID"}}
WORKSPACE_INPUT = ("STRING", {"default": "default", "tooltip": "Workspace name: a folder under "
                   "<output>/lora_foundry/workspaces/ holding the frames on disk. Plain name, no slashes."})


def open_workspace(name: str) -> Workspace:
    return Workspace.open(workspace_path(_comfy.output_root(), name))


def resolve_media_path(text: str, what: str) -> Path:
    """A path typed by the user: absolute, or relative to ComfyUI's input folder."""
    raw = Path(text.strip().strip('"')).expanduser()
    if not text.strip():
        raise ValueError(f"no {what} given")
    if not raw.is_absolute():
        base = _comfy.input_root() or Path.cwd()
        raw = base / raw
    if not raw.exists():
        raise FileNotFoundError(f"{what} {raw} does not exist")
    return raw


def file_signature(path_text: str) -> str:
    """For IS_CHANGED: ComfyUI re-runs a node only when this changes (the file was edited)."""
    try:
        path = resolve_media_path(path_text, "file")
        stat = path.stat()
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    except (OSError, ValueError):
        return path_text


class LoadVideoFrames:
    DESCRIPTION = ("Samples frames from a video (anything FFmpeg decodes, GIF and animated WebP too) into a "
                   "workspace on disk. Scene mode finds the cuts and takes N frames per shot; every frame "
                   "keeps its source, timestamp and shot id. Resumes where a cancelled run stopped.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "video": ("STRING", {"default": "", "tooltip": "Video file: an absolute path, or a path relative "
                                 "to ComfyUI's input folder (mp4, mkv, avi, mpg, webm, mov, gif, webp)."}),
            "workspace": WORKSPACE_INPUT,
            "mode": (["scene", "interval", "keyframes", "all"], {"default": "scene", "tooltip":
                     "scene: N frames per detected shot; interval: one frame every N seconds; keyframes: "
                     "the encoder's keyframes only (fast); all: every frame."}),
            "interval_s": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 3600.0, "step": 0.01,
                                     "tooltip": "Seconds between frames in interval mode."}),
            "per_shot": ("INT", {"default": 3, "min": 1, "max": 100, "tooltip": "Frames per shot in scene mode."}),
            "start_s": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.1,
                                  "tooltip": "Start of the time range, in seconds."}),
            "end_s": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1e6, "step": 0.1,
                                "tooltip": "End of the time range in seconds; 0 means the end of the video."}),
            "max_frames": ("INT", {"default": 0, "min": 0, "max": 1_000_000, "tooltip":
                                   "Cap on the number of frames, spread evenly over the video; 0 = no cap."}),
            "long_side": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8, "tooltip":
                                  "Resize so the long side is at most this many pixels; 0 keeps the size."}),
            "frame_format": (list(ingest.FRAME_FORMATS), {"default": "jpg", "tooltip":
                             "How frames are stored in the workspace: jpg (quality 95, fast), png (lossless)."}),
        }, **HIDDEN}

    @classmethod
    def IS_CHANGED(cls, video: str, **kwargs: Any) -> str:
        return file_signature(video)

    def load(self, video: str, workspace: str, unique_id: str | None = None, **options: Any) -> tuple:
        path = resolve_media_path(video, "video")
        with open_workspace(workspace) as ws:
            handle = ingest.ingest_video(ws, path, ingest.VideoIngestOptions(**options),
                                         _comfy.ComfyProgress(unique_id))
            summary = ingest.ingest_summary(ws, handle)
            report = {"frames": ws.count(handle), "shots": summary.shots, "cuts_at_frames": list(summary.cuts),
                      "missing_frames": list(summary.missing_frames)}
        return handle, json.dumps(report, indent=1)


class LoadImageFolder:
    DESCRIPTION = ("Copies every readable image of a folder (png, jpg, webp, ...; EXIF rotation, CMYK, 16-bit "
                   "and palette images handled) into a workspace. Broken files are skipped and listed.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "folder": ("STRING", {"default": "", "tooltip": "Image folder: absolute, or relative to ComfyUI's input folder."}),
            "workspace": WORKSPACE_INPUT,
            "long_side": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 8,
                                  "tooltip": "Resize so the long side is at most this; 0 keeps the size."}),
            "recursive": ("BOOLEAN", {"default": False, "tooltip": "Also read images in sub-folders."}),
        }, **HIDDEN}

    @classmethod
    def IS_CHANGED(cls, folder: str, recursive: bool = False, **kwargs: Any) -> str:
        """The images the load would read (sub-folders too when recursive), with their mtimes."""
        try:
            files = images.list_image_files(resolve_media_path(folder, "folder"), recursive=recursive)
            return ";".join(f"{p}:{p.stat().st_mtime_ns}" for p in files)
        except (OSError, ValueError):
            return folder

    def load(self, folder: str, workspace: str, long_side: int, recursive: bool,
             unique_id: str | None = None) -> tuple:
        path = resolve_media_path(folder, "image folder")
        with open_workspace(workspace) as ws:
            handle = ingest.ingest_folder(ws, path, long_side, recursive, _comfy.ComfyProgress(unique_id))
            skipped = ingest.ingest_summary(ws, handle).skipped
            report = {"images": ws.count(handle), "skipped": [entry.as_dict() for entry in skipped]}
        return handle, json.dumps(report, indent=1)


class FilterFrames:
    DESCRIPTION = ("Drops near-duplicates over the whole set (perceptual hash) and blurry or too dark frames "
                   "(variance of the Laplacian, judged per shot), and reports each dropped frame and why.")
    CATEGORY = CATEGORY
    FUNCTION = "filter"
    RETURN_TYPES = ("LF_FRAMES", "STRING")
    RETURN_NAMES = ("frames", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": ("LF_FRAMES", {"tooltip": "Frames to filter."}),
            "dedup": ("BOOLEAN", {"default": True, "tooltip": "Drop near-duplicate frames (keeps the first)."}),
            "hash_threshold": ("INT", {"default": 6, "min": 0, "max": 32, "tooltip":
                               "Perceptual-hash distance at or under which two frames count as duplicates."}),
            "blur": ("BOOLEAN", {"default": True, "tooltip": "Drop blurry and too dark frames."}),
            "blur_relative": ("FLOAT", {"default": 0.35, "min": 0.0, "max": 1.0, "step": 0.01, "tooltip":
                              "A frame is blurry when its sharpness is under this share of its shot's median."}),
        }, **HIDDEN}

    def filter(self, frames: Handle, unique_id: str | None = None, **options: Any) -> tuple:
        with Workspace.from_handle(frames) as ws:
            handle, report = filters.filter_frames(ws, frames, filters.FilterOptions(**options),
                                                   _comfy.ComfyProgress(unique_id))
        return handle, json.dumps(report, indent=1)


class FramesToImages:
    DESCRIPTION = ("Turns frames into a ComfyUI IMAGE batch (a chosen slice, resized to one size) or one contact "
                   "sheet, for previews and other node packs. Use start/count to walk a big set in chunks.")
    CATEGORY = CATEGORY
    FUNCTION = "convert"
    RETURN_TYPES = ("IMAGE", "MASK", "STRING")
    RETURN_NAMES = ("images", "masks", "captions")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": ("LF_FRAMES", {"tooltip": "Frames to convert."}),
            "output": (["batch", "contact_sheet"], {"default": "batch", "tooltip":
                       "batch: one IMAGE per frame; contact_sheet: one IMAGE with thumbnails of the slice."}),
            "start": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip": "First frame of the slice."}),
            "count": ("INT", {"default": 16, "min": 1, "max": 4096, "tooltip":
                              "How many frames (keep small: an IMAGE batch lives in RAM)."}),
            "long_side": ("INT", {"default": 768, "min": 64, "max": 8192, "step": 8, "tooltip":
                                  "Frames are fitted (letterboxed) into this size so the batch has one shape."}),
        }}

    def convert(self, frames: Handle, output: str, start: int, count: int, long_side: int) -> tuple:
        with Workspace.from_handle(frames) as ws:
            batch = interop.frames_to_arrays(ws, frames, start, count, long_side, output == "contact_sheet")
        return tensors.images_to_tensor(list(batch.rgb)), tensors.masks_to_tensor(list(batch.alpha)), "\n".join(batch.captions)


class ImagesToFrames:
    DESCRIPTION = ("Adds images made by other nodes (e.g. generated ones) to a workspace as frames, with optional "
                   "captions (one line per image) and masks.")
    CATEGORY = CATEGORY
    FUNCTION = "convert"
    RETURN_TYPES = ("LF_FRAMES",)
    RETURN_NAMES = ("frames",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Images to add."}),
            "workspace": WORKSPACE_INPUT,
        }, "optional": {
            "captions": ("STRING", {"default": "", "multiline": True, "forceInput": True, "tooltip":
                         "Optional captions, one line per image, stored as each frame's caption."}),
            "masks": ("MASK", {"tooltip": "Optional masks, stored as the frames' alpha channel."}),
        }, **HIDDEN}

    def convert(self, images: Any, workspace: str, captions: str = "", masks: Any = None,
                unique_id: str | None = None) -> tuple:
        rgb = np.stack(tensors.tensor_to_images(images))
        alpha = tensors.masks_for_images(masks, rgb.shape[:3]) if masks is not None else None
        lines = [line.strip() for line in captions.splitlines()] if captions else []
        with open_workspace(workspace) as ws:
            handle = interop.add_arrays(ws, rgb, alpha, lines, _comfy.ComfyProgress(unique_id))
        return (handle,)


class PreviewFrames:
    DESCRIPTION = "Shows thumbnails of the frames in the node, with how many were kept and dropped."
    CATEGORY = CATEGORY
    FUNCTION = "preview"
    RETURN_TYPES = ()
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": ("LF_FRAMES", {"tooltip": "Frames to preview."}),
            "max_thumbnails": ("INT", {"default": 24, "min": 1, "max": 256,
                                       "tooltip": "How many thumbnails to show, spread over the set."}),
        }}

    def preview(self, frames: Handle, max_thumbnails: int) -> dict[str, Any]:
        with Workspace.from_handle(frames) as ws:
            files, summary = interop.write_previews(ws, frames, max_thumbnails, _comfy.temp_root())
        images = [{"filename": f.name, "subfolder": f.parent.name, "type": "temp"} for f in files]
        return {"ui": {"images": images, "text": [summary]}}


NODE_CLASS_MAPPINGS = {
    "LF_LoadVideoFrames": LoadVideoFrames,
    "LF_LoadImageFolder": LoadImageFolder,
    "LF_FilterFrames": FilterFrames,
    "LF_FramesToImages": FramesToImages,
    "LF_ImagesToFrames": ImagesToFrames,
    "LF_PreviewFrames": PreviewFrames,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LF_LoadVideoFrames": "LF Load Video Frames",
    "LF_LoadImageFolder": "LF Load Image Folder",
    "LF_FilterFrames": "LF Filter Frames (duplicates, blur)",
    "LF_FramesToImages": "LF Frames to IMAGE",
    "LF_ImagesToFrames": "LF IMAGE to Frames",
    "LF_PreviewFrames": "LF Preview Frames",
}
