"""Near-duplicate frames across the whole set, by perceptual hash.

Why phash (imagehash): on 1,000 real frames with planted perturbed copies it found 94% of them at
Hamming distance 6 with no confusion between clips, where a faster numpy dhash confused clips above
distance 8 (FIELD_NOTES). Comparing every pair is a popcount over 64-bit integers, vectorised, so
10,000 frames take well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def perceptual_hash(rgb: np.ndarray) -> int:
    """64-bit DCT perceptual hash (imagehash.phash) of an RGB or RGBA uint8 array."""
    import imagehash
    from PIL import Image

    pixels = np.asarray(rgb)
    if pixels.ndim == 3:
        pixels = pixels[..., :3]
    bits = imagehash.phash(Image.fromarray(np.ascontiguousarray(pixels))).hash.flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two hashes."""
    return (int(a) ^ int(b)).bit_count()


def _popcount(values: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(values)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
    return table[values.view(np.uint8).reshape(*values.shape, 8)].sum(axis=-1)


def near_duplicates(hashes: Sequence[int], threshold: int = 6, *, block: int = 64
                    ) -> dict[int, tuple[int, int]]:
    """Which items to drop as near-duplicates: ``{dropped: (kept, distance)}``.

    Over the whole set, in order: each item not yet dropped is kept and drops every later item
    within ``threshold`` bits of it, so the earliest of a group stays and every dropped item points
    at a kept one (its reason is always checkable). Distances are computed ``block`` rows at a
    time against every later item (one vectorised popcount), then the few close pairs are resolved
    in order: 10,000 hashes take a fraction of a second, 50,000 a few seconds.
    """
    values = np.array([int(h) & 0xFFFF_FFFF_FFFF_FFFF for h in hashes], dtype=np.uint64)
    dropped_mask = np.zeros(values.size, dtype=bool)
    dropped: dict[int, tuple[int, int]] = {}
    for first in range(0, values.size, block):
        rows = np.arange(first, min(first + block, values.size))
        rows = rows[~dropped_mask[rows]]
        if rows.size == 0:
            continue
        distances = _popcount(values[rows, None] ^ values[None, first + 1:])
        row_at, column_at = np.nonzero(distances <= threshold)
        for position, row in enumerate(rows):
            if dropped_mask[row]:
                continue
            columns = column_at[row_at == position]
            later = columns[columns + first + 1 > row] + first + 1
            later = later[~dropped_mask[later]]
            for column in later:
                dropped[int(column)] = (int(row), int(distances[position, column - first - 1]))
            dropped_mask[later] = True
    return dict(sorted(dropped.items()))
