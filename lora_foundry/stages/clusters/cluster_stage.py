"""Workspace wrapper for clustering: annotates every item with ``cluster`` (-1 = noise).

Modes: characters (cut-out embeddings), scenes (background/whole-frame embeddings, clusters merged
above a cosine similarity), style (keeps the dominant look, drops outliers and transition frames:
its output has fewer items), actions (pose keypoints from LF Tag Pose, torso-normalised).
Clustering is a whole-set step, so the stage records its result with one ``emit_all``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import names
from ...choices import one_of
from ...progress import Progress, ensure_progress
from ...workspace import Handle, Workspace
from . import cluster
from .embed_stage import embedding_info, load_embeddings

MODES = ("characters", "scenes", "style", "actions")


def _pose_arrays(ws: Workspace, handle: Handle) -> tuple[list[Any], np.ndarray, np.ndarray]:
    items = ws.items(handle)
    poses = ws.annotations(handle, names.POSE_KEYPOINTS)
    if not poses:
        raise ValueError(f"{handle} has no pose keypoints: put LF Tag Pose before clustering actions")
    keypoints = np.zeros((len(items), 17, 2), np.float32)
    scores = np.zeros((len(items), 17), np.float32)
    for row, item in enumerate(items):
        pose = poses.get(item.id)
        if pose and pose.get("points"):
            keypoints[row] = np.asarray(pose["points"], np.float32)[:17]
            scores[row] = np.asarray(pose["scores"], np.float32)[:17]
    return items, keypoints, scores


def run_mode(ws: Workspace, handle: Handle, mode: str, params: dict[str, Any]
             ) -> tuple[list[Any], cluster.Clusters, np.ndarray]:
    """(items, clusters, keep mask) for ``mode``."""
    size, backend = int(params["min_cluster_size"]), params["backend"]
    if mode == "actions":
        items, keypoints, scores = _pose_arrays(ws, handle)
        found = cluster.cluster_actions(keypoints, scores, size, backend)
        return items, found, np.ones(len(items), bool)
    items, vectors = load_embeddings(ws, handle)
    if mode == "scenes":
        found = cluster.cluster_scenes(vectors, size, float(params["similarity"]), backend=backend)
    else:
        found = cluster.cluster_vectors(vectors, size, backend=backend)
    keep = np.ones(len(items), bool)
    if mode == "style":
        keep = cluster.style_keep(found, float(params["min_share"]), float(params["min_probability"]))
    return items, found, keep


def cluster_stage(ws: Workspace, handle: Handle, mode: str = "characters", min_cluster_size: int = 5,
                  similarity: float = 0.9, min_share: float = 0.1, min_probability: float = 0.5,
                  backend: str = "auto", progress: Progress | None = None) -> Handle:
    """Cluster ``handle``'s items; returns a handle to the (kept) items annotated with clusters."""
    one_of(mode, MODES, "cluster mode")
    params = {"mode": mode, "min_cluster_size": int(min_cluster_size), "backend": backend}
    if mode == "scenes":
        params["similarity"] = float(similarity)
    if mode == "style":
        params.update(min_share=float(min_share), min_probability=float(min_probability))
    model = "" if mode == "actions" else str(embedding_info(ws, handle).get(names.INFO_EMBEDDING_MODEL, ""))
    report = ensure_progress(progress)
    with ws.stage("cluster", 2, params, [handle], model, label=f"{handle.label or 'frames'} · {mode}") as st:
        if not st.complete:
            report.update(0, 1)
            items, found, keep = run_mode(ws, handle, mode, params)
            annotations = {
                item.id: {names.CLUSTER: int(label), names.CLUSTER_PROBABILITY: round(float(p), 4)}
                for item, label, p in zip(items, found.labels, found.probabilities, strict=True)
            }
            if mode == "style":
                for item, kept in zip(items, keep, strict=True):
                    annotations[item.id][names.STYLE_KEPT] = bool(kept)
            kept_ids = [item.id for item, kept in zip(items, keep, strict=True) if kept]
            st.emit_all(kept_ids, annotations)
            st.set_info(**{names.INFO_CLUSTER_MODE: mode,
                           names.INFO_CLUSTER_SIZES: {str(k): v for k, v in found.sizes().items()},
                           names.INFO_CLUSTER_BACKEND: found.backend, names.INFO_DROPPED: int((~keep).sum())})
            report.update(1, 1)
        return st.handle


def cluster_summary(ws: Workspace, handle: Handle) -> str:
    """One line per cluster (largest first) for the node's text output."""
    info = ws.stage_info(handle)
    sizes = {int(k): v for k, v in info.get(names.INFO_CLUSTER_SIZES, {}).items()}
    parts = [f"cluster {k}: {v}" for k, v in sorted(sizes.items(), key=lambda kv: (kv[0] < 0, kv[0]))]
    noise = sizes.get(cluster.NOISE, 0)
    head = f"{info.get(names.INFO_CLUSTER_MODE, '?')} via {info.get(names.INFO_CLUSTER_BACKEND, '?')}: " \
           f"{len([k for k in sizes if k >= 0])} clusters, {noise} noise"
    if info.get(names.INFO_DROPPED):
        head += f", {info[names.INFO_DROPPED]} dropped by the style filter"
    return head + "\n" + "\n".join(p.replace("cluster -1", "noise (-1)") for p in parts)
