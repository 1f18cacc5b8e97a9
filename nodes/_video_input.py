"""The ``video`` input of LF Load Video Frames: what the list offers and how a chosen value becomes a file.

The list is what ComfyUI's own LoadImage / LoadVideo offer (the videos in ComfyUI's input folder,
sub-folders too, as ``sub/clip.mp4``) plus the example clip that ships in the package, so a fresh
install has something to run. The input is declared with ``video_upload`` so the front end adds
its upload button (it posts to ``/upload/image``, which takes videos) and previews the chosen clip
from the input folder.

A value that is not in the list still works when it names a file: workflows saved when the input
was a text field hold typed paths (relative to the input folder, or absolute), and ComfyUI skips
its "value not in list" check for an input the node validates itself (``VALIDATE_INPUTS``).
``resolve_video`` is the one place a value becomes a path, so a confinement rule for typed paths
applies by changing that one function.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..lora_foundry.data import example_videos
from ..lora_foundry.media.video import VIDEO_SUFFIXES
from . import _comfy

MAX_LISTED = 5000  # a huge input folder must not make /object_info slow; typed paths still work past it
EXAMPLE_ROUTE = "/lora_foundry/example_video/{name}"  # js/video_input.js previews the bundled clip from here


def input_videos(root: Path | None) -> list[str]:
    """Videos under ComfyUI's input folder as ``sub/clip.mp4`` (sorted, hidden folders skipped)."""
    if root is None or not root.is_dir():
        return []
    found: list[str] = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        base = Path(folder).relative_to(root)
        found += [(base / name).as_posix() for name in files
                  if Path(name).suffix.lower() in VIDEO_SUFFIXES and not name.startswith(".")]
        if len(found) >= MAX_LISTED:
            break
    return sorted(found)[:MAX_LISTED]


def video_choices() -> list[str]:
    """The choices of the ``video`` input: the input folder's videos, then the bundled examples."""
    listed = input_videos(_comfy.input_root())
    return listed + [name for name in example_videos() if name not in listed]


def default_video() -> str | None:
    """The value a new node starts with: the bundled example, which every install has."""
    return next(iter(example_videos()), None)


def resolve_video(value: str) -> Path:
    """The file a ``video`` value names: a file inside the folders workflows may read (ComfyUI's input
    folder first; typed paths from older workflows, absolute or relative, are refused when they lead
    outside them: ``lora_foundry/read_roots.py``), else the bundled example of that name."""
    text = value.strip().strip('"')
    if not text:
        raise ValueError("no video chosen")
    try:
        return _comfy.read_roots().resolve(text, "video", "file")
    except FileNotFoundError as error:
        bundled = example_videos().get(text)
        if bundled is not None:
            return bundled
        raise FileNotFoundError(f"{error} (choose one from the list, upload one, or put it in ComfyUI's "
                                "input folder)") from error


def video_problem(value: str) -> str | None:
    """Why ``value`` names no video (for VALIDATE_INPUTS), or None when it does."""
    try:
        resolve_video(value)
    except (OSError, ValueError) as error:
        return str(error)
    return None


async def serve_example_video(request: Any) -> Any:
    """The bundled example clip, for the node's preview (ComfyUI's /view only serves its own folders).
    Only names ``example_videos`` lists are served: the route reads no other file."""
    from aiohttp import web

    path = example_videos().get(request.match_info.get("name", ""))
    if path is None:
        raise web.HTTPNotFound()
    return web.FileResponse(path)


def register_routes() -> bool:
    """Add the example clip's route to ComfyUI's server (a registration, no work; False outside)."""
    return _comfy.add_get_route(EXAMPLE_ROUTE, serve_example_video)
