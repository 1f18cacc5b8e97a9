"""How long HDBSCAN takes on CLIP-like vectors: the hdbscan package vs scikit-learn, one run;
and (``--hard``) how ``cluster_vectors`` does on a film's worth of vectors with its junk.

Synthetic 512-d unit vectors with planted clusters (like CLIP embeddings of a film's shots),
L2-normalised and reduced to 50 dimensions by PCA exactly as ``stages.cluster.cluster_vectors``
does, then clustered by each backend. Prints seconds, the ratio sklearn/hdbscan and the adjusted
Rand index against the planted labels, for 1k / 10k / 50k vectors.

    python bench/cluster.py            # all sizes
    python bench/cluster.py 1000 10000 # some sizes
    python bench/cluster.py --hard     # 50,000 vectors: 20 planted clusters + 5 % random junk

``--hard`` runs the function LF Cluster Frames uses on 47,500 vectors around 20 planted centres
(spread 1.0 and 1.5) plus 2,500 random unit vectors, and prints wall and CPU seconds (this
process, every thread), the adjusted Rand index on the planted vectors (junk left out), noise
recall (junk labelled noise) and how many planted vectors were called noise. Goal (issue 27):
<= 10 s, ARI >= 0.95, recall >= 0.9.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lora_foundry.stages.clusters.cluster import (  # noqa: E402
    cluster_vectors,
    hdbscan_fit,
    l2_normalise,
    reduce_dims,
    relabel_by_size,
)


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


def with_junk(n: int, spread: float, share: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``planted`` vectors plus ``share`` of ``n`` random unit vectors labelled -1, shuffled."""
    junk = round(n * share)
    vectors, labels = planted(n - junk, spread=spread, seed=seed)
    rng = np.random.default_rng(seed + 1)
    everything = np.vstack([vectors, l2_normalise(rng.normal(size=(junk, vectors.shape[1])))])
    truth = np.concatenate([labels, np.full(junk, -1)])
    order = rng.permutation(n)
    return everything[order], truth[order]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def hard(n: int = 50_000) -> None:
    from sklearn.metrics import adjusted_rand_score

    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}", flush=True)
    for spread in (1.0, 1.5):
        vectors, truth = with_junk(n, spread)
        wall, cpu = time.perf_counter(), cpu_seconds()
        found = cluster_vectors(vectors, min_cluster_size=max(5, n // 400))
        wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
        planted_rows, junk_rows = truth >= 0, truth < 0
        ari = adjusted_rand_score(truth[planted_rows], found.labels[planted_rows])
        recall = float((found.labels[junk_rows] < 0).mean())
        lost = float((found.labels[planted_rows] < 0).mean())
        clusters = len(set(found.labels.tolist()) - {-1})
        print(f"n={n} spread {spread}: {wall:6.2f} s wall  {cpu:6.2f} s CPU  ARI {ari:.3f} (inliers)  "
              f"noise recall {recall:.3f}  inliers called noise {lost:.3%}  clusters {clusters}  "
              f"[{found.backend}]", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f}", flush=True)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--hard"]:
        hard(*(int(a) for a in argv[1:]))
        return
    sizes = [int(a) for a in argv] or [1_000, 10_000, 50_000]
    for n in sizes:
        run(n)


if __name__ == "__main__":
    main(sys.argv[1:])
