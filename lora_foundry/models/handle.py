"""The one type a loader node hands to the nodes that use a model (``LF_*_MODEL`` sockets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelHandle:
    """A loaded network with what identifies it in stage keys (file, size, mtime, config)."""

    model: Any
    device: str
    identity: str
    kind: str = ""
