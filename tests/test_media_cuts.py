"""Shot detection and frame sampling on real footage with a known cut list."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from lora_foundry.media.cuts import detect_cuts, shot_of
from lora_foundry.media.sampling import SampleSpec, iter_samples, plan_samples
from lora_foundry.media.video import iter_frames
from lora_foundry.progress import CallbackProgress, Cancelled


@pytest.fixture(scope="module")
def montage(media_dir) -> tuple[Path, dict]:
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    return media_dir / "montage_6_shots.mp4", truth


@pytest.fixture(scope="module")
def montage_cuts(montage):
    return detect_cuts(montage[0])


def _truth_cut_frames(truth: dict) -> list[int]:
    return [round(t * truth["fps"]) for t in truth["cuts_s"]]


def test_finds_the_five_cuts_of_the_montage(montage, montage_cuts):
    _, truth = montage
    expected = _truth_cut_frames(truth)
    assert len(montage_cuts.cuts) == len(expected) == 5
    for found, wanted in zip(montage_cuts.cuts, expected, strict=True):
        assert abs(found - wanted) <= 1
    assert montage_cuts.frame_count == truth["frames"]


def test_scene_sampling_keeps_frames_from_all_six_shots(montage, montage_cuts):
    path, truth = montage
    plan = plan_samples(path, SampleSpec(mode="scene", per_shot=3), cut_result=montage_cuts)
    assert len(plan.cuts) == 5
    assert all(abs(a - b) <= 1 for a, b in zip(plan.cuts, _truth_cut_frames(truth), strict=True))
    shots = [s.shot for s in plan.samples]
    assert sorted(set(shots)) == list(range(6))
    assert all(shots.count(shot) == 3 for shot in range(6))
    # Each sample's time lies inside the true time span of its shot, away from the cuts.
    for sample in plan.samples:
        span = truth["shots"][sample.shot]
        assert span["start_s"] + 0.2 < sample.time_s < span["end_s"] - 0.2


def test_no_cuts_in_single_shot_footage_with_motion(media_dir):
    # People walking close to the camera make big frame differences, but there is no cut.
    assert detect_cuts(media_dir / "people_walking.mp4", end_s=80.0).cuts == []
    assert detect_cuts(media_dir / "big_buck_bunny_clip.mp4").cuts == []


def test_shot_of():
    cuts = [100, 200, 300]
    assert [shot_of(i, cuts) for i in (0, 99, 100, 199, 200, 300, 10_000)] == [0, 0, 1, 1, 2, 3, 3]
    assert shot_of(5, []) == 0


def test_interval_sampling_one_frame_per_second(montage, montage_cuts):
    plan = plan_samples(montage[0], SampleSpec(mode="interval", interval_s=1.0), cut_result=montage_cuts)
    assert [s.frame_index for s in plan.samples] == list(range(0, 525, 25))
    assert [s.shot for s in plan.samples][:6] == [0, 0, 0, 0, 1, 1]
    assert plan.samples[4].time_s == pytest.approx(4.0)


def test_max_frames_spreads_over_the_whole_video(montage, montage_cuts):
    plan = plan_samples(montage[0], SampleSpec(mode="all"), max_frames=10, cut_result=montage_cuts)
    indices = [s.frame_index for s in plan.samples]
    assert len(indices) == 10
    assert indices[0] == 0 and indices[-1] == 524
    assert len({s.shot for s in plan.samples}) == 6


def test_keyframes_mode(montage, montage_cuts):
    plan = plan_samples(montage[0], SampleSpec(mode="keyframes"), cut_result=montage_cuts)
    assert [s.frame_index for s in plan.samples] == montage[1]["keyframes"]
    cuts = _truth_cut_frames(montage[1])
    assert [s.shot for s in plan.samples] == [sum(s.frame_index >= cut for cut in cuts) for s in plan.samples]
    assert {s.shot for s in plan.samples} == set(range(6))


def test_time_range_indices_count_from_file_start(montage):
    plan = plan_samples(montage[0], SampleSpec(mode="scene", per_shot=1, start_s=5.0, end_s=16.0))
    assert len(plan.cuts) == 3
    assert all(abs(a - b) <= 1 for a, b in zip(plan.cuts, [200, 300, 375], strict=True))
    assert all(125 <= s.frame_index < 400 for s in plan.samples)
    assert len(plan.samples) == 4  # the rest of shot 1, shots 2 and 3, the start of shot 4


def test_bad_mode_is_refused(montage):
    with pytest.raises(ValueError, match="sampling mode 'every other' is not one of interval, scene, keyframes, all"):
        plan_samples(montage[0], SampleSpec(mode="every other"))


def test_progress_reports_and_cancel_stops(media_dir):
    seen: list[tuple[int, int]] = []
    detect_cuts(media_dir / "big_buck_bunny_clip.mp4",
                progress=CallbackProgress(lambda done, total: seen.append((done, total))))
    assert seen and seen[-1][0] == seen[-1][1]
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    calls = []

    def stop_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        detect_cuts(media_dir / "people_walking.mp4", progress=CallbackProgress(
            should_stop=stop_after_two))


def _write_clip(path: Path, levels: list[int]) -> Path:
    """A 64x48 clip whose frame i is a textured picture with grey level ``levels[i]``."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, (48, 64, 1), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for level in levels:
            pixels = np.clip(texture.astype(int) + level, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(pixels, 3, axis=2), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_a_flash_frame_and_a_too_short_shot_are_not_cuts(tmp_path):
    levels = [40] * 30 + [230] + [40] * 29 + [200] * 30 + [60] * 3 + [200] * 30
    result = detect_cuts(_write_clip(tmp_path / "flash.mp4", levels))
    # frame 30 is a single flash: no cut. 60 is a real cut. 90-92 is a 3-frame shot (< 0.5 s):
    # it is merged with a neighbour, so one cut remains there, not two.
    assert result.cuts[0] == 60
    assert len(result.cuts) == 2 and result.cuts[1] in (90, 93)


def test_one_pass_sampling_equals_the_two_pass_plan(montage, montage_cuts):
    path = montage[0]
    plan = plan_samples(path, SampleSpec(mode="interval", interval_s=1.0), cut_result=montage_cuts)
    stored = {0, 25, 150}  # frames an interrupted run already wrote
    one_pass = list(iter_samples(path, SampleSpec(mode="interval", interval_s=1.0), long_side=160,
                                 skip=stored.__contains__))
    expected = [s for s in plan.samples if s.frame_index not in stored]
    assert [sample for sample, _ in one_pass] == expected
    assert {s.shot for s, _ in one_pass} == set(range(6))
    frames = {frame.index: frame.rgb for _, frame in one_pass}
    for index in (100, 500):  # the same pixels as iter_frames gives (reached by a seek here)
        start = index / 25
        reference = next(iter_frames(path, start_s=start, end_s=start + 0.02, long_side=160))
        assert reference.index == index and np.array_equal(frames[index], reference.rgb)
    with pytest.raises(ValueError, match="plan_samples"):
        next(iter_samples(path, SampleSpec(mode="keyframes")))
