"""Which clusters to keep: by id, by size rank, or nearest to a query vector (a text's or reference
images' embedding). Plain arrays in, cluster ids out; ``select_stage`` applies them to a workspace."""

from __future__ import annotations

import numpy as np

from .cluster import NOISE, centroids, l2_normalise

BY = ("id", "size_rank", "text", "reference")


def parse_ids(text: str) -> list[int]:
    """"0, 2 ,5" -> [0, 2, 5]; "noise" or -1 for the noise bucket."""
    ids = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip().lower()
        if part:
            ids.append(NOISE if part == "noise" else int(part))
    return ids


def by_size_rank(labels: np.ndarray, count: int) -> list[int]:
    ids, sizes = np.unique(labels[labels != NOISE], return_counts=True)
    order = ids[np.argsort(-sizes, kind="stable")]
    return [int(i) for i in order[: max(0, count)]]


def nearest_clusters(vectors: np.ndarray, labels: np.ndarray, query: np.ndarray, count: int) -> list[int]:
    """Clusters whose centroids are most cosine-similar to ``query`` (a vector or vectors)."""
    cents = centroids(vectors, labels)
    if not cents:
        return []
    q = l2_normalise(np.atleast_2d(query)).mean(axis=0)
    scores = {label: float(c @ q) for label, c in cents.items()}
    return sorted(scores, key=lambda k: -scores[k])[: max(1, count)]
