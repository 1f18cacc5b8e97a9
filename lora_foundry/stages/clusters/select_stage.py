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

from ... import names
from ...cache import file_key
from ...choices import one_of
from ...media import images
from ...media.contact_sheet import titled_sheet
from ...workspace import Handle, Workspace
from .cluster import NOISE
from .embed_stage import embedding_info, load_embeddings
from .embedders import make_embedder
from .select import BY, by_size_rank, nearest_clusters, parse_ids


def cluster_labels(ws: Workspace, handle: Handle) -> tuple[list[Any], np.ndarray]:
    items = ws.items(handle)
    labels = ws.annotations(handle, names.CLUSTER)
    if not labels:
        raise ValueError(f"{handle} is not clustered: put LF Cluster Frames before LF Select Clusters")
    return items, np.array([int(labels.get(item.id, NOISE)) for item in items], np.int64)


def choose(ws: Workspace, handle: Handle, by: str, ids: str = "", count: int = 1, text: str = "",
           clip: Any | None = None, references: Sequence[Path] = ()) -> tuple[list[Any], np.ndarray, list[int]]:
    """(items, labels, chosen cluster ids) for one way of choosing."""
    one_of(by, BY, "select by")
    items, labels = cluster_labels(ws, handle)
    if by == "id":
        return items, labels, parse_ids(ids)
    if by == "size_rank":
        return items, labels, by_size_rank(labels, count)
    info = embedding_info(ws, handle)
    _, vectors = load_embeddings(ws, handle)
    if by == "text":
        if clip is None or info.get(names.INFO_EMBEDDING_METHOD) != "clip":
            raise ValueError("select by text needs the frames embedded with CLIP and that CLIP model connected")
        embedded_with = info.get(names.INFO_EMBEDDING_MODEL)
        if clip.identity != embedded_with:
            raise ValueError(f"the frames were embedded with {embedded_with}, not {clip.identity}")
        query = make_embedder("clip", clip).texts([text])
        return items, labels, nearest_clusters(vectors, labels, query, count)
    if not references:
        raise ValueError("select by reference needs at least one reference image")
    embedder = make_embedder(str(info[names.INFO_EMBEDDING_METHOD]), clip)
    if embedder.identity != info.get(names.INFO_EMBEDDING_MODEL):
        raise ValueError(f"references must be embedded like the frames ({info.get(names.INFO_EMBEDDING_MODEL)})")
    pictures = [images.to_pil(images.load_rgb(Path(p))) for p in references]
    query = embedder.images(pictures)
    return items, labels, nearest_clusters(vectors, labels, query, count)


def select_stage(ws: Workspace, handle: Handle, by: str = "size_rank", ids: str = "0", count: int = 1,
                 text: str = "", clip: Any | None = None, references: Sequence[Path] = ()) -> Handle:
    """A handle to the items of the chosen clusters (input order kept)."""
    params = {"by": by, "ids": ids if by == "id" else "", "count": int(count),
              "text": text if by == "text" else "",
              "references": [list(file_key(p)) for p in references] if by == "reference" else []}
    model = clip.identity if clip is not None and by in ("text", "reference") else ""
    with ws.stage("select_clusters", 1, params, [handle], model,
                  label=f"{handle.label or 'frames'} · selected") as st:
        if not st.complete:
            items, labels, chosen = choose(ws, handle, by, ids, count, text, clip, references)
            wanted = set(chosen)
            st.emit_all([item.id for item, label in zip(items, labels, strict=True) if int(label) in wanted])
            st.set_info(**{names.INFO_SELECTED_CLUSTERS: chosen})
        return st.handle


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
        sheets.append((label, titled_sheet(members, f"{name}: {len(members)} items", thumb)))
    return sheets
