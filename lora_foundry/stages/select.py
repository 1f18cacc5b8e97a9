"""Select Clusters: keep the items of chosen clusters, and contact sheets to choose them by eye.

Ways to choose: cluster ids ("0, 3"); the N largest clusters; a text ("boy with brown hair") whose
CLIP text embedding is nearest to a cluster centroid (needs the CLIP model the frames were
embedded with); reference images embedded like the frames (CLIP or pixel features), nearest
centroid. Noise (-1) is chosen only when asked for by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..workspace import Handle, Workspace
from .cluster import NOISE, centroids, l2_normalise
from .embed import embedding_info, load_embeddings, load_rgb, make_embedder

BY = ("id", "size_rank", "text", "reference")


def parse_ids(text: str) -> list[int]:
    """"0, 2 ,5" -> [0, 2, 5]; "noise" or -1 for the noise bucket."""
    ids = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip().lower()
        if part:
            ids.append(NOISE if part == "noise" else int(part))
    return ids


def cluster_labels(ws: Workspace, handle: Handle) -> tuple[list[Any], np.ndarray]:
    items = ws.items(handle)
    labels = ws.annotations(handle, "cluster")
    if not labels:
        raise ValueError(f"{handle} is not clustered: put LF Cluster Frames before LF Select Clusters")
    return items, np.array([int(labels.get(item.id, NOISE)) for item in items], np.int64)


def by_size_rank(labels: np.ndarray, count: int) -> list[int]:
    ids, sizes = np.unique(labels[labels != NOISE], return_counts=True)
    order = ids[np.argsort(-sizes, kind="stable")]
    return [int(i) for i in order[: max(0, count)]]


def nearest_clusters(vectors: np.ndarray, labels: np.ndarray, query: np.ndarray, count: int) -> list[int]:
    """Clusters whose centroids are most cosine-similar to ``query`` (a vector or vectors)."""
    cents = centroids(vectors, labels)
    if not cents:
        return []
    q = l2_normalise(np.atleast_2d(query)).mean(axis=0)
    scores = {label: float(c @ q) for label, c in cents.items()}
    return sorted(scores, key=lambda k: -scores[k])[: max(1, count)]


def choose(ws: Workspace, handle: Handle, by: str, ids: str = "", count: int = 1, text: str = "",
           clip: Any | None = None, references: Sequence[Path] = ()) -> tuple[list[Any], np.ndarray, list[int]]:
    """(items, labels, chosen cluster ids) for one way of choosing."""
    if by not in BY:
        raise ValueError(f"select by must be one of {BY}, got {by!r}")
    items, labels = cluster_labels(ws, handle)
    if by == "id":
        return items, labels, parse_ids(ids)
    if by == "size_rank":
        return items, labels, by_size_rank(labels, count)
    info = embedding_info(ws, handle)
    _, vectors = load_embeddings(ws, handle)
    if by == "text":
        if clip is None or info.get("embedding_method") != "clip":
            raise ValueError("select by text needs the frames embedded with CLIP and that CLIP model connected")
        if clip.identity != info.get("embedding_model"):
            raise ValueError(f"the frames were embedded with {info.get('embedding_model')}, not {clip.identity}")
        from ..models.clip_model import embed_texts

        return items, labels, nearest_clusters(vectors, labels, embed_texts(clip, [text]), count)
    if not references:
        raise ValueError("select by reference needs at least one reference image")
    embed, identity = make_embedder(str(info["embedding_method"]), clip)
    if identity != info.get("embedding_model"):
        raise ValueError(f"references must be embedded like the frames ({info.get('embedding_model')})")
    query = embed([load_rgb(Path(p)) for p in references])
    return items, labels, nearest_clusters(vectors, labels, query, count)


def select_stage(ws: Workspace, handle: Handle, by: str = "size_rank", ids: str = "0", count: int = 1,
                 text: str = "", clip: Any | None = None, references: Sequence[Path] = ()) -> Handle:
    """A handle to the items of the chosen clusters (input order kept)."""
    params = {"by": by, "ids": ids if by == "id" else "", "count": int(count),
              "text": text if by == "text" else "",
              "references": [str(p) for p in references] if by == "reference" else []}
    model = clip.identity if clip is not None and by in ("text", "reference") else ""
    with ws.stage("select_clusters", 1, params, [handle], model,
                  label=f"{handle.label or 'frames'} · selected") as st:
        if not st.complete:
            items, labels, chosen = choose(ws, handle, by, ids, count, text, clip, references)
            wanted = set(chosen)
            st.emit_all([item.id for item, label in zip(items, labels, strict=True) if int(label) in wanted])
            st.set_info(selected_clusters=chosen)
        return st.handle


def contact_sheet(paths: Sequence[Path], title: str, thumb: int = 128, columns: int = 6) -> np.ndarray:
    """One RGB sheet: a title bar and up to ``columns * 4`` thumbnails (cut-outs on grey)."""
    from PIL import Image, ImageDraw

    shown = list(paths)[: columns * 4]
    rows = max(1, (len(shown) + columns - 1) // columns)
    bar = 22
    sheet = Image.new("RGB", (columns * thumb, bar + rows * thumb), (24, 24, 24))
    for index, path in enumerate(shown):
        img = load_rgb(Path(path))
        img.thumbnail((thumb, thumb))
        x = (index % columns) * thumb + (thumb - img.width) // 2
        y = bar + (index // columns) * thumb + (thumb - img.height) // 2
        sheet.paste(img, (x, y))
    ImageDraw.Draw(sheet).text((6, 5), title, fill=(240, 240, 240))
    return np.asarray(sheet)


def cluster_sheets(ws: Workspace, handle: Handle, max_clusters: int = 12, thumb: int = 128
                   ) -> list[tuple[int, np.ndarray]]:
    """(cluster id, contact sheet) for the largest clusters, then noise."""
    items, labels = cluster_labels(ws, handle)
    order = by_size_rank(labels, max_clusters)
    if (labels == NOISE).any():
        order.append(NOISE)
    sheets = []
    for label in order:
        members = [item.path for item, lab in zip(items, labels, strict=True) if lab == label]
        name = "noise" if label == NOISE else f"cluster {label}"
        sheets.append((label, contact_sheet(members, f"{name}: {len(members)} items", thumb)))
    return sheets
