"""Tracking characters through a shot with SAM 2's video predictor, on real footage, with a stand-in.

The stand-in is the shrunk random SAM 2.1-tiny of test_sam2_standin with a shorter memory (3 mask
memories, 4 object pointers: the same code paths, fewer frames to reach them) and its
object-presence head biased to "present", so random weights still give non-empty tracked masks.
Asserted: our lazily loaded, trimmed tracking equals sam2's own ``init_state`` +
``propagate_in_video`` bit for bit while holding at most 2 frames and a fixed number of outputs;
the stage gives every frame its cut-outs and background with stable track numbers, alpha equal
to the tracked mask, never tracks across a cut, and resumes per shot to the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

from test_layers import StopAfter, read  # noqa: E402
from test_sam2_standin import SHRINK, STANDIN_CONFIG  # noqa: E402

from lora_foundry.models.handle import ModelHandle  # noqa: E402
from lora_foundry.models.registry import model_identity  # noqa: E402
from lora_foundry.models.sam2_model import load_sam2  # noqa: E402
from lora_foundry.progress import Cancelled  # noqa: E402
from lora_foundry.stages.layers import segment, split, track_stage, video_tracking  # noqa: E402
from lora_foundry.workspace import Workspace  # noqa: E402

SHORT_MEMORY = (*SHRINK, "++model.num_maskmem=3", "++model.max_obj_ptrs_in_encoder=4")
PROMPTS = '{"relative": true, "objects": [{"box": [0.30, 0.15, 0.60, 0.95]}, {"box": [0.05, 0.5, 0.25, 0.9]}]}'
CLIP_FRAMES = 14


def save_tracking_standin(folder: Path) -> Path:
    """A stand-in checkpoint in Meta's ``{"model": state_dict}`` layout, object head biased to present."""
    from sam2.build_sam import build_sam2_video_predictor

    torch.manual_seed(0)
    model = build_sam2_video_predictor(STANDIN_CONFIG, None, device="cpu", hydra_overrides_extra=list(SHORT_MEMORY))
    with torch.no_grad():
        model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sam2.1_hiera_tiny.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def tracker(tmp_path_factory):
    path = save_tracking_standin(tmp_path_factory.mktemp("sam2_track"))
    model = load_sam2(path, "cpu", hydra_overrides=SHORT_MEMORY)
    return ModelHandle(model, "cpu", model_identity(path), "sam2")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory, media_dir) -> Path:
    """The first CLIP_FRAMES frames of the montage as sam2's own loader wants them: 0.jpg, 1.jpg, ...
    (at 1280x720, the frame size the boxes below are drawn for)."""
    from PIL import Image

    from lora_foundry.media.images import resize_image
    from lora_foundry.media.video import iter_frames

    folder = tmp_path_factory.mktemp("clip")
    for frame in iter_frames(media_dir / "montage_6_shots.mp4", wanted=lambda i: i < CLIP_FRAMES):
        Image.fromarray(resize_image(frame.rgb, (720, 1280))).save(folder / f"{frame.index}.jpg", quality=95)
    return folder


def clip_paths(folder: Path) -> list[Path]:
    return [folder / f"{index}.jpg" for index in range(CLIP_FRAMES)]


def two_boxes(height: int = 720, width: int = 1280) -> list[np.ndarray]:
    first, second = np.zeros((height, width), bool), np.zeros((height, width), bool)
    first[100:600, 300:700] = True
    second[200:500, 800:1100] = True
    return [first, second]


def test_frames_are_read_as_sam2_reads_them(tracker, clip_folder):
    from sam2.utils.misc import load_video_frames

    theirs, height, width = load_video_frames(str(clip_folder), 1024, offload_video_to_cpu=True,
                                              compute_device=torch.device("cpu"))
    mine = video_tracking.ShotFrames(clip_paths(clip_folder), 1024)
    assert (mine.height, mine.width) == (height, width) == (720, 1280)
    assert len(mine) == len(theirs) == CLIP_FRAMES
    assert all(torch.equal(mine[index], theirs[index]) for index in (0, 5, CLIP_FRAMES - 1))
    assert mine.most_resident <= 2


