"""Run one evaluation: render (or find) every cell, embed, judge, draw the sheet and the plot.

The renderer and the embedder are handed in, so the same code runs with ComfyUI's sampler and a
CLIP model in the node (nodes/_comfy_sampling.py) and with stand-ins in tests. Cells are rendered
one at a time through the workspace's cell store, so a cancel keeps every finished image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..fileio import atomic_write_text
from ..media.contact_sheet import contact_sheet
from ..media.images import load_rgb
from ..models.clip_model import Embedder
from ..paths import confined
from ..progress import Progress
from ..workspace.workspace import Workspace
from . import metrics, plots
from .cell_store import CellStore, load_cells
from .matrix import (
    CURVE,
    HELD_OUT,
    PROMPT_KINDS,
    TRIGGER_OFF,
    Cell,
    MatrixPreset,
    RenderSettings,
    build_matrix,
    cell_key,
    held_out_prompt,
    hold_out_from,
)

REPORTS_DIR = "evaluations"


class Renderer(Protocol):
    """Renders one image of the LoRA under test; strength 0 must mean "the base model alone"."""

    model_identity: str
    lora_identity: str
    settings: RenderSettings

    def render(self, prompt: str, strength: float, seed: int) -> np.ndarray:
        """RGB uint8 (H, W, 3)."""


@dataclass
class Evaluation:
    """What one evaluation produced; ``rendered`` counts the cells this run had to render."""

    report: dict[str, Any]
    cells: list[Cell]
    paths: list[Path]
    rendered: int
    sheet: np.ndarray
    plot: np.ndarray
    report_path: Path | None = None


def embed_all(embedder: Embedder, images: Sequence[np.ndarray]) -> np.ndarray:
    """One call for all images: the embedder batches, and moves its weights to the device once."""
    return np.asarray(embedder.images(list(images)))


def embed_training_set(embedder: Embedder, paths: Sequence[Path]) -> np.ndarray:
    """Embeddings of the training images (cut-outs flattened on grey, as everywhere)."""
    if not paths:
        raise ValueError("the training set has no images: connect the dataset (or frames) the LoRA was trained on")
    return embed_all(embedder, [load_rgb(Path(p)) for p in paths])


def training_captions(paths: Sequence[Path]) -> list[str]:
    """The kohya captions beside the training images (``image.txt``), where there are any."""
    found = (Path(p).with_suffix(".txt") for p in paths)
    return [c.read_text(encoding="utf-8", errors="replace") for c in found if c.is_file()]


def render_cells(ws: Workspace, renderer: Renderer, cells: Sequence[Cell], progress: Progress | None = None
                 ) -> tuple[list[Path], int]:
    """Paths of every cell's image and how many had to be rendered now."""
    store = CellStore(ws)
    order = sorted(range(len(cells)), key=lambda i: cells[i].strength)  # one LoRA patch per strength
    jobs = [(cell_key(cells[i], renderer.lora_identity, renderer.model_identity, renderer.settings),
             _render_job(renderer, cells[i]), cells[i].label) for i in order]
    rendered = store.render_all(jobs, progress)
    paths: list[Path] = [Path()] * len(cells)
    for position, index in enumerate(order):
        paths[index] = rendered[position]
    return paths, store.rendered


def _render_job(renderer: Renderer, cell: Cell):
    return lambda: renderer.render(cell.prompt, cell.strength, cell.seed)


