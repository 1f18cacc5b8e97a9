"""Clustering recovers planted groups, keeps noise apart, and the modes behave as a user expects."""

from __future__ import annotations

import numpy as np
import pytest

from lora_foundry.stages.clusters import cluster as C


def planted(n: int, dim: int = 512, clusters: int = 12, spread: float = 0.6, seed: int = 1):
    rng = np.random.default_rng(seed)
    centres = C.l2_normalise(rng.normal(size=(clusters, dim)))
    weights = rng.uniform(1, 4, clusters)
    truth = rng.choice(clusters, size=n, p=weights / weights.sum())
    vectors = centres[truth] + rng.normal(size=(n, dim)) * spread / np.sqrt(dim)
    return C.l2_normalise(vectors), truth


def test_planted_clusters_in_10k_512d_vectors_are_recovered():
    from sklearn.metrics import adjusted_rand_score

    vectors, truth = planted(10_000)
    found = C.cluster_vectors(vectors, min_cluster_size=25)
    assert adjusted_rand_score(truth, found.labels) >= 0.95
    # Renumbered largest first: cluster 0 is the biggest planted group.
    sizes = found.sizes()
    assert sizes[0] == max(v for k, v in sizes.items() if k >= 0)
    assert sizes[0] == np.bincount(truth).max()


def with_junk(n: int, junk_share: float = 0.05, spread: float = 1.5, clusters: int = 12, dim: int = 128, seed: int = 3):
    """Planted clusters plus random unit vectors (truth -1): frames that resemble nothing."""
    junk = round(n * junk_share)
    vectors, truth = planted(n - junk, dim=dim, clusters=clusters, spread=spread, seed=seed)
    rng = np.random.default_rng(seed + 1)
    vectors = np.vstack([vectors, C.l2_normalise(rng.normal(size=(junk, vectors.shape[1])))])
    return vectors, np.concatenate([truth, np.full(junk, -1)])


def test_random_junk_among_planted_clusters_is_noise_not_one_more_cluster():
    from sklearn.metrics import adjusted_rand_score

    vectors, truth = with_junk(2_400, spread=1.0, dim=512)  # without the cosine check: recall 0, 13 clusters
    found = C.cluster_vectors(vectors, min_cluster_size=24)
    inliers = truth >= 0
    assert (found.labels[~inliers] == C.NOISE).mean() >= 0.9
    assert adjusted_rand_score(truth[inliers], found.labels[inliers]) >= 0.95
    assert len(set(found.labels.tolist()) - {C.NOISE}) == 12
    assert (found.labels[inliers] != C.NOISE).mean() >= 0.99


def test_a_set_over_the_sample_size_is_clustered_row_by_row_from_a_sample():
    from sklearn.metrics import adjusted_rand_score

    vectors, truth = with_junk(3_000)
    found = C.cluster_vectors(vectors, min_cluster_size=30, sample=600)
    inliers = truth >= 0
    assert (found.labels[~inliers] == C.NOISE).mean() >= 0.9
    assert adjusted_rand_score(truth[inliers], found.labels[inliers]) >= 0.95
    assert (found.labels[inliers] != C.NOISE).mean() >= 0.99  # rows HDBSCAN never saw joined their cluster
    again = C.cluster_vectors(vectors, min_cluster_size=30, sample=600)
    assert (again.labels == found.labels).all()  # the sample is seeded


def test_far_outliers_land_in_the_noise_bucket():
    vectors, _ = planted(600, dim=64, clusters=3)
    rng = np.random.default_rng(5)
    outliers = C.l2_normalise(rng.normal(size=(6, 64)))
    found = C.cluster_vectors(np.vstack([vectors, outliers]), min_cluster_size=20, dims=0)
    assert (found.labels[-6:] == C.NOISE).all()
    assert (found.labels[:600] != C.NOISE).mean() > 0.95


@pytest.mark.parametrize("backend", ["hdbscan", "sklearn"])
def test_both_backends_agree_on_clear_clusters(backend):
    from sklearn.metrics import adjusted_rand_score

    vectors, truth = planted(1_000, clusters=5)
    found = C.cluster_vectors(vectors, min_cluster_size=20, backend=backend)
    assert found.backend == backend
    assert adjusted_rand_score(truth, found.labels) >= 0.95