def test_tracking_equals_sam2_own_and_state_stays_small(tracker, clip_folder):
    predictor = tracker.model
    stock_state = predictor.init_state(str(clip_folder))
    for obj_id, mask in enumerate(two_boxes()):
        predictor.add_new_mask(stock_state, frame_idx=0, obj_id=obj_id, mask=mask)
    stock = {index: logits[:, 0].clone() for index, _, logits in predictor.propagate_in_video(stock_state)}

    frames = video_tracking.ShotFrames(clip_paths(clip_folder), predictor.image_size)
    state = video_tracking.new_state(predictor, frames)
    assert state.keys() == stock_state.keys()  # still the layout sam2's init_state builds
    reach = video_tracking.memory_reach(predictor)
    assert reach == 3 and reach < CLIP_FRAMES - 2  # 4 object pointers: 3 frames back; trimming happens
    mine = {}
    for index, logits in video_tracking.track_logits(predictor, state, two_boxes()):
        mine[index] = logits.clone()
        assert all(len(out["non_cond_frame_outputs"]) <= reach + 1 for out in state["output_dict_per_obj"].values())
    assert mine.keys() == stock.keys() == set(range(CLIP_FRAMES))
    assert all(torch.equal(mine[index], stock[index]) for index in stock)  # bit for bit
    assert all((stock[index] > 0).any() for index in stock)  # the stand-in tracks something
    assert frames.loads == CLIP_FRAMES and frames.most_resident <= 2  # each frame read once, 2 at most held
    assert len(stock_state["output_dict_per_obj"][0]["non_cond_frame_outputs"]) == CLIP_FRAMES - 1


def test_a_frame_of_another_size_is_refused_by_name(tracker, clip_folder, tmp_path):
    from PIL import Image

    odd = tmp_path / "odd.png"
    Image.new("RGB", (640, 360)).save(odd)
    frames = video_tracking.ShotFrames([*clip_paths(clip_folder)[:2], odd], 1024)
    with pytest.raises(ValueError, match="odd.png is 640x360"):
        frames[2]


def test_a_model_that_cannot_track_is_refused(tmp_path):
    with pytest.raises(TypeError, match="LF SAM2 Loader"):
        video_tracking.check_tracker(torch.nn.Linear(1, 1))


@pytest.fixture(scope="module")
def two_shots(tmp_path_factory, media_dir):
    """12 frames two a second from 0 s: 8 in shot 1, 4 in shot 2 (the cut is at 4 s)."""
    from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video

    root = tmp_path_factory.mktemp("ws") / "montage"
    with Workspace.open(root) as ws:
        handle = ingest_video(ws, media_dir / "montage_6_shots.mp4",
                              VideoIngestOptions(mode="interval", interval_s=0.5, end_s=6.0))
        shots = [item.shot for item in ws.items(handle)]
    assert shots == [shots[0]] * 8 + [shots[8]] * 4 and shots[0] != shots[8]
    return root, handle


