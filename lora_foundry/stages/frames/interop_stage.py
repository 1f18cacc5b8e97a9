"""Frames out of the workspace as uint8 batches (for IMAGE/MASK, via ``tensors``) and into it as new
items, and preview thumbnails.

IMAGE batches live in RAM (about 24 MB per 1080p frame as float32), so frames leave the workspace
only as a slice (start/count) fitted to one size, or as a contact sheet; images come in as new
items whose stage key is the hash of their pixels, so the same images give the same handle.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import names
from ...media import images
from ...media.contact_sheet import contact_sheet
from ...progress import Progress
from ...workspace import Handle, Item, NewItem, Workspace

PREVIEW_LONG_SIDE = 256


@dataclass(frozen=True)
class ArrayBatch:
    rgb: np.ndarray  # B x H x W x 3 uint8
    alpha: np.ndarray  # B x H x W bool (all True when the frames have no alpha)
    captions: list[str]


def _fit(pixels: np.ndarray, long_side: int) -> np.ndarray:
    """Letterbox ``pixels`` into a ``long_side`` square (black bars, alpha 0 outside)."""
    if pixels.shape[2] == 3:
        pixels = np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=2)
    height, width = pixels.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    resized = images.resize_image(pixels, size)
    canvas = np.zeros((long_side, long_side, 4), np.uint8)
    top, left = (long_side - size[0]) // 2, (long_side - size[1]) // 2
    canvas[top : top + size[0], left : left + size[1]] = resized
    return canvas


def frames_to_arrays(ws: Workspace, handle: Handle, start: int, count: int, long_side: int,
                     as_contact_sheet: bool) -> ArrayBatch:
    """A slice of the frames as one uint8 batch, or as a single contact sheet image."""
    items = ws.items(handle)[start : start + count]
    if not items:
        raise ValueError(f"{handle} has {ws.count(handle)} frames: nothing from index {start}")
    captions = ws.annotations(handle, names.CAPTION)
    texts = [str(captions.get(item.id, "")) for item in items]
    if as_contact_sheet:
        pictures = [images.load_rgb(item.path) for item in items]
        labels = [_label(item) for item in items]
        sheet = contact_sheet(pictures, labels=labels, cell=max(64, long_side // 4))
        return ArrayBatch(sheet[None], np.ones(sheet.shape[:2], bool)[None], ["\n".join(texts)])
    fitted = np.stack([_fit(images.load_image(item.path), long_side) for item in items])
    return ArrayBatch(fitted[..., :3], fitted[..., 3] > 127, texts)


def add_arrays(ws: Workspace, rgb: np.ndarray, alpha: np.ndarray | None, captions: list[str],
               progress: Progress | None = None) -> Handle:
    """Store a batch of images (with optional alpha and captions) as new items."""
    if captions and len(captions) != len(rgb):
        raise ValueError(f"{len(captions)} caption lines for {len(rgb)} images: give one line per image")
    digest = hashlib.sha256(rgb.tobytes())
    if alpha is not None:
        digest.update(alpha.tobytes())
    params = {"pixels": digest.hexdigest(), "shape": list(rgb.shape), "captions": captions}
    with ws.stage("add_images", 1, params, label="added images") as st:
        if st.complete:
            return st.handle
        for position, unit in st.pending_units([str(i) for i in range(len(rgb))], progress):
            pixels = rgb[position] if alpha is None else np.dstack([rgb[position], alpha[position] * np.uint8(255)])
            rel = st.write_image(pixels, f"{position:06d}.png")
            notes = {names.CAPTION: captions[position]} if captions and captions[position] else {}
            st.emit(unit, position, [NewItem(kind=names.KIND_IMAGE, relpath=rel, width=pixels.shape[1],
                                             height=pixels.shape[0], meta={names.META_ALPHA: alpha is not None},
                                             annotations=notes)])
    return st.handle


def preview_thumbnails(ws: Workspace, handle: Handle, max_thumbnails: int
                       ) -> tuple[list[tuple[str, Callable[[], np.ndarray]]], str]:
    """Thumbnails spread over the set as ``(name, make)`` (the node shows them, making only those
    not shown before), plus a kept/dropped summary."""
    items = ws.items(handle)
    step = max(1, len(items) / max_thumbnails) if items else 1
    chosen = [items[int(i * step)] for i in range(min(max_thumbnails, len(items)))]
    return ([(f"{handle.stage_key[:16]}_{item.id}", functools.partial(_thumbnail, item.path)) for item in chosen],
            _summary(ws, handle, len(items)))


def _thumbnail(path: Path) -> np.ndarray:
    return images.resize_long_side(images.load_image(path), PREVIEW_LONG_SIDE)


def _summary(ws: Workspace, handle: Handle, kept: int) -> str:
    report = ws.stage_info(handle).get(names.INFO_REPORT)
    if not report:
        return f"{kept} frames"
    reasons = ", ".join(f"{n} {why}" for why, n in report.get("dropped_by_reason", {}).items())
    return f"{kept} kept, {report['dropped']} dropped" + (f" ({reasons})" if reasons else "")


def _label(item: Item) -> str:
    if item.frame_index is None:
        return f"#{item.id}"
    shot = f" shot {item.shot}" if item.shot is not None else ""
    return f"f{item.frame_index}{shot}"
