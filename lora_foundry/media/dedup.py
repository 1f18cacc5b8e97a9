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
        return np.bitwise_count(values).astype(np.int64)
    table = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
    return table[values.view(np.uint8).reshape(*values.shape, 8)].sum(axis=-1)


def near_duplicates(hashes: Sequence[int], threshold: int = 6) -> dict[int, tuple[int, int]]:
    """Which items to drop as near-duplicates: ``{dropped: (kept, distance)}``.

    Over the whole set, in order: each item not yet dropped is kept and drops every later item
    within ``threshold`` bits of it, so the earliest of a group stays and every dropped item points
    at a kept one (its reason is always checkable).
    """
    values = np.array([int(h) & 0xFFFF_FFFF_FFFF_FFFF for h in hashes], dtype=np.uint64)
    dropped_mask = np.zeros(values.size, dtype=bool)
    dropped: dict[int, tuple[int, int]] = {}
    for index in range(values.size):
        if dropped_mask[index]:
            continue
        distances = _popcount(values[index + 1:] ^ values[index])
        close = np.flatnonzero((distances <= threshold) & ~dropped_mask[index + 1:])
        for offset in close:
            dropped[int(index + 1 + offset)] = (index, int(distances[offset]))
        dropped_mask[index + 1 + close] = True
    return dict(sorted(dropped.items()))