def test_tracked_layers_on_real_footage_resume_per_shot(tracker, two_shots, tmp_path, monkeypatch):
    root, frames = two_shots
    options = split.SplitOptions(prompts=PROMPTS, mode="prompts", margin=8, plain_color="#00FF00")
    tracked: dict[str, list[np.ndarray]] = {}  # frame file name -> the tracker's masks
    segmented: list[list[np.ndarray]] = []  # keyframe masks, in the order keyframes were segmented
    original_track, original_segment = track_stage.track_shot, split.segment_prompted

    def recording_track(predictor, paths, masks, *more):
        for index, found in original_track(predictor, paths, masks, *more):
            tracked[paths[index].name] = found
            yield index, found

    def recording_segment(predictor, image, objects, relative):
        found = original_segment(predictor, image, objects, relative)
        segmented.append([inst.mask for inst in found])
        return found

    monkeypatch.setattr(track_stage, "track_shot", recording_track)
    monkeypatch.setattr(split, "segment_prompted", recording_segment)
    with Workspace.open(root) as ws:
        with pytest.raises(Cancelled):
            track_stage.track_layers(ws, frames, tracker, options, StopAfter(10))  # in the second shot
        assert len(segmented) == 2
        result = track_stage.track_layers(ws, frames, tracker, options)
        assert len(segmented) == 3  # the finished first shot was kept, only the second redone
        items, frame_items = ws.items(result), ws.items(frames)

    backgrounds = [item for item in items if item.kind == "background"]
    cutouts = [item for item in items if item.kind == "cutout"]
    assert [b.parent for b in backgrounds] == [f.id for f in frame_items]  # every frame, in order
    keyframe_masks = {frame_items[0].id: segmented[0], frame_items[8].id: segmented[2]}
    for frame in frame_items:
        mine = sorted((c for c in cutouts if c.parent == frame.id), key=lambda c: c.meta["track"])
        assert [c.meta["track"] for c in mine] == [0, 1]  # the same two characters in every frame
        name = Path(frame.relpath).name
        masks = keyframe_masks.get(frame.id) or tracked[name]
        assert all(c.meta["by"] == ("prompt" if frame.id in keyframe_masks else "track") for c in mine)
        hole = np.zeros((frame.height, frame.width), bool)
        for cutout in mine:
            mask = masks[cutout.meta["track"]]
            x0, y0, x1, y1 = cutout.meta["crop_box"]
            assert np.array_equal(read(cutout.path)[..., 3] == 255, mask[y0:y1, x0:x1])  # alpha IS the mask
            assert cutout.shot == frame.shot
            hole |= mask
        background = read(next(b for b in backgrounds if b.parent == frame.id).path)
        assert np.array_equal(background[..., 3] == 0, hole)

    with Workspace.open(tmp_path / "again") as fresh:
        from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video

        again_frames = ingest_video(fresh, Path(frame_items[0].source),
                                    VideoIngestOptions(mode="interval", interval_s=0.5, end_s=6.0))
        checked = _count_tracker_checks(monkeypatch)
        uninterrupted = fresh.items(track_stage.track_layers(fresh, again_frames, tracker, options))
    assert len(checked) == 1  # the tracker is checked once for the run, not once per shot (2 shots here)
    assert len(items) == len(uninterrupted)
    assert all(Path(a.path).read_bytes() == Path(b.path).read_bytes() for a, b in zip(items, uninterrupted, strict=True))


def _count_tracker_checks(monkeypatch) -> list[str]:
    """Every look-up of the installed sam2's version (what ``check_tracker`` checks), on the real
    ``importlib.metadata.version``."""
    import importlib.metadata

    asked, real_version = [], importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: (asked.append(name) if name == "sam2" else None) or real_version(name))
    return asked


def test_shots_are_runs_of_one_source_and_shot():
    from lora_foundry.workspace.items import Item

    def item(number: int, source: str, shot: int | None) -> Item:
        return Item(number, "frame", Path(f"{number}.png"), f"{number}.png", None, source, number, None, shot, 8, 8)

    items = [item(1, "a", 0), item(2, "a", 0), item(3, "a", 1), item(4, "b", 1), item(5, "x", None),
             item(6, "x", None), item(7, "a", 0)]
    assert [[i.id for i in shot] for shot in track_stage.shots_in_order(items)] == [[1, 2], [3], [4], [5], [6], [7]]


def test_the_node_tracks_and_previews(pack, tracker, two_shots):
    _, frames = two_shots
    node = pack.nodes.layers.SAM2TrackShots()
    cutouts, backgrounds, preview = node.split(frames, tracker, "prompts", PROMPTS, 16, 0.01, 0.6, 2, 8, 8, "#FFFFFF")
    with Workspace.from_handle(cutouts) as ws:
        tracks = {(item.shot, item.meta["track"]) for item in ws.items(cutouts)}
        assert ws.count(backgrounds) == 12
    assert len(tracks) == 4  # two characters in each of two shots: numbers restart at a cut
    assert preview.shape[1:] == (256, 256, 3) and preview.shape[0] == 8


