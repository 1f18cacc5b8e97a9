"""Lighting tags from pixels: stable within each shot of the montage, different between places."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from lora_foundry.media.video import iter_frames
from lora_foundry.stages.tagging import lighting as L


@pytest.fixture(scope="module")
def tags_per_shot(media_dir):
    meta = json.loads((media_dir / "montage_6_shots.json").read_text())
    starts = [shot["start_s"] for shot in meta["shots"]]
    per_shot: dict[int, list[tuple[str, ...]]] = {s: [] for s in range(1, 7)}
    for frame in iter_frames(media_dir / meta["file"], thumb_size=(256, 144), wanted=lambda i: i % 6 == 3):
        shot = sum(frame.time_s >= s for s in starts)
        per_shot[shot].append(tuple(L.tags_of(L.measure(frame.rgb))))
    return per_shot


def test_tags_are_stable_within_every_shot(tags_per_shot):
    for shot, tag_sets in tags_per_shot.items():
        mode, count = Counter(tag_sets).most_common(1)[0]
        assert count / len(tag_sets) >= 0.9, f"shot {shot} flickers: {Counter(tag_sets)}"


def test_meadow_and_office_get_different_light(tags_per_shot):
    def main(shot):
        return set(Counter(tags_per_shot[shot]).most_common(1)[0][0])

    meadow, office = main(1), main(2)
    assert "golden hour" in meadow and "indoor" not in meadow
    assert "indoor" in office and "golden hour" not in office
    # The same places later in the montage get the same time of day / setting.
    assert {"golden hour"} <= main(5) and {"indoor"} <= main(6)
    # Shot 5 is shot 1 mirrored: the light-direction estimate mirrors with it.
    assert "light from the right" in meadow and "light from the left" in main(5)


def test_rules_on_synthetic_images():
    h, w = 90, 160
    night = np.full((h, w, 3), 12, np.uint8)
    assert "night" in L.tags_of(L.measure(night)) and "low key" in L.tags_of(L.measure(night))
    ramp = np.tile(np.linspace(30, 230, w, dtype=np.float32)[None, :, None], (h, 1, 3)).astype(np.uint8)
    assert "light from the right" in L.tags_of(L.measure(ramp))
    assert "light from the left" in L.tags_of(L.measure(ramp[:, ::-1]))
    warm = np.zeros((h, w, 3), np.uint8)
    warm[...] = (200, 150, 90)
    cool = warm[..., ::-1].copy()
    assert L.temperature_of(L.measure(warm)) == "warm" and L.temperature_of(L.measure(cool)) == "cool"
    flat = np.full((h, w, 3), 150, np.uint8)
    assert "soft" in L.tags_of(L.measure(flat))


def test_rim_light_on_a_cut_out():
    rgba = np.zeros((120, 120, 4), np.uint8)
    yy, xx = np.mgrid[:120, :120]
    disc = (yy - 60) ** 2 + (xx - 60) ** 2 < 45 ** 2
    core = (yy - 60) ** 2 + (xx - 60) ** 2 < 38 ** 2
    rgba[disc] = (240, 240, 240, 255)
    rgba[core] = (60, 60, 60, 255)
    assert "rim light" in L.tags_of(L.measure(rgba))
    rgba[disc, :3] = 60
    assert "rim light" not in L.tags_of(L.measure(rgba))
