"""Grouping frames by what they show: HDBSCAN on normalised vectors, after a PCA.

Why PCA first: on 512-d unit vectors HDBSCAN's tree methods collapse and 10,000 points take
85-91 s; PCA to 50 dimensions then euclidean takes ~5 s with the same clusters (FIELD_NOTES,
re-measured by bench/cluster.py). Backend "auto" follows bench/cluster.py's measurement here:
scikit-learn's HDBSCAN was ~4x faster at 1k and 10k vectors, the hdbscan package 1.8x faster at
50k, so auto picks scikit-learn under ``LARGE_SET`` rows and the hdbscan package (when
installed) from there on. Noise (-1) is its own bucket, never forced into a cluster.

Why the check in cosine space and the sample (``cosine_noise``, issue 27): after the PCA, junk
frames gather near the centre as densely as a real group and became one more cluster (50,000
vectors with 5 % random ones: noise recall 0, 25 s); HDBSCAN on a 10,000-row sample plus the
cosine rule gives recall 1.0, ARI 1.0 on the planted groups, 6-8.5 s CPU (bench/cluster.py --hard).

Modes (array level; workspace wrappers live in ``cluster_stage``):
- characters: embeddings of cut-outs -> clusters;
- scenes: embeddings (or pixel features) of backgrounds/whole frames -> clusters, then clusters
  whose centroids are more similar than a threshold are merged (one place filmed in two shots);
- style filter: keep the frames of the dominant look, drop outliers and transition frames;
- actions: pose keypoints normalised to the torso -> clusters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...choices import one_of
from . import cosine_noise

NOISE = -1
BACKENDS = ("auto", "hdbscan", "sklearn")
SAMPLE_ROWS = 10_000
"""Rows HDBSCAN sees at most (``cluster_vectors``): bench/cluster.py --hard."""
LARGE_SET = 5_000  # bench/cluster.py with min_samples<=10: sklearn faster at 1k (0.09 vs 0.32 s), hdbscan at 10k (5.1 vs 7.2 s) and 50k (31 vs 225 s)
COCO_SHOULDERS = (5, 6)
COCO_HIPS = (11, 12)


@dataclass(frozen=True)
class Clusters:
    """Labels per row (``-1`` = noise), HDBSCAN membership strength per row, the backend used."""

    labels: np.ndarray
    probabilities: np.ndarray
    backend: str

    def sizes(self) -> dict[int, int]:
        ids, counts = np.unique(self.labels, return_counts=True)
        return {int(i): int(c) for i, c in zip(ids, counts, strict=True)}


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def reduce_dims(vectors: np.ndarray, dims: int = 50, seed: int = 0) -> np.ndarray:
    """PCA to ``dims`` (randomised SVD) when the vectors have more; otherwise unchanged."""
    n, d = vectors.shape
    target = min(dims, n - 1, d)
    if dims <= 0 or d <= dims or target < 2:
        return vectors
    from sklearn.decomposition import PCA

    return PCA(n_components=target, svd_solver="randomized", random_state=seed).fit_transform(vectors)


def pick_backend(backend: str = "auto", rows: int = 0) -> str:
    """The explicit choice, else (auto) "sklearn" under ``LARGE_SET`` rows and "hdbscan" from
    there on when the package imports (bench/cluster.py)."""
    one_of(backend, BACKENDS, "cluster backend")
    if backend != "auto":
        return backend
    if rows < LARGE_SET:
        return "sklearn"
    try:
        import hdbscan  # noqa: F401
    except ImportError:
        return "sklearn"
    return "hdbscan"


DEFAULT_MIN_SAMPLES = 10


def hdbscan_fit(points: np.ndarray, min_cluster_size: int, min_samples: int | None, backend: str
                ) -> tuple[np.ndarray, np.ndarray]:
    """Labels and membership probabilities from the chosen HDBSCAN implementation.

    ``min_samples`` defaults to at most ``DEFAULT_MIN_SAMPLES``, not to ``min_cluster_size``
    (both libraries' default): the core-distance k-NN search grows with it, and at 50,000 PCA-50
    vectors the hdbscan package took 13.6 s with 10, 40.8 s with 25 and over 900 s with 125
    (min_cluster_size = n/400), all recovering the planted clusters with ARI 1.0.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    if min_samples is None:
        min_samples = min(min_cluster_size, DEFAULT_MIN_SAMPLES)
    if backend == "hdbscan":
        import hdbscan

        model = hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples)
    else:
        from sklearn.cluster import HDBSCAN

        model = HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, copy=True)
    labels = model.fit_predict(points)
    return labels.astype(np.int64), np.asarray(model.probabilities_, dtype=np.float32)


