"""Per-item CPU work (measuring, hashing, encoding) on a thread pool, results in input order.

Threads, not processes: the per-item work is image decoding, OpenCV and numpy, which release the
GIL while they run, and the items' results go straight back to the one thread that commits.
At most ``2 * workers`` items are in flight, so memory stays flat however many items there are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from .units import default_workers

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_map(work: Callable[[Item], Result], items: Iterable[Item], workers: int = 0
                ) -> Iterator[tuple[Item, Result]]:
    """``(item, work(item))`` in the order of ``items``, computed on ``workers`` threads (0 = cores)."""
    workers = workers or default_workers()
    if workers == 1:
        for item in items:
            yield item, work(item)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        queued: deque[tuple[Item, Future]] = deque()
        try:
            for item in items:
                queued.append((item, pool.submit(work, item)))
                if len(queued) >= 2 * workers:
                    first, future = queued.popleft()
                    yield first, future.result()
            while queued:
                first, future = queued.popleft()
                yield first, future.result()
        finally:
            for _, future in queued:  # cancelled: drop what has not started
                future.cancel()
