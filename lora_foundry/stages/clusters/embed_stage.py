"""Embeddings as a workspace stage: batched, resumable, cached by method and model identity.

Embeddings live in the workspace, not in the graph: each batch of a run writes one ``.npy`` in the
stage's folder and every item gets an ``embedding_row`` annotation ``{"file", "row"}``. The stage
key covers the method and the model identity, so a second run (or another workflow on the same
frames) reuses them, and an interrupted run resumes at the first unfinished batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import names
from ...media import images
from ...models.clip_model import ClipEmbedder, ClipSource, Embedder, source_of
from ...models.handle import all_on_device
from ...progress import Progress
from ...scale.local import runner_for
from ...scale.units import Kept, Runner, Send, Unit
from ...workspace import Handle, Workspace, remote
from ..units_stage import folder_job, run_planned, units_of
from .embedders import PixelEmbedder, make_embedder


def embed_stage(ws: Workspace, handle: Handle, method: str = "clip", clip: Any | None = None,
                batch_size: int = 16, progress: Progress | None = None,
                embedder: Embedder | None = None,
                runner: Runner | None = None) -> Handle:
    """Embed every item of ``handle`` (batched, resumable); returns the same items, annotated.

    ``embedder`` replaces the built-in ones, e.g. ComfyUI's CLIP_VISION (which ComfyUI moves
    itself). Each batch is one unit (``embed_batch_unit``), run in this process or, with
    ``runner`` (a Ray cluster), as tasks: "pixels" asking for a CPU each, "clip" on one actor per
    slot that opens the same weights (same path on every node) once and keeps them, asking for a
    GPU when the model's device is one. ComfyUI's CLIP_VISION (``embedder``) stays in this
    process. In this process the CLIP model visits its compute device once for the run.
    """
    chosen = embedder if embedder is not None else make_embedder(method, clip)
    identity = chosen.identity
    items = ws.items(handle)
    batch_size = max(1, int(batch_size))
    batches = [items[i:i + batch_size] for i in range(0, len(items), batch_size)]
    units = [f"batch-{b:06d}" for b in range(len(batches))]
    remote_run = runner is not None and embedder is None
    with ws.stage("embed", 1, {"method": method, "batch_size": batch_size}, [handle], identity,
                  label=f"{handle.label or 'frames'} · embedded") as st:
        if not st.complete:
            model = (source_of(clip) if method == "clip" else None) if remote_run else chosen
            with all_on_device(clip if not remote_run and embedder is None and method == "clip" else None):
                _embed_batches(runner_for(runner if remote_run else None, 1, len(units)), st, batches, units,
                               model, progress)
            first = st.path_for(f"{units[0]}.npy") if units else None
            dim = int(np.load(first, mmap_mode="r", allow_pickle=False).shape[1]) if first else 0
            st.set_info(**{names.INFO_EMBEDDING_METHOD: method, names.INFO_EMBEDDING_MODEL: identity,
                           names.INFO_EMBEDDING_DIM: dim})
        return st.handle


@dataclass(frozen=True)
class EmbedBatch:
    """One batch as a unit: where its stage writes, its items' ids and files, and the model:
    None for pixel features, a ``clip_model.ClipSource`` to open in the worker (kept there between
    batches), or an ``Embedder`` this process holds (only for a run in this process)."""

    stage: remote.StageJob
    unit: str
    position: int
    items: tuple[tuple[int, str], ...]
    model: Any = None


def embed_batch_unit(job: EmbedBatch, send: Send, kept: Kept) -> None:
    """In a worker (or this process): embed one batch, write its rows, send the record."""
    st = remote.RemoteStage(job.stage, send)
    pictures = [images.to_pil(images.load_rgb(st.root / relpath)) for _, relpath in job.items]
    if job.model is None:
        rows = PixelEmbedder().images(pictures)
    elif isinstance(job.model, ClipSource):
        from ...models.clip_model import open_source

        rows = ClipEmbedder(kept.get(job.model, lambda: open_source(job.model))).images(pictures)
    else:
        rows = job.model.images(pictures)
    rel = st.write_array(np.asarray(rows, np.float32), f"{job.unit}.npy")
    st.emit(job.unit, job.position, [item_id for item_id, _ in job.items],
            {item_id: {names.EMBEDDING_ROW: {"file": rel, "row": row}} for row, (item_id, _) in enumerate(job.items)})


def _embed_batches(runner: Runner, st: Any, batches: list[list[Any]], units: list[str], model: Any,
                   progress: Progress | None) -> None:
    """Every unfinished batch as a unit on ``runner``; the records are committed here, once each,
    and the one bar moves as batches end (batches an earlier run did count as done): ``units_stage``."""
    runner.check_shared(st.ws.root)
    stage = folder_job(st)
    opens = isinstance(model, ClipSource)
    resources = model.resources if opens else {"num_cpus": 1}

    def batch_unit(position: int) -> Unit:
        return Unit(f"embedding {units[position]}", embed_batch_unit,
                    EmbedBatch(stage, units[position], position,
                               tuple((item.id, item.relpath) for item in batches[position]), model),
                    resources, keeps=opens)

    run_planned(runner, units_of(st, units, [1] * len(units), batch_unit), progress)


def embedding_info(ws: Workspace, handle: Handle) -> dict[str, Any]:
    """The nearest embed stage's info (method, model identity, dim) in ``handle``'s lineage."""
    info = ws.nearest_info(handle, names.INFO_EMBEDDING_METHOD)
    if info:
        return info
    raise ValueError(f"{handle} has no embeddings: put an LF Embed Frames node before this one")


def load_embeddings(ws: Workspace, handle: Handle) -> tuple[list[Any], np.ndarray]:
    """(items, matrix) with one row per item of ``handle``, read from the embed stage's files."""
    items = ws.items(handle)
    rows = ws.annotations(handle, names.EMBEDDING_ROW)
    missing = [item.id for item in items if item.id not in rows]
    if missing:
        raise ValueError(f"{len(missing)} items of {handle} have no embedding: embed these frames first")
    cache: dict[str, np.ndarray] = {}
    out = []
    for item in items:
        ref = rows[item.id]
        if ref["file"] not in cache:
            cache[ref["file"]] = np.load(ws.path_of(ref["file"], "annotations.embedding_row"), allow_pickle=False)
        out.append(cache[ref["file"]][ref["row"]])
    dim = out[0].shape[0] if out else 0
    return items, np.stack(out) if out else np.zeros((0, dim), np.float32)