def evaluate(ws: Workspace, renderer: Renderer, embedder: Embedder, train: np.ndarray, trigger: str,
             preset: MatrixPreset, tags: Sequence[str] = (), progress: Progress | None = None,
             name: str = "", captions: Sequence[str] = (), others: Mapping[str, Renderer] | None = None
             ) -> Evaluation:
    """Render the matrix (cached), judge it against ``train`` (training-set embeddings), and save
    the JSON report, contact sheet and plot under ``<workspace>/evaluations/`` when ``name`` is given.

    ``captions``: the training captions; a held-out context they already show is replaced by one
    of the preset's spares (or refused), since a context the LoRA saw cannot test generalisation.
    ``others``: the same LoRA on other checkpoints (name -> renderer), judged the same way; each
    criterion then holds its worst verdict and lowest score over all checkpoints, and
    ``report["checkpoints"]`` the criteria per checkpoint (the sheet shows the first one)."""
    preset, replaced = hold_out_from(preset, captions)
    cells = build_matrix(trigger, preset, tags)
    texts = embedder.texts([held_out_prompt(None, preset, c) for c in preset.held_out])
    renderers = {"base": renderer, **dict(others or {})}
    judged: dict[str, dict[str, Any]] = {}
    total = 0
    for label, each in renderers.items():
        paths, rendered = render_cells(ws, each, cells, progress)
        images = load_cells(paths)
        rows = embed_all(embedder, images)
        judged[label] = metrics.judge(cells, dict(zip(cells, rows, strict=True)), train, preset, texts)
        total += rendered
        if label == "base":
            first_paths, first_images = paths, images
    report = metrics.combine_checkpoints(judged) if len(judged) > 1 else judged["base"]
    report["matrix"] = {"trigger": trigger, "cells": len(cells) * len(renderers), "rendered_now": total,
                        "strengths": list(preset.strengths), "seeds": list(preset.seeds),
                        "held_out": list(preset.held_out), "held_out_replaced": replaced,
                        "nominal_strength": preset.nominal, "lora": renderer.lora_identity,
                        "model": renderer.model_identity, "clip": embedder.identity,
                        "settings": renderer.settings.__dict__,
                        "checkpoints": {label: each.model_identity for label, each in renderers.items()}}
    result = Evaluation(report, cells, first_paths, total, matrix_sheet(cells, first_images, preset),
                        report_plot(report))
    if name:
        result.report_path = save_outputs(ws, name, result)
    return result


def matrix_sheet(cells: Sequence[Cell], images: Sequence[np.ndarray], preset: MatrixPreset, cell: int = 160
                 ) -> np.ndarray:
    """The matrix as a labelled grid: one row per (prompt kind, seed) over the strengths, then one
    row per held-out context (base and LoRA, with and without the trigger, each seed)."""
    by_cell = dict(zip(cells, images, strict=True))
    blank = np.full_like(images[0], 32)
    columns = max(len(preset.strengths), 4 * len(preset.seeds))
    shown: list[np.ndarray] = []
    labels: list[str] = []

    def add_row(row: list[Cell]) -> None:
        for item in row:
            shown.append(by_cell[item])
            labels.append(item.label)
        shown.extend([blank] * (columns - len(row)))
        labels.extend([""] * (columns - len(row)))

    for kind in PROMPT_KINDS:
        for seed in preset.seeds:
            add_row([c for c in cells if c.group == CURVE and c.kind == kind and c.seed == seed])
    for context in preset.held_out:
        add_row([c for group in (HELD_OUT, TRIGGER_OFF) for c in cells if c.group == group and c.context == context])
    return contact_sheet(shown, columns=columns, cell=cell, labels=labels)


def report_plot(report: dict[str, Any]) -> np.ndarray:
    """Strength curves (nearest-k fidelity per prompt kind, and the centroid one) beside the
    criteria bars coloured by verdict."""
    curve = report["fidelity"]["curve"]
    series = {f"{kind} (nearest-k)": (curve[kind]["strengths"], curve[kind]["nearest_k"]) for kind in PROMPT_KINDS}
    series["full (centroid)"] = (curve["full"]["strengths"], curve["full"]["centroid"])
    lines = plots.line_chart(series, "fidelity vs LoRA strength", "strength", "cosine to training set")
    names = ["fidelity", "ease", "generalisation"]
    verdicts = [report[n]["verdict"] for n in names]
    bars = plots.bar_chart(names, [report[n]["score"] for n in names], f"criteria ({report['overall']['verdict']})",
                           colours=[plots.VERDICT_COLOURS[v] for v in verdicts], notes=verdicts, top=1.0)
    return plots.side_by_side(lines, bars)


def save_outputs(ws: Workspace, name: str, result: Evaluation) -> Path:
    """``evaluations/<name>/report.json``, ``sheet.png``, ``plot.png`` (atomic; replaced on re-run)."""
    from ..media.images import save_image

    folder = confined(ws.root, REPORTS_DIR, name)
    folder.mkdir(parents=True, exist_ok=True)
    save_image(result.sheet, folder / "sheet.png")
    save_image(result.plot, folder / "plot.png")
    report_path = folder / "report.json"
    atomic_write_text(report_path, json.dumps(result.report, indent=2))
    return report_path
