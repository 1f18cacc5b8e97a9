"""Shot-true clips: never across a cut, each model's frame rule and rate, resampled by pts, resumable.

Oracles: the bundled montage's documented cuts (lora_foundry/data/README.md: 4, 8, 12, 15, 18 s
at 25 fps), and generated footage whose frames carry their own index as a barcode, with planted
shot lengths and a variable frame rate; the clips are decoded back and their frames read.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from clip_media import decode_clip, make_video, read_barcode, shot_of_index
from holds import hold_code, kill_when_held

from lora_foundry import names
from lora_foundry.media import video
from lora_foundry.stages.clips.cut_stage import cut_clips_stage
from lora_foundry.stages.clips.rules import MODEL_RULES, ClipOptions, ShotSpan, plan_shot, rule_for
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_summary, ingest_video
from lora_foundry.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
MONTAGE = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"
MONTAGE_CUTS = [100, 200, 300, 375, 450]  # documented: 4, 8, 12, 15, 18 s at 25 fps
GENERATED_SHOTS = [150, 20, 420, 90, 100]  # 5 s, 0.7 s (too short), 14 s (split), 6 s slow, 3.3 s
SLOW_SHOT = 3


def _grey_small(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (64, 36), interpolation=cv2.INTER_AREA).astype(np.int16)


def _clips(ws: Workspace, handle) -> list:
    return [item for item in ws.items(handle) if item.kind == names.KIND_CLIP]


@pytest.fixture(scope="module")
def montage_ws(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("montage") / "ws")
    return ws, ingest_video(ws, MONTAGE, VideoIngestOptions(mode="scene")), _thumb_source(MONTAGE)


@pytest.mark.parametrize("model", sorted(MODEL_RULES))
def test_montage_clips_stay_in_one_documented_shot_with_the_models_frames_and_rate(montage_ws, model):
    ws, frames, source = montage_ws
    rule = rule_for(model)
    clips = _clips(ws, cut_clips_stage(ws, frames, ClipOptions(model=model, preset="ultrafast")))
    assert {clip.shot for clip in clips} == set(range(6))
    for clip in clips:
        pictures, fps, declared, codec = decode_clip(clip.path)
        assert codec == "h264" and fps == rule.fps and len(pictures) == declared
        assert rule.valid(len(pictures)) and 2.0 <= len(pictures) / fps <= 5.0
        # nearest source frame within 1.5 s of the clip (shots 2 and 6 are the same camera, far apart)
        start = round((clip.meta[names.META_CLIP]["start_s"] - 1.5) * 25)
        low, high = max(0, start), min(len(source), start + round((len(pictures) / fps + 3.0) * 25))
        matched = [low + int(np.abs(source[low:high] - _grey_small(p)[None]).mean(axis=(1, 2)).argmin())
                   for p in pictures]
        shots = {int(np.searchsorted(MONTAGE_CUTS, index, side="right")) for index in matched}
        assert len(shots) == 1, f"{clip.relpath} crosses a cut: source frames {matched}"


def _thumb_source(path: Path) -> np.ndarray:
    return np.stack([_grey_small(f.rgb) for f in video.iter_frames(path)])


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    path = folder / "film.mp4"
    times = make_video(path, GENERATED_SHOTS, slow_shots=frozenset({SLOW_SHOT}))
    ws = Workspace.open(folder / "ws")
    return path, times, ws, ingest_video(ws, path, VideoIngestOptions(mode="scene"))


@pytest.mark.parametrize("model", ["wan", "hunyuan_video"])
def test_generated_film_clips_use_the_frames_nearest_each_output_time_by_pts(generated, model):
    path, times, ws, frames = generated
    planted_cuts = list(np.cumsum(GENERATED_SHOTS)[:-1])
    assert list(ingest_summary(ws, frames).cuts) == planted_cuts
    rule = rule_for(model)
    handle = cut_clips_stage(ws, frames, ClipOptions(model=model, preset="ultrafast"))
    clips = _clips(ws, handle)
    assert 1 not in {clip.shot for clip in clips}, "the 0.7 s shot is shorter than any clip"
    assert 1 in ws.stage_info(handle)[names.INFO_CLIP_PLAN]["short_shots"]
    assert sum(clip.shot == 2 for clip in clips) >= 2, "the 14 s shot is split into several clips"
    assert SLOW_SHOT in {clip.shot for clip in clips}
    crop_top = (180 - clips[0].height) // 2
    for clip in clips:
        pictures, fps, _, _ = decode_clip(clip.path)
        start = clip.meta[names.META_CLIP]["start_s"]
        assert fps == rule.fps and rule.valid(len(pictures))
        read = [read_barcode(p, crop_top) for p in pictures]
        assert {shot_of_index(i, GENERATED_SHOTS) for i in read} == {clip.shot}
        for k, index in enumerate(read):
            ideal = start + k / rule.fps
            nearest = min(range(len(times)), key=lambda i: abs(times[i] - ideal))
            assert abs(times[index] - ideal) <= abs(times[nearest] - ideal) + 1e-6, (
                f"{clip.relpath} frame {k}: source {index} at {times[index]:.3f} s, nearest is {nearest}")


def test_cogvideox_takes_its_49_frame_clip_when_the_window_allows_six_seconds():
    """diffusers' CogVideoX: conditioned on num_seconds * fps + 1 = 6 * 8 + 1 frames."""
    span = ShotSpan(0, 0, 299, 0.0, 10.0, 1 / 30, 9.9)
    plans = plan_shot(span, rule_for("cogvideox"), ClipOptions(model="cogvideox", max_s=6.2), 30.0)
    assert [plan.frames for plan in plans] == [49]


