"""Junk frames as noise, judged where the embeddings live: in the original cosine space.

Why not trust HDBSCAN's noise label alone: after a PCA to 50 dimensions, frames that resemble
nothing in particular (random vectors in the synthetic bench, title cards and crowd shots in a
film) all project near the centre, where they are as dense as a real group; HDBSCAN then makes
them one more cluster that a user would be offered as a "character" (issue 27: 2,500 random
vectors among 50,000, noise recall 0). In the original space they give themselves away:

- a real group's members point one way, so the mean of its unit vectors is long (its
  *coherence*, about 0.7 for bench/cluster.py's spread 1.0); a bag of unrelated frames points
  every way and its mean is short. A cluster whose coherence is not clearly above the
  *background* (the coherence of the whole set: how alike any two frames are anyway, near 0.16
  in the bench, higher for CLIP, whose vectors share a common direction) is dissolved into noise;
- a frame joins its nearest surviving cluster only when its cosine to that centroid is at least
  halfway from the background to the cluster's typical (median) member; otherwise it is noise.

So HDBSCAN finds the groups and the cosine space decides who belongs, every frame by the same
rule, including those HDBSCAN never saw (``cluster.cluster_vectors`` fits it on a sample of a
large set) and those it called noise in a sparse stretch of the reduced space.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

NOISE = -1
COHERENCE_MARGIN = 0.25
"""A cluster must be this share of the way from the background's coherence to 1 (perfectly alike)."""
CHUNK_ROWS = 8192
"""Rows per block when comparing every frame with every centroid (memory stays ~CHUNK_ROWS x clusters)."""


@dataclass(frozen=True)
class Centroids:
    """The clusters that passed the coherence test: unit centroids, each one's cosine floor and
    typical (median) member cosine, and the cluster id each row of ``vectors`` stands for."""

    ids: np.ndarray
    vectors: np.ndarray
    floors: np.ndarray
    typical: np.ndarray


def background(points: np.ndarray) -> float:
    """Coherence of the whole set: the length of the mean of its unit vectors."""
    return float(np.linalg.norm(points.mean(axis=0, dtype=np.float64)))


def coherent_centroids(members: np.ndarray, labels: np.ndarray, base: float) -> Centroids:
    """Centroids of the clusters of ``labels`` (rows of ``members``) that are clearly more alike than
    the background ``base``; incoherent ones are left out, so their members become noise."""
    ids, cents, floors, typical = [], [], [], []
    needed = base + COHERENCE_MARGIN * (1.0 - base)
    for label in np.unique(labels[labels != NOISE]):
        rows = members[labels == label]
        mean = rows.mean(axis=0, dtype=np.float64)
        length = float(np.linalg.norm(mean))
        if length < needed:
            continue
        centre = (mean / length).astype(np.float32)
        median = float(np.median(rows @ centre))
        ids.append(int(label))
        cents.append(centre)
        floors.append((median + base) / 2.0)
        typical.append(median)
    dim = members.shape[1]
    return Centroids(np.array(ids, np.int64), np.array(cents, np.float32).reshape(-1, dim),
                     np.array(floors, np.float32), np.array(typical, np.float32))


def _blocks(count: int) -> Iterator[slice]:
    for start in range(0, count, CHUNK_ROWS):
        yield slice(start, min(start + CHUNK_ROWS, count))


def assign(points: np.ndarray, kept: Centroids) -> tuple[np.ndarray, np.ndarray]:
    """Label and strength of every row of ``points``: the nearest kept centroid when the row's
    cosine to it reaches that cluster's floor, else noise. Strength is 1 at (or above) the
    cluster's typical member and falls to 0 at its floor."""
    labels = np.full(len(points), NOISE, np.int64)
    strength = np.zeros(len(points), np.float32)
    if not len(kept.ids):
        return labels, strength
    for block in _blocks(len(points)):
        sims = points[block] @ kept.vectors.T
        nearest = sims.argmax(axis=1)
        cos = sims[np.arange(len(nearest)), nearest]
        floor, typical = kept.floors[nearest], kept.typical[nearest]
        ok = cos >= floor
        labels[block] = np.where(ok, kept.ids[nearest], NOISE)
        strength[block] = np.where(ok, np.clip((cos - floor) / np.maximum(typical - floor, 1e-6), 0.0, 1.0), 0.0)
    return labels, strength
