"""Near-duplicate, blur and darkness filters on real frames, plus the contact sheet."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from lora_foundry.media.blur import blurry, brightness_contrast, sharpness
from lora_foundry.media.contact_sheet import contact_sheet
from lora_foundry.media.dedup import hamming, near_duplicates, perceptual_hash
from lora_foundry.media.images import encode_image
from lora_foundry.media.video import iter_frames


@pytest.fixture(scope="module")
def shot_frames(media_dir) -> list[tuple[int, np.ndarray]]:
    """Two frames per shot of the montage, (shot, rgb) at 320 px: 12 real, varied pictures."""
    path = media_dir / "montage_6_shots.mp4"
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    shots = {}
    for number, shot in enumerate(truth["shots"]):  # at 1/3 and 2/3 of each shot
        start, end = shot["start_s"] * truth["fps"], shot["end_s"] * truth["fps"]
        shots.update({round(start + (end - start) * k / 3): number for k in (1, 2)})
    return [(shots[f.index], f.rgb) for f in
            iter_frames(path, wanted=shots.__contains__, long_side=320)]


def _jpeg_again(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    data = np.frombuffer(encode_image(rgb, ".jpg", quality=quality), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _brighter(rgb: np.ndarray, amount: int = 10) -> np.ndarray:
    return np.clip(rgb.astype(int) + amount, 0, 255).astype(np.uint8)


def test_planted_copies_are_found_and_different_clips_are_not_merged(shot_frames, media_dir):
    """Shots 1 and 5 come from one static office camera and really look alike (hash distance
    0-6), so they may merge; frames from different source clips must never."""
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    clip_of_shot = [shot["source"].split()[0] for shot in truth["shots"]]
    originals = [rgb for _, rgb in shot_frames]
    clips = [clip_of_shot[shot] for shot, _ in shot_frames]
    copies = [(_jpeg_again(rgb) if i % 2 else _brighter(rgb)) for i, rgb in enumerate(originals)]
    pictures, picture_clips = originals + copies, clips * 2
    hashes = [perceptual_hash(p) for p in pictures]

    dropped = near_duplicates(hashes, threshold=6)

    for copy_index in range(12, 24):  # every planted copy is dropped
        assert copy_index in dropped
    for index, (kept, distance) in dropped.items():
        assert kept < index and kept not in dropped
        assert distance == hamming(hashes[kept], hashes[index]) <= 6
        assert picture_clips[kept] == picture_clips[index]  # never across source clips
    kept_clips = {picture_clips[i] for i in range(24) if i not in dropped}
    assert kept_clips == set(clip_of_shot)  # every clip keeps at least one frame


def test_near_duplicates_matches_brute_force_and_scales():
    rng = np.random.default_rng(7)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64)
    flips = rng.integers(0, 64, (300, 3))
    noisy = [int(b) ^ (1 << int(f[0])) ^ (1 << int(f[1])) for b, f in zip(base, flips, strict=True)]
    hashes = [int(b) for b in base] + noisy
    order = rng.permutation(len(hashes))
    hashes = [hashes[i] for i in order]

    expected: dict[int, tuple[int, int]] = {}
    for i in range(len(hashes)):
        if i in expected:
            continue
        for j in range(i + 1, len(hashes)):
            if j not in expected and hamming(hashes[i], hashes[j]) <= 6:
                expected[j] = (i, hamming(hashes[i], hashes[j]))
    assert near_duplicates(hashes, 6) == expected
    assert len(expected) >= 300

    big = rng.integers(0, 2**63, 10_000, dtype=np.uint64).tolist()
    big[9_999] = big[17] ^ 0b101
    assert near_duplicates(big, 6)[9_999] == (17, 2)


def test_blurred_copies_flagged_sharp_kept_black_reported_dark(shot_frames):
    pictures = [rgb for _, rgb in shot_frames]
    groups = [shot for shot, _ in shot_frames]
    blurred = [cv2.GaussianBlur(rgb, (0, 0), 3.0) for rgb in pictures[::2]]
    black = np.zeros_like(pictures[0])
    black[::7, ::7] = 12  # black with a little noise: a fade-out frame
    pictures += [*blurred, black]
    groups += groups[::2] + [groups[0]]
    scores = [sharpness(p) for p in pictures]
    light = [brightness_contrast(p)[0] for p in pictures]

    reasons = blurry(scores, groups, brightness=light)

    assert all(i not in reasons for i in range(12))  # every sharp original kept
    for index in range(12, 12 + len(blurred)):
        assert index in reasons and reasons[index].startswith("sharpness")
    assert reasons[len(pictures) - 1].startswith("too dark")
    assert "% of shot median" in reasons[12]


def test_blur_without_brightness_and_small_groups():
    reasons = blurry([100.0, 5.0], [0, 1])  # shots too small: compared with the whole set
    assert list(reasons) == [1] and "set median" in reasons[1]
    with pytest.raises(ValueError):
        blurry([1.0, 2.0], [0])


def test_sharpness_ranks_sharp_above_blurred(shot_frames):
    rgb = shot_frames[0][1]
    assert sharpness(rgb) > 3 * sharpness(cv2.GaussianBlur(rgb, (0, 0), 3.0))
    assert brightness_contrast(np.full((8, 8, 3), 50, np.uint8)) == (50.0, 0.0)


def test_contact_sheet_layout_and_labels(shot_frames):
    pictures = [rgb for _, rgb in shot_frames][:7]
    plain = contact_sheet(pictures, columns=3, cell=64)
    assert plain.shape == (3 * 68, 3 * 68, 3) and plain.dtype == np.uint8
    labelled = contact_sheet(pictures, columns=3, cell=64, labels=[f"#{i}" for i in range(7)])
    assert labelled.shape == (3 * (68 + 16), 3 * 68, 3)
    label_strip = labelled[68:84, :68]
    assert (label_strip > 200).any()  # text was drawn
    grey_and_alpha = [np.full((10, 30), 200, np.uint8), np.zeros((30, 10, 4), np.uint8)]
    assert contact_sheet(grey_and_alpha, cell=32).shape == (36, 72, 3)
    with pytest.raises(ValueError):
        contact_sheet([])