def test_scene_threshold_merges_two_groups_of_one_place():
    rng = np.random.default_rng(2)
    place = C.l2_normalise(rng.normal(size=(1, 64)))[0]
    other = C.l2_normalise(rng.normal(size=(1, 64)))[0]
    near = C.l2_normalise(place + 0.25 * C.l2_normalise(rng.normal(size=(1, 64))))[0]
    groups = [place, near, other]
    vectors = np.vstack([C.l2_normalise(g + rng.normal(size=(60, 64)) * 0.01) for g in groups])
    apart = C.cluster_vectors(vectors, min_cluster_size=10, dims=0)
    assert len(set(apart.labels) - {-1}) == 3
    together = C.cluster_scenes(vectors, min_cluster_size=10, similarity=0.9, dims=0)
    assert together.labels[0] == together.labels[60] != together.labels[120]


def test_style_filter_drops_outliers_and_a_tiny_look():
    vectors, truth = planted(400, dim=64, clusters=2, spread=0.3)
    rng = np.random.default_rng(9)
    odd = C.l2_normalise(rng.normal(size=(1, 64)) + rng.normal(size=(12, 64)) * 0.02)
    found = C.cluster_vectors(np.vstack([vectors, odd]), min_cluster_size=10, dims=0)
    keep = C.style_keep(found, min_share=0.1, min_probability=0.0)
    assert keep[:400].mean() > 0.95
    assert not keep[400:].any()


def test_identical_vectors_are_one_cluster_not_noise():
    found = C.cluster_vectors(np.ones((30, 8), np.float32), min_cluster_size=5)
    assert (found.labels == 0).all()


def test_style_filter_keeps_everything_when_no_look_dominates():
    found = C.Clusters(np.full(7, C.NOISE), np.zeros(7, np.float32), "sklearn")
    assert C.style_keep(found).all()


def test_actions_cluster_on_torso_normalised_pose_regardless_of_size_and_place():
    base_stand = np.array([[50, 10], [48, 8], [52, 8], [46, 9], [54, 9], [42, 20], [58, 20], [40, 35],
                           [60, 35], [40, 48], [60, 48], [45, 50], [55, 50], [45, 70], [55, 70],
                           [45, 90], [55, 90]], np.float32)
    arms_up = base_stand.copy()
    arms_up[[7, 8, 9, 10], 1] = [8, 8, -5, -5]
    rng = np.random.default_rng(3)
    keypoints, truth = [], []
    for i in range(80):
        pose = base_stand if i % 2 == 0 else arms_up
        scale, shift = rng.uniform(0.5, 3.0), rng.uniform(0, 500, size=2)
        keypoints.append(pose * scale + shift + rng.normal(size=pose.shape) * 0.3 * scale)
        truth.append(i % 2)
    found = C.cluster_actions(np.array(keypoints), np.ones((80, 17)), min_cluster_size=10)
    labels = found.labels
    assert len(set(labels) - {-1}) == 2
    assert all(labels[i] == labels[0] for i in range(0, 80, 2))
    assert all(labels[i] == labels[1] for i in range(1, 80, 2))


def test_auto_backend_follows_the_benchmark():
    assert C.pick_backend("auto", 1_000) == "sklearn"
    assert C.pick_backend("auto", 50_000) == "hdbscan"
    with pytest.raises(ValueError):
        C.pick_backend("faiss")


def test_noise_is_never_offered_as_a_character_by_size_text_or_reference():
    from lora_foundry.stages.clusters import select

    labels = np.array([C.NOISE] * 50 + [0] * 10 + [1] * 5)
    rng = np.random.default_rng(4)
    vectors = C.l2_normalise(rng.normal(size=(65, 16)))
    query = vectors[:50].mean(axis=0)  # a text or reference image that looks like the junk
    assert select.by_size_rank(labels, 10) == [0, 1]  # the noise bucket is the largest, and not offered
    assert C.NOISE not in select.nearest_clusters(vectors, labels, query, 10)
    assert select.parse_ids("noise, 1") == [C.NOISE, 1]  # only asking for it by name picks it
