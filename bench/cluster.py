"""How long HDBSCAN takes on CLIP-like vectors: the hdbscan package vs scikit-learn, one run.

Synthetic 512-d unit vectors with planted clusters (like CLIP embeddings of a film's shots),
L2-normalised and reduced to 50 dimensions by PCA exactly as ``stages.cluster.cluster_vectors``
does, then clustered by each backend. Prints seconds, the ratio sklearn/hdbscan and the adjusted
Rand index against the planted labels, for 1k / 10k / 50k vectors.

    python bench/cluster.py            # all sizes
    python bench/cluster.py 1000 10000 # some sizes
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lora_foundry.stages.clusters.cluster import hdbscan_fit, l2_normalise, reduce_dims, relabel_by_size  # noqa: E402


def planted(n: int, dim: int = 512, clusters: int = 20, spread: float = 0.6, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors around ``clusters`` random centres (sizes vary 1:4), and their labels."""
    rng = np.random.default_rng(seed)
    centres = l2_normalise(rng.normal(size=(clusters, dim)))
    weights = rng.uniform(1, 4, clusters)
    labels = rng.choice(clusters, size=n, p=weights / weights.sum())
    noise = rng.normal(size=(n, dim)) * spread / np.sqrt(dim)
    return l2_normalise(centres[labels] + noise), labels


def run(n: int) -> None:
    from sklearn.metrics import adjusted_rand_score

    vectors, truth = planted(n)
    started = time.perf_counter()
    points = reduce_dims(vectors, 50)
    pca_s = time.perf_counter() - started
    min_size = max(5, n // 400)
    seconds: dict[str, float] = {}
    for backend in ("hdbscan", "sklearn"):
        started = time.perf_counter()
        labels, _ = hdbscan_fit(points, min_size, None, backend)
        seconds[backend] = time.perf_counter() - started
        ari = adjusted_rand_score(truth, relabel_by_size(labels))
        noise = float((labels < 0).mean())
        print(f"n={n:>6}  {backend:<8} {seconds[backend]:7.2f} s  (+PCA {pca_s:.2f} s)  "
              f"ARI {ari:.3f}  noise {noise:.1%}", flush=True)
    print(f"n={n:>6}  sklearn/hdbscan time ratio {seconds['sklearn'] / seconds['hdbscan']:.2f}", flush=True)


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [1_000, 10_000, 50_000]
    for n in sizes:
        run(n)


if __name__ == "__main__":
    main(sys.argv[1:])
