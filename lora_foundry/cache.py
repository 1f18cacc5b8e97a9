"""The one bounded cache type: least recently used entries go first, by count and optionally by size.

Used for opened models (loader nodes), parsed LoRA files and their metadata. One type, so the
eviction rule, the hit counting and the "a changed file is a new key" rule are written once.
Callers hold an instance (on a node class or in a function's closure): nothing here is global.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar

Value = TypeVar("Value")


def file_key(path: str | os.PathLike[str]) -> tuple[str, int, int]:
    """(resolved path, mtime in ns, size): a file edited in place becomes a new key."""
    resolved = str(Path(path).resolve())
    stat = os.stat(resolved)
    return resolved, stat.st_mtime_ns, stat.st_size


class BoundedCache(Generic[Value]):
    """At most ``max_entries`` values (and, with ``size_of``, at most ``max_bytes`` in all, always
    keeping the newest one), least recently used evicted first. ``loads`` counts real loads."""

    def __init__(self, max_entries: int, max_bytes: int | None = None,
                 size_of: Callable[[Hashable, Value], int] | None = None) -> None:
        if max_entries < 1:
            raise ValueError("a cache holds at least one entry")
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._entries: OrderedDict[Hashable, Value] = OrderedDict()
        self.loads = 0

    def get(self, key: Hashable, load: Callable[[], Value]) -> Value:
        """The cached value for ``key``, or ``load()`` stored under it."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = load()
        self.loads += 1
        self._entries[key] = value
        self._evict()
        return value

    def values(self) -> list[Value]:
        """The cached values, least recently used first."""
        return list(self._entries.values())

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self) -> None:
        while len(self._entries) > self._max_entries or (len(self._entries) > 1 and self._over_bytes()):
            self._entries.popitem(last=False)

    def _over_bytes(self) -> bool:
        if self._max_bytes is None or self._size_of is None:
            return False
        return sum(self._size_of(key, value) for key, value in self._entries.items()) > self._max_bytes
