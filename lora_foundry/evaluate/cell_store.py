"""Rendered cells kept in the workspace, one stage per cell, keyed by what made the image.

A cell's key (``matrix.cell_key``) covers the LoRA file's identity, strength, prompt, seed, model
identity, size, steps, CFG and sampler. Each cell is its own workspace stage (name ``eval_cell``,
params = that key), so everything ``workspace/stage.py`` promises holds per image: the PNG is
written atomically, recorded in one transaction, and found again by key. A re-run with one more
strength, another LoRA of the same base model or a killed run picked up again renders only the
cells whose key is new; strength-0 cells leave the LoRA out of the key and are shared by all LoRAs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..media.images import load_rgb
from ..names import KIND_RENDER
from ..progress import Progress, ensure_progress
from ..workspace.items import NewItem
from ..workspace.workspace import Workspace, stage_key

STAGE_NAME = "eval_cell"
STAGE_VERSION = 1


def _key(cell_key: str) -> str:
    return stage_key(STAGE_NAME, STAGE_VERSION, {"cell": cell_key}, "", [])


class CellStore:
    """Find or render cells in one workspace. ``rendered`` counts images made by this store."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.rendered = 0

    def path(self, cell_key: str) -> Path | None:
        """The stored image of ``cell_key``, or None when it was never rendered (or not finished)."""
        key = _key(cell_key)
        if self.ws.stage_status(key) != "complete":
            return None
        items = self.ws.items(self.ws.handle(key))
        return items[0].path if items else None

    def get_or_render(self, cell_key: str, render: Callable[[], np.ndarray], label: str = "") -> Path:
        """The image of ``cell_key``: from the store, else ``render()``-ed and stored first."""
        with self.ws.stage(STAGE_NAME, STAGE_VERSION, {"cell": cell_key}, label=label or STAGE_NAME) as st:
            if not st.complete:
                pixels = np.ascontiguousarray(render()[..., :3])
                if pixels.dtype != np.uint8 or pixels.ndim != 3:
                    raise ValueError(f"a renderer must return an RGB uint8 image, got {pixels.dtype} {pixels.shape}")
                rel = st.write_image(pixels, f"{cell_key[:24]}.png")
                st.emit_all([NewItem(kind=KIND_RENDER, relpath=rel, width=pixels.shape[1], height=pixels.shape[0],
                                     meta={"cell": cell_key, "label": label})])
                self.rendered += 1
            return self.ws.items(st.handle)[0].path

    def render_all(self, jobs: Sequence[tuple[str, Callable[[], np.ndarray], str]],
                   progress: Progress | None = None) -> list[Path]:
        """``get_or_render`` for each ``(key, render, label)``, progress once per cell; a cancel
        (an exception from ``progress``) keeps every finished cell for the next run."""
        report = ensure_progress(progress)
        paths: list[Path] = []
        report.update(0, len(jobs))
        for done, (key, render, label) in enumerate(jobs, start=1):
            paths.append(self.get_or_render(key, render, label))
            report.update(done, len(jobs))
        return paths


def load_cells(paths: Sequence[Path]) -> list[np.ndarray]:
    return [load_rgb(path) for path in paths]