def test_an_impossible_window_is_refused_before_any_work():
    with pytest.raises(ValueError, match="no hunyuan_video clip fits"):
        ClipOptions(model="hunyuan_video", min_s=3.0, max_s=4.0).validate()


CHILD = r"""
import sys
from pathlib import Path
from lora_foundry.workspace import Workspace
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video
from lora_foundry.stages.clips.cut_stage import cut_clips_stage
from lora_foundry.stages.clips.rules import ClipOptions

ws = Workspace.open(Path(sys.argv[1]))
frames = ingest_video(ws, Path(sys.argv[2]), VideoIngestOptions(mode="scene"))
cut_clips_stage(ws, frames, ClipOptions(model="wan", preset="ultrafast"))
"""


def _clip_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "stages").rglob("shot*") if not p.name.startswith(".tmp-")}


def _cut(root: Path) -> list:
    ws = Workspace.open(root)
    frames = ingest_video(ws, MONTAGE, VideoIngestOptions(mode="scene"))
    return _clips(ws, cut_clips_stage(ws, frames, ClipOptions(model="wan", preset="ultrafast")))


def test_kill_9_mid_clip_resumes_to_byte_identical_clips(tmp_path):
    """The child is held inside the third clip (its first two are 61 frames each: the 143rd frame
    written), then killed: the clip in flight is a temporary file, never a finished-looking one."""
    killed = tmp_path / "killed"
    ingest_video(Workspace.open(killed), MONTAGE, VideoIngestOptions(mode="scene"))  # the shots, before
    marker = tmp_path / "held"
    code = hold_code("lora_foundry.media.video_writer:Mp4Writer.write_yuv", 2 * 61 + 20, marker) + CHILD
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    kill_when_held([sys.executable, "-c", code, str(killed), str(MONTAGE)], marker, env)
    partial = _clip_files(killed)
    assert sorted(n for n in partial if n.endswith(".mp4")) == ["shot0000_00.mp4", "shot0001_00.mp4"]
    assert len(list(killed.rglob(".tmp-*.mp4"))) == 1, "the third clip was in flight"
    resumed = _cut(killed)
    clean = _cut(tmp_path / "clean")
    assert [c.path.name for c in resumed] == [c.path.name for c in clean] and len(clean) == 6
    assert _clip_files(killed) == _clip_files(tmp_path / "clean")
    assert all(partial[name] == data for name, data in _clip_files(killed).items() if name in partial)
    assert not list(killed.rglob(".tmp-*"))


def test_generated_source_keeps_its_declared_variable_rate(tmp_path):
    times = make_video(tmp_path / "v.mp4", [10, 10], fps=Fraction(24), slow_shots=frozenset({1}))
    assert video.frame_times(tmp_path / "v.mp4") == pytest.approx(times)


def test_a_selection_of_frames_gets_only_the_clips_its_frames_belong_to(montage_ws):
    """A cluster (here planted: the sampled frames of shots 1 and 3) owns the clips its frames are in."""
    ws, frames, _ = montage_ws
    chosen = [item.id for item in ws.items(frames) if item.shot in (1, 3)]
    with ws.stage("planted_cluster", 1, {"shots": [1, 3]}, [frames]) as st:
        st.emit_all(chosen)
    clips = _clips(ws, cut_clips_stage(ws, st.handle, ClipOptions(model="wan", preset="ultrafast")))
    assert sorted(clip.shot for clip in clips) == [1, 3]


def test_clips_cut_after_a_seek_into_variable_rate_footage_still_use_their_shot(generated):
    """Only the last two shots are selected, so decoding starts with a seek far into the film, past a
    half-rate shot: frame numbers guessed from time and the average rate would be off there."""
    path, times, ws, frames = generated
    chosen = [item.id for item in ws.items(frames) if item.shot in (SLOW_SHOT, SLOW_SHOT + 1)]
    with ws.stage("planted_late_shots", 1, {}, [frames]) as st:
        st.emit_all(chosen)
    clips = _clips(ws, cut_clips_stage(ws, st.handle, ClipOptions(model="wan", preset="ultrafast")))
    assert sorted(clip.shot for clip in clips) == [SLOW_SHOT, SLOW_SHOT + 1]
    crop_top = (180 - clips[0].height) // 2
    for clip in clips:
        pictures, _, _, _ = decode_clip(clip.path)
        start = clip.meta[names.META_CLIP]["start_s"]
        read = [read_barcode(p, crop_top) for p in pictures]
        assert {shot_of_index(i, GENERATED_SHOTS) for i in read} == {clip.shot}
        for k, index in enumerate(read):
            ideal = start + k / 16.0
            best = min(abs(t - ideal) for t in times)
            assert abs(times[index] - ideal) <= best + 1e-6, f"{clip.relpath} frame {k}: source {index}"
