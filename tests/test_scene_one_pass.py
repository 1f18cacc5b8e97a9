"""Scene sampling in one decode pass: the frames, bytes and resume of the two-pass plan it replaced."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lora_foundry.media.cuts import detect_cuts
from lora_foundry.media.sampling import SampleSpec, iter_samples, plan_samples, shot_bounds
from lora_foundry.media.shot_picks import (
    ShotCandidates,
    candidate_capacity,
    grid_stride,
    shot_picks,
)
from lora_foundry.media.video import iter_frames
from lora_foundry.progress import CallbackProgress, Cancelled
from lora_foundry.stages.frames import ingest_stage as ingest
from lora_foundry.workspace import Workspace


def _slice_centres(cuts_result, per_shot: int) -> list[int]:
    """The per-shot rule of the two-pass planner before this change, written out again."""
    chosen = []
    for start, end in shot_bounds(cuts_result):
        length = end - start
        chosen.extend(sorted({start + int((k + 0.5) * length / per_shot) for k in range(per_shot)}))
    return chosen


def test_one_pass_picks_the_frames_and_pixels_of_the_old_two_pass_plan(media_dir):
    path = media_dir / "montage_6_shots.mp4"
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    cuts = detect_cuts(path)
    one_pass = list(iter_samples(path, SampleSpec(mode="scene", per_shot=3), long_side=160))
    samples = [sample for sample, _ in one_pass]
    assert [s.frame_index for s in samples] == _slice_centres(cuts, 3)  # every shot <= 128 frames
    assert samples == plan_samples(path, SampleSpec(mode="scene", per_shot=3), cut_result=cuts).samples
    assert [sum(1 for s in samples if s.shot == shot) for shot in range(6)] == [3] * 6
    for sample in samples:  # each pick lies inside its ground-truth shot
        starts = [0, *[round(t * truth["fps"]) for t in truth["cuts_s"]], truth["frames"]]
        assert starts[sample.shot] <= sample.frame_index < starts[sample.shot + 1]
    wanted = {s.frame_index for s in samples}
    two_pass = {f.index: f.rgb for f in iter_frames(path, long_side=160, wanted=wanted.__contains__)}
    assert all(np.array_equal(frame.rgb, two_pass[frame.index]) for _, frame in one_pass)


def test_one_pass_ingest_writes_the_same_files_and_rows_as_two_passes(tmp_path, media_dir, monkeypatch):
    path = media_dir / "montage_6_shots.mp4"
    options = ingest.VideoIngestOptions(mode="scene", per_shot=2, long_side=320, end_s=13.0)
    one = Workspace.open(tmp_path / "one")
    one_handle = ingest.ingest_video(one, path, options)
    one_items = one.items(one_handle)
    monkeypatch.setattr(ingest, "_single_pass", lambda *_: False)
    two = Workspace.open(tmp_path / "two")
    two_handle = ingest.ingest_video(two, path, options)
    two_items = two.items(two_handle)
    row = lambda item: (item.frame_index, item.time_s, item.shot, item.width, item.height)  # noqa: E731
    assert [row(i) for i in one_items] == [row(i) for i in two_items] and len(one_items) == 8
    assert [i.path.read_bytes() for i in one_items] == [i.path.read_bytes() for i in two_items]
    assert ingest.ingest_summary(one, one_handle).cuts == ingest.ingest_summary(two, two_handle).cuts


def test_a_cancelled_one_pass_scene_ingest_resumes_to_the_same_result(tmp_path, media_dir):
    path = media_dir / "montage_6_shots.mp4"
    options = ingest.VideoIngestOptions(mode="scene", per_shot=2, long_side=160)
    ws = Workspace.open(tmp_path / "resumed")
    stop_at = {"frames": 0}

    def stop_after_three_shots(done: int, total: int) -> None:
        stop_at["frames"] = done

    progress = CallbackProgress(stop_after_three_shots, should_stop=lambda: stop_at["frames"] >= 325)
    with pytest.raises(Cancelled):
        ingest.ingest_video(ws, path, options, progress)
    stored = sorted((tmp_path / "resumed" / "stages").rglob("*.jpg"))
    assert 4 <= len(stored) < 12
    inodes = {p.name: p.stat().st_ino for p in stored}
    handle = ingest.ingest_video(ws, path, options)
    clean = Workspace.open(tmp_path / "clean")
    clean_handle = ingest.ingest_video(clean, path, options)
    resumed_items, clean_items = ws.items(handle), clean.items(clean_handle)
    assert [(i.frame_index, i.shot) for i in resumed_items] == [(i.frame_index, i.shot) for i in clean_items]
    assert [i.path.read_bytes() for i in resumed_items] == [i.path.read_bytes() for i in clean_items]
    assert all(p.stat().st_ino == inodes[p.name] for p in stored), "stored frames were redone"


@pytest.mark.parametrize("capacity", [16, 82, 128])
def test_the_thinning_candidates_hold_every_pick_and_stay_bounded(capacity):
    """A 10-minute single shot at 25 fps: never more than ``capacity`` frames held."""
    candidates = ShotCandidates(capacity)
    checkpoints = {1, 2, 3, 7, capacity, capacity + 1, 2 * capacity + 1, 1000, 4321, 15_000}
    for position in range(15_000):
        candidates.add(position)  # any object stands for a decoded frame
        assert len(candidates.kept) <= capacity
        length = position + 1
        if length in checkpoints:
            for per_shot in (1, 3, 5):
                assert candidates.picks(per_shot) == shot_picks(length, per_shot, capacity)


def test_long_shots_snap_to_the_candidate_grid_within_half_a_stride():
    for length in (5, 128, 129, 300, 1390, 15_000):
        stride = grid_stride(length, 128)
        exact = [int((k + 0.5) * length / 3) for k in range(3)]
        picks = shot_picks(length, 3, 128)
        assert len(picks) == 3 and all(p % stride == 0 and 0 <= p < length for p in picks)
        assert all(abs(p - e) <= stride // 2 for p, e in zip(picks, exact, strict=True))
        assert stride == 1 or length > 128  # shots up to the capacity are not moved at all
    assert candidate_capacity(1280, 720) == 128 and candidate_capacity(1920, 1080) == 86
    assert candidate_capacity(3840, 2160) == 21


def test_a_long_single_shot_keeps_its_picks_near_the_slice_centres(media_dir):
    path = media_dir / "people_walking.mp4"  # 1,390 frames
    samples = list(iter_samples(path, SampleSpec(mode="scene", per_shot=3, end_s=60.0), long_side=96))
    cuts = detect_cuts(path, end_s=60.0)
    assert [s for s, _ in samples] == plan_samples(path, SampleSpec(mode="scene", per_shot=3, end_s=60.0),
                                                   cut_result=cuts).samples
    old = _slice_centres(cuts, 3)
    assert len(old) == len(samples)
    for (sample, _), centre in zip(samples, old, strict=True):
        assert abs(sample.frame_index - centre) <= 4  # 600 frames: stride 8


def test_the_cut_tracker_of_a_one_pass_run_forgets_old_scores_and_cuts_the_same():
    """A 10-minute video at 25 fps: the same cuts, and a bounded score history."""
    from lora_foundry.media.cuts import CutTracker, cuts_from_scores

    rng = np.random.default_rng(7)
    scores = rng.gamma(2.0, 2.0, 15_000)
    planted = list(range(300, 15_000, 437))
    scores[planted] = 60.0
    scores[[5000, 9001]] = 45.0  # two flashes: out again the next frame
    scores[[5001, 9002]] = 45.0
    skips = scores * 0.8
    skips[[5001, 9002]] = 1.0
    expected = cuts_from_scores(scores.tolist(), skips.tolist(), 25.0)
    tracker, longest = CutTracker(25.0, keep_scores=False), 0
    for score, skip in zip(scores, skips, strict=True):
        tracker.push_scores(score, skip)
        longest = max(longest, len(tracker.scores))
    tracker.finish()
    assert tracker.cuts == expected and set(planted) <= set(expected) and 5000 not in expected
    assert longest < 4096 + 100
