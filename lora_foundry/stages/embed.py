"""Image embeddings for clustering and selection: open_clip, or pixel features with no weights.

Embeddings live in the workspace, not in the graph: each batch of a run writes one ``.npy`` in the
stage's folder and every item gets an ``embedding_row`` annotation ``{"file", "row"}``. The stage
key covers the method and the model identity, so a second run (or another workflow on the same
frames) reuses them, and an interrupted run resumes at the first unfinished batch.

Pixel features ("pixels") are a weights-free embedder: an HSV colour histogram plus a layout
thumbnail averaged with its mirror image, so a flipped shot embeds like the original
(tests/test_scene_grouping.py shows it groups the montage's repeated scenes). Cut-outs (RGBA) are
composited on neutral grey, so the background a character was cut from does not count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Progress
from ..workspace import Handle, Workspace

METHODS = ("clip", "pixels")
PIXEL_IDENTITY = "pixels-hsv12x4x4-sym16x9-v1"
GREY = (128, 128, 128)


def load_rgb(path: Path) -> Any:
    """A PIL RGB image; RGBA cut-outs are composited on neutral grey."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
            rgba = img.convert("RGBA")
            base = Image.new("RGBA", rgba.size, (*GREY, 255))
            return Image.alpha_composite(base, rgba).convert("RGB")
        return img.convert("RGB")


def pixel_features(rgb: np.ndarray) -> np.ndarray:
    """Mirror-invariant colour + layout vector (L2-normalised) of an RGB uint8 image."""
    import cv2

    rgb = np.ascontiguousarray(rgb[..., :3])
    small = cv2.resize(rgb, (128, 72), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, [12, 4, 4], [0, 180, 0, 256, 0, 256]).ravel()
    hist = np.sqrt(hist / max(float(hist.sum()), 1.0))
    layout = cv2.resize(small, (16, 9), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    symmetric = (layout + layout[:, ::-1]) / 2.0
    vector = np.concatenate([hist, 0.3 * symmetric.ravel()]).astype(np.float32)
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def pixel_embedder(images: Sequence[Any]) -> np.ndarray:
    return np.stack([pixel_features(np.asarray(img)) for img in images])


def clip_embedder(clip: Any) -> Callable[[Sequence[Any]], np.ndarray]:
    from ..models.clip_model import embed_pil_batch

    return lambda images: embed_pil_batch(clip, images)


def make_embedder(method: str, clip: Any | None) -> tuple[Callable[[Sequence[Any]], np.ndarray], str]:
    """(function from PIL images to rows, identity for the stage key)."""
    if method not in METHODS:
        raise ValueError(f"embedding method must be one of {METHODS}, got {method!r}")
    if method == "clip":
        if clip is None:
            raise ValueError("method 'clip' needs a CLIP model (LF CLIP Loader); or choose 'pixels'")
        return clip_embedder(clip), clip.identity
    return pixel_embedder, PIXEL_IDENTITY


def embed_stage(ws: Workspace, handle: Handle, method: str = "clip", clip: Any | None = None,
                batch_size: int = 16, progress: Progress | None = None,
                embedder: tuple[Callable[[Sequence[Any]], np.ndarray], str] | None = None) -> Handle:
    """Embed every item of ``handle`` (batched, resumable); returns the same items, annotated.

    ``embedder`` (function, identity) replaces the built-in ones, e.g. ComfyUI's CLIP_VISION.
    """
    embed, identity = embedder if embedder is not None else make_embedder(method, clip)
    items = ws.items(handle)
    batch_size = max(1, int(batch_size))
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    units = [f"batch-{b:06d}" for b in range(len(batches))]
    with ws.stage("embed", 1, {"method": method, "batch_size": batch_size}, [handle], identity,
                  label=f"{handle.label or 'frames'} · embedded") as st:
        if not st.complete:
            for position, unit in st.pending_units(units, progress):
                batch = batches[position]
                rows = embed([load_rgb(item.path) for item in batch]).astype(np.float32)
                rel = st.write_array(rows, f"{unit}.npy")
                st.emit(unit, position, [item.id for item in batch],
                        {item.id: {"embedding_row": {"file": rel, "row": r}} for r, item in enumerate(batch)})
            first = st.path_for(f"{units[0]}.npy") if units else None
            dim = int(np.load(first, mmap_mode="r", allow_pickle=False).shape[1]) if first else 0
            st.set_info(embedding_method=method, embedding_model=identity, embedding_dim=dim)
        return st.handle


def embedding_info(ws: Workspace, handle: Handle) -> dict[str, Any]:
    """The nearest embed stage's info (method, model identity, dim) in ``handle``'s lineage."""
    info = ws.nearest_info(handle, "embedding_method")
    if info:
        return info
    raise ValueError(f"{handle} has no embeddings: put an LF Embed Frames node before this one")


def load_embeddings(ws: Workspace, handle: Handle) -> tuple[list[Any], np.ndarray]:
    """(items, matrix) with one row per item of ``handle``, read from the embed stage's files."""
    items = ws.items(handle)
    rows = ws.annotations(handle, "embedding_row")
    missing = [item.id for item in items if item.id not in rows]
    if missing:
        raise ValueError(f"{len(missing)} items of {handle} have no embedding: embed these frames first")
    cache: dict[str, np.ndarray] = {}
    out = []
    for item in items:
        ref = rows[item.id]
        if ref["file"] not in cache:
            cache[ref["file"]] = np.load(ws.root / ref["file"], allow_pickle=False)
        out.append(cache[ref["file"]][ref["row"]])
    dim = out[0].shape[0] if out else 0
    return items, np.stack(out) if out else np.zeros((0, dim), np.float32)