def test_characters_found_later_join_without_changing_the_others(tracker, clip_folder):
    """A character found on frame 6 is tracked from there on; the two tracked from the start get
    exactly the masks they get without it (sam2 1.1 tracks each object on its own)."""
    predictor = tracker.model
    newcomer = np.zeros((720, 1280), bool)
    newcomer[50:200, 1000:1200] = True
    asked: list[tuple[int, int]] = []

    def find_new(frame_idx: int, tracked: list[np.ndarray]) -> list[np.ndarray]:
        asked.append((frame_idx, len(tracked)))
        return [newcomer] if frame_idx == 6 else []

    plain = dict(video_tracking.track_shot(predictor, clip_paths(clip_folder), two_boxes()))
    joined = dict(video_tracking.track_shot(predictor, clip_paths(clip_folder), two_boxes(), find_new, every=3))
    assert asked == [(3, 2), (6, 2), (9, 3), (12, 3)]  # every 3rd frame, with what is tracked so far
    assert joined.keys() == plain.keys() == set(range(1, CLIP_FRAMES))
    assert all(len(joined[index]) == (3 if index >= 6 else 2) for index in joined)
    assert joined[6][2] is newcomer  # on the frame it was found, its mask is the finding
    assert all(joined[index][2].any() for index in range(7, CLIP_FRAMES))  # then it is tracked
    for index in plain:
        assert all(np.array_equal(a, b) for a, b in zip(plain[index], joined[index][:2], strict=True))


def test_overlap_decides_who_is_new():
    from lora_foundry.stages.layers.video_tracking import overlaps_any

    person = np.zeros((100, 100), bool)
    person[10:90, 20:60] = True
    face = np.zeros_like(person)
    face[12:25, 30:45] = True  # inside the person: a part, not a new character
    neighbour = np.zeros_like(person)
    neighbour[10:90, 55:95] = True  # touches the person a little: someone else
    assert overlaps_any(face, [person]) and overlaps_any(person, [face])
    assert not overlaps_any(neighbour, [person])
    assert not overlaps_any(neighbour, [np.zeros_like(person)])  # a lost (empty) track claims nothing


def test_lost_characters_are_found_again_up_to_the_limit(tracker, two_shots, monkeypatch):
    """With the presence head turned to "absent" every track is lost at once; redetection every
    3rd frame finds the character again as a new track, until max_characters tracks exist."""
    root, frames = two_shots
    head = tracker.model.sam_mask_decoder.pred_obj_score_head.layers[-1].bias
    options = split.SplitOptions(prompts=PROMPTS, mode="prompts", margin=0,
                                        rules=segment.CharacterRules(max_characters=3))
    monkeypatch.setattr(split, "segment_prompted", lambda predictor, image, objects, relative: [
        segment.make_instance(_blob(image.shape[:2]), 0.9, "prompt")])
    saved = head.detach().clone()
    try:
        with torch.no_grad():
            head.fill_(-20.0)
        with Workspace.open(root) as ws:
            result = track_stage.track_layers(ws, frames, tracker, options, redetect_every=3)
            found = [(item.parent, item.meta["track"], item.meta["by"]) for item in ws.items(result)
                     if item.kind == "cutout"]
            frame_ids = [item.id for item in ws.items(frames)]
    finally:
        with torch.no_grad():
            head.copy_(saved)
    first_shot, second_shot = frame_ids[:8], frame_ids[8:]
    assert found == [(first_shot[0], 0, "prompt"), (first_shot[3], 1, "prompt"), (first_shot[6], 2, "prompt"),
                     (second_shot[0], 0, "prompt"), (second_shot[3], 1, "prompt")]


def _blob(shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[shape[0] // 4: shape[0] * 3 // 4, shape[1] // 3: shape[1] * 2 // 3] = True
    return mask
