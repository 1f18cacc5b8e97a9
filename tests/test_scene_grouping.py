"""The montage's repeated scenes group together from pixels alone (no model weights).

montage_6_shots.json: shots 1 and 5 are the same meadow (shot 5 mirrored), shots 2 and 6 the same
office. The feature that does it: an HSV colour histogram (position-free) plus a 16x9 layout
thumbnail averaged with its mirror image (so a flipped shot embeds like the original).
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from lora_foundry.media.video import iter_frames
from lora_foundry.stages.clusters import cluster as C
from lora_foundry.stages.clusters.embedders import pixel_features


@pytest.fixture(scope="module")
def montage(media_dir):
    meta = json.loads((media_dir / "montage_6_shots.json").read_text())
    starts = [shot["start_s"] for shot in meta["shots"]]
    frames = list(iter_frames(media_dir / meta["file"], thumb_size=(256, 144), wanted=lambda i: i % 5 == 2))
    shots = np.array([sum(f.time_s >= s for s in starts) for f in frames])
    return frames, shots


def shot_clusters(labels, shots):
    """The cluster ids (noise excluded) holding most of each shot's frames."""
    return {s: {lab for lab, n in Counter(labels[shots == s]).items() if lab != -1 and n >= 2}
            for s in range(1, 7)}


def test_feature_is_mirror_invariant(montage):
    frames, _ = montage
    rgb = frames[3].rgb
    assert np.allclose(pixel_features(rgb), pixel_features(rgb[:, ::-1]), atol=1e-6)
    assert not np.allclose(pixel_features(rgb), pixel_features(frames[-1].rgb), atol=1e-2)


def test_same_scenes_group_across_the_montage(montage):
    frames, shots = montage
    vectors = np.stack([pixel_features(f.rgb) for f in frames])
    found = C.cluster_scenes(vectors, min_cluster_size=5, similarity=0.97, dims=0)
    groups = shot_clusters(found.labels, shots)
    assert all(groups.values()), f"a shot has no cluster: {groups}"
    assert groups[1] == groups[5], "meadow shots 1 and 5 (mirrored) should share their scene"
    assert groups[2] == groups[6], "office shots 2 and 6 should share their scene"
    distinct = [frozenset(groups[s]) for s in (1, 2, 3, 4)]
    assert all(a.isdisjoint(b) for i, a in enumerate(distinct) for b in distinct[i + 1:])


def test_shot_means_show_why(montage):
    frames, shots = montage
    vectors = C.l2_normalise(np.stack([pixel_features(f.rgb) for f in frames]))
    means = C.l2_normalise(np.stack([vectors[shots == s].mean(axis=0) for s in range(1, 7)]))
    similarity = means @ means.T
    same = [similarity[0, 4], similarity[1, 5]]
    different = [similarity[i, j] for i in range(6) for j in range(i + 1, 6) if (i, j) not in ((0, 4), (1, 5))]
    assert min(same) > max(different) + 0.05
