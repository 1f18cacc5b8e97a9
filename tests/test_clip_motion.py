"""Camera motion from frames, on planted ground truth: a camera window moved over a textured plate
(pans, tilts, zooms, shake, stills, and a still camera with something crossing the picture); clip
captions from planted pose/setting tags and planted camera moves."""

from __future__ import annotations

import numpy as np
import pytest
from clip_media import camera_window, make_camera_video, textured_plate

from lora_foundry import names
from lora_foundry.stages.clips.caption_stage import caption_clips, check_template, fill
from lora_foundry.stages.clips.cut_stage import cut_clips_stage
from lora_foundry.stages.clips.filter_stage import ClipFilterOptions, filter_clips
from lora_foundry.stages.clips.motion import camera_motion
from lora_foundry.stages.clips.rules import ClipOptions
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_summary, ingest_video
from lora_foundry.workspace import Workspace

WIDTH, HEIGHT, FRAMES = 320, 180, 40


@pytest.fixture(scope="module")
def plate():
    return textured_plate()


def _window(plate, cx: float, cy: float, scale: float = 1.0) -> np.ndarray:
    return camera_window(plate, cx, cy, scale, (WIDTH, HEIGHT))


def _shot(plate, path):
    return [_window(plate, *path(k)) for k in range(FRAMES)]


PLANTED = {
    "static": lambda k: (900, 600),
    "pan right": lambda k: (700 + 8 * k, 600),  # the camera travels right: the picture moves left
    "pan left": lambda k: (1100 - 8 * k, 600),
    "tilt down": lambda k: (900, 450 + 6 * k),
    "tilt up": lambda k: (900, 750 - 6 * k),
    "zoom in": lambda k: (900, 600, 1.0 - 0.012 * k),  # the camera sees less and less: things grow
    "zoom out": lambda k: (900, 600, 0.6 + 0.012 * k),
}


@pytest.mark.parametrize("label", sorted(PLANTED))
def test_planted_camera_moves_are_named(plate, label):
    motion = camera_motion(_shot(plate, PLANTED[label]))
    assert motion.label == label, motion


def test_shake_without_direction_is_handheld(plate):
    rng = np.random.default_rng(3)
    offsets = rng.normal(0, 4.0, (FRAMES, 2))
    motion = camera_motion(_shot(plate, lambda k: (900 + offsets[k, 0], 600 + offsets[k, 1])))
    assert motion.label == "handheld", motion
    assert motion.phrase == "handheld camera"


def test_something_crossing_a_still_camera_is_not_camera_motion(plate):
    frames = _shot(plate, PLANTED["static"])
    for k, frame in enumerate(frames):  # a flat object a quarter of the width crosses the picture
        left = 10 + 6 * k
        frame[30:150, left:left + 80] = (200, 40, 40)
        frame[60:70, left + 10:left + 30] = (20, 20, 220)
    assert camera_motion(frames).label == "static"


def _tag_frames(ws, frames, tags_of):
    """A stage that tags the ingest's frames as a pose/WD14 tagger would (planted tags)."""
    items = ws.items(frames)
    with ws.stage("planted_tags", 1, {}, [frames]) as st:
        st.emit_all([i.id for i in items], {i.id: {names.TAGS: tags_of(i)} for i in items})
    return st.handle


def test_clip_captions_bind_the_trigger_and_say_action_turn_setting_and_camera(tmp_path):
    video_path = tmp_path / "film.mp4"
    make_camera_video(video_path, [PLANTED["pan right"], PLANTED["static"], PLANTED["zoom in"]], 72)
    ws = Workspace.open(tmp_path / "ws")
    frames = ingest_video(ws, video_path, VideoIngestOptions(mode="interval", interval_s=0.25))
    assert len(ingest_summary(ws, frames).cuts) == 2

    def tags_of(item):
        view = "side view" if item.time_s % 3.0 < 1.5 else "front view"
        return ["walking", view, "park", "1girl"] if item.shot == 0 else ["standing", "front view", "street"]

    tagged = _tag_frames(ws, frames, tags_of)
    clips = cut_clips_stage(ws, frames, ClipOptions(model="wan", preset="ultrafast"))
    captioned = caption_clips(ws, clips, "ohwx", "woman", tagged_frames=tagged)
    captions = ws.annotations(captioned, names.CAPTION)
    by_shot = {item.shot: captions[item.id] for item in ws.items(captioned)}
    assert by_shot[0] == "ohwx woman, walking, turns to the camera, park, 1girl, camera pans right"
    assert by_shot[1] == "ohwx woman, standing, front view, street, static camera"
    assert by_shot[2] == "ohwx woman, standing, front view, street, camera zooms in"


def test_a_caption_template_fills_known_fields_only_and_keeps_the_head():
    with pytest.raises(ValueError, match="only"):
        check_template("{head}, {head.__class__}")
    with pytest.raises(ValueError, match="has no {head}"):
        check_template("{action}, {camera}")
    assert fill("{camera}; {head}, {tags}", {"head": "ohwx", "camera": "static camera", "tags": ""}) == \
        "static camera; ohwx"


def test_clip_filters_drop_static_dark_and_repeated_clips_and_say_why(tmp_path):
    video_path = tmp_path / "film.mp4"
    pan = PLANTED["pan right"]
    make_camera_video(video_path, [(pan, 1, 0.5, 0), (PLANTED["static"], 2, 0.5, 120), (pan, 3, 0.05, 0),
                                   (PLANTED["pan left"], 4, 0.5, 180), (pan, 1, 0.5, 0)], 72)
    ws = Workspace.open(tmp_path / "ws")
    frames = ingest_video(ws, video_path, VideoIngestOptions(mode="scene"))
    assert len(ingest_summary(ws, frames).cuts) == 4
    clips = cut_clips_stage(ws, frames, ClipOptions(model="wan", preset="ultrafast"))
    kept = filter_clips(ws, clips, ClipFilterOptions())
    assert sorted(item.shot for item in ws.items(kept)) == [0, 3]
    dropped = {ws.get_items([i])[i].shot: why for i, why in ws.annotations(kept, names.DROPPED).items()}
    assert dropped[1].startswith("static") and dropped[2].startswith("too dark")
    assert dropped[4].startswith("near-duplicate of clip 0")
