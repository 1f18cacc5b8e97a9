"""The light values that flow between nodes: handles, items, new items."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Handle:
    """A stage's result in a workspace: what nodes pass instead of pixels (ComfyUI type LF_FRAMES).

    Immutable and tiny; the same inputs give the same handle, which suits ComfyUI's output cache.
    """

    workspace: str
    stage_key: str
    label: str = ""

    def __str__(self) -> str:
        return f"{self.label or 'frames'} @ {self.workspace} [{self.stage_key[:12]}]"


@dataclass(frozen=True)
class Item:
    """One file in the workspace (a frame, a cut-out, a mask, ...) and where it came from."""

    id: int
    kind: str
    path: Path
    relpath: str
    parent: int | None
    source: str | None
    frame_index: int | None
    time_s: float | None
    shot: int | None
    width: int
    height: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class NewItem:
    """An item a stage is about to record; ``relpath`` is a file the stage already wrote."""

    kind: str
    relpath: str
    width: int
    height: int
    parent: int | None = None
    source: str | None = None
    frame_index: int | None = None
    time_s: float | None = None
    shot: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, Any] = field(default_factory=dict)
