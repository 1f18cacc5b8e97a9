"""The one IS_CHANGED value for nodes that read files named by a widget (a video, an image folder,
a folder of tag files).

ComfyUI re-runs a node only when its inputs or its ``IS_CHANGED`` value change, so a node whose
widget names files must report those files' state, or edits on disk would never reach the graph.
Each file counts by path, size and mtime in ns (``cache.file_key``): cheap, and an edit in place,
an added or a removed file all change the value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ..lora_foundry.cache import file_key


def files_state(list_files: Callable[[], Iterable[Path]], fallback: str) -> str:
    """The state of the files ``list_files`` names (the ones the node would read), or ``fallback``
    (the widget text) when they cannot be listed: IS_CHANGED must never raise."""
    try:
        return ";".join("%s:%d:%d" % file_key(path) for path in list_files())
    except (OSError, ValueError):
        return fallback