def cluster_vectors(
    vectors: np.ndarray,
    min_cluster_size: int = 5,
    min_samples: int | None = None,
    dims: int = 50,
    backend: str = "auto",
    normalise: bool = True,
    sample: int = SAMPLE_ROWS,
    seed: int = 0,
) -> Clusters:
    """HDBSCAN on (L2-normalised, PCA-reduced) vectors; labels renumbered largest first.

    For normalised vectors (embeddings) HDBSCAN only finds the groups: ``cosine_noise`` then drops
    incoherent ones (junk gathered near the centre of the reduced space) and gives every row to its
    nearest coherent group or to noise, and probabilities are its cosine strengths. Over
    ``sample`` rows, HDBSCAN sees a seeded random sample of that many (``min_cluster_size``
    scaled to it): bench/cluster.py --hard, 50,000 vectors in seconds instead of minutes.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    count = len(vectors)
    if count < max(2, min_cluster_size):
        return Clusters(np.full(count, NOISE, np.int64), np.zeros(count, np.float32), pick_backend(backend, count))
    points = l2_normalise(vectors) if normalise else vectors
    if float(np.ptp(points, axis=0).max()) < 1e-6:  # all alike: HDBSCAN would call it all noise
        return Clusters(np.zeros(count, np.int64), np.ones(count, np.float32), pick_backend(backend, count))
    rows = sample_rows(count, sample, seed) if normalise else np.arange(count)
    size = max(2, round(min_cluster_size * len(rows) / count))
    chosen = pick_backend(backend, len(rows))
    labels, probabilities = hdbscan_fit(reduce_dims(points[rows], dims), size, min_samples, chosen)
    if normalise:
        labels, probabilities = _check_in_cosine_space(points, rows, labels, min_cluster_size)
    return Clusters(relabel_by_size(labels), probabilities, chosen)


def sample_rows(count: int, sample: int, seed: int) -> np.ndarray:
    """Every row, or ``sample`` of them picked at random (seeded, sorted) when there are more."""
    if sample <= 0 or count <= sample:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size=sample, replace=False))


def _check_in_cosine_space(points: np.ndarray, rows: np.ndarray, labels: np.ndarray,
                           min_cluster_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every row's label by ``cosine_noise``'s rule, from the clusters HDBSCAN found among ``rows``;
    a cluster left with fewer than ``min_cluster_size`` rows becomes noise."""
    kept = cosine_noise.coherent_centroids(points[rows], labels, cosine_noise.background(points))
    final, strength = cosine_noise.assign(points, kept)
    ids, counts = np.unique(final[final != NOISE], return_counts=True)
    small = np.isin(final, ids[counts < min_cluster_size])
    final[small], strength[small] = NOISE, 0.0
    return final, strength


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids 0, 1, 2, ... from the largest cluster down; noise stays -1."""
    labels = np.asarray(labels)
    ids, counts = np.unique(labels[labels != NOISE], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.array([mapping.get(int(v), NOISE) for v in labels], dtype=np.int64)


def centroids(vectors: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """Unit-length mean vector of each cluster (noise excluded)."""
    unit = l2_normalise(vectors)
    out: dict[int, np.ndarray] = {}
    for label in sorted(set(int(v) for v in labels) - {NOISE}):
        mean = unit[labels == label].mean(axis=0)
        out[label] = mean / max(float(np.linalg.norm(mean)), 1e-12)
    return out


def merge_similar(vectors: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """Merge clusters whose centroids have cosine similarity >= ``threshold`` (union-find)."""
    cents = centroids(vectors, labels)
    ids = list(cents)
    parent = {i: i for i in ids}

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for a_pos, a in enumerate(ids):
        for b in ids[a_pos + 1:]:
            if float(cents[a] @ cents[b]) >= threshold:
                parent[root(b)] = root(a)
    merged = np.array([root(int(v)) if v != NOISE else NOISE for v in labels], dtype=np.int64)
    return relabel_by_size(merged)


def cluster_scenes(vectors: np.ndarray, min_cluster_size: int = 5, similarity: float = 0.9,
                   dims: int = 50, backend: str = "auto") -> Clusters:
    """Scenes: HDBSCAN, then clusters closer than ``similarity`` (cosine) become one scene."""
    found = cluster_vectors(vectors, min_cluster_size, None, dims, backend)
    return Clusters(merge_similar(vectors, found.labels, similarity), found.probabilities, found.backend)


def style_keep(clusters: Clusters, min_share: float = 0.1, min_probability: float = 0.5) -> np.ndarray:
    """Rows that share the dominant look: in a cluster holding >= ``min_share`` of all rows and
    a core-ish member of it (probability >= ``min_probability``). Outliers (noise) and transition
    frames (crossfades sit between clusters: noise or weak members) are dropped. When HDBSCAN
    finds no cluster at all (too few frames, one uniform look) there is nothing to compare with,
    so everything is kept rather than everything dropped."""
    labels, probs = clusters.labels, clusters.probabilities
    total = max(len(labels), 1)
    big = {label for label, size in clusters.sizes().items() if label != NOISE and size / total >= min_share}
    if not (labels != NOISE).any():
        return np.ones(len(labels), bool)
    return np.array([int(lab) in big and float(p) >= min_probability for lab, p in zip(labels, probs, strict=True)])


def torso_normalised(keypoints: np.ndarray, scores: np.ndarray, min_score: float = 0.3) -> np.ndarray:
    """Pose feature per instance: COCO-17 body keypoints centred on the hips' midpoint and scaled
    by the torso length, unseen points zeroed, plus the visibility flags (so a missing arm is a
    feature, not a coordinate at 0)."""
    kp = np.asarray(keypoints, np.float32)[:, :17]
    sc = np.asarray(scores, np.float32)[:, :17]
    visible = sc >= min_score
    features = np.zeros((len(kp), 17 * 3), np.float32)
    for row in range(len(kp)):
        anchor_pts = [p for p in (*COCO_HIPS, *COCO_SHOULDERS) if visible[row, p]]
        if not anchor_pts:
            continue
        hips = [p for p in COCO_HIPS if visible[row, p]] or anchor_pts
        shoulders = [p for p in COCO_SHOULDERS if visible[row, p]] or anchor_pts
        centre = kp[row, hips].mean(axis=0)
        torso = float(np.linalg.norm(kp[row, shoulders].mean(axis=0) - centre))
        visible_pts = kp[row, visible[row]]
        scale = torso if torso > 1e-3 else float(np.ptp(visible_pts, axis=0).max() or 1.0)
        rel = (kp[row] - centre) / scale
        rel[~visible[row]] = 0.0
        features[row, :34] = rel.ravel()
        features[row, 34:] = visible[row].astype(np.float32)
    return features


def cluster_actions(keypoints: np.ndarray, scores: np.ndarray, min_cluster_size: int = 5,
                    backend: str = "auto") -> Clusters:
    """Actions: HDBSCAN on torso-normalised keypoints (51 dims: no PCA, no L2 normalisation)."""
    features = torso_normalised(keypoints, scores)
    return cluster_vectors(features, min_cluster_size, None, dims=0, backend=backend, normalise=False)
