"""Layer split and inpainting on real footage with stand-in weights: the plumbing users rely on.

20 frames of montage_6_shots.mp4 (one a second, all six shots) go through SAM 2 layer split (box
prompts, so a random-weight model still yields instances) and LaMa inpainting, each interrupted
half-way and resumed. Asserted: each cut-out's alpha is exactly its instance mask; backgrounds
have the frame's size and carry the hole; inpainted pixels outside the dilated hole are the input;
a resumed run does not redo finished frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")

from test_lama_standin import save_lama_standin  # noqa: E402
from test_sam2_standin import SHRINK, save_standin  # noqa: E402

from lora_foundry.models.handle import ModelHandle  # noqa: E402
from lora_foundry.models.lama_model import load_lama  # noqa: E402
from lora_foundry.models.registry import model_identity  # noqa: E402
from lora_foundry.models.sam2_model import load_sam2  # noqa: E402
from lora_foundry.progress import Cancelled  # noqa: E402
from lora_foundry.stages.layers import inpaint_stage, split, split_stage  # noqa: E402
from lora_foundry.stages.layers.inpaint import InpaintSettings, dilate, lama_filler  # noqa: E402
from lora_foundry.stages.layers.segment import CharacterRules, Instance, make_instance, select_characters  # noqa: E402
from lora_foundry.workspace import Workspace  # noqa: E402

PROMPTS = '{"relative": true, "objects": [{"box": [0.30, 0.15, 0.60, 0.95]}, {"box": [0.05, 0.5, 0.25, 0.9]}]}'
FRAMES = 20


def read(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def montage(tmp_path_factory, media_dir):
    from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_video

    root = tmp_path_factory.mktemp("ws") / "montage"
    ws = Workspace.open(root)
    options = VideoIngestOptions(mode="interval", interval_s=1.0, max_frames=FRAMES)
    handle = ingest_video(ws, media_dir / "montage_6_shots.mp4", options)
    assert ws.count(handle) == FRAMES
    ws.close()
    return root, handle


@pytest.fixture(scope="module")
def sam(tmp_path_factory):
    path = save_standin(tmp_path_factory.mktemp("sam2"))
    model = load_sam2(path, "cpu", hydra_overrides=SHRINK)
    return ModelHandle(model, "cpu", model_identity(path), "sam2")


class StopAfter:
    """Progress that cancels once ``units`` units are done (as a user pressing cancel would)."""

    def __init__(self, units: int) -> None:
        self.units = units

    def update(self, done: int, total: int, preview: object = None) -> None:
        if done >= self.units:
            raise Cancelled(f"stopped at {done}/{total}")


def count_calls(monkeypatch, module, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_split_and_inpaint_twenty_frames_with_resume(montage, sam, tmp_path, monkeypatch):
    root, frames = montage
    ws = Workspace.open(root)
    options = split.SplitOptions(prompts=PROMPTS, mode="prompts", margin=8, plain_color="#00FF00")
    masks_by_frame: dict[int, list[Instance]] = {}
    original = split.segment_prompted

    def recording(predictor, image, objects, relative):
        found = original(predictor, image, objects, relative)
        masks_by_frame[int(image[..., 0].sum()) * 31 + int(image[..., 2].sum())] = found
        return found

    monkeypatch.setattr(split, "segment_prompted", recording)

    with pytest.raises(Cancelled):
        split_stage.split_layers(ws, frames, sam, options, StopAfter(7))
    first_items = {item.relpath: item.id for item in ws.get_items(range(1, 10_000)).values()
                   if item.kind in ("cutout", "background")}
    assert sum(1 for rel in first_items if rel.endswith("_background.png")) == 7
    reads = count_calls(monkeypatch, split_stage.images, "load_rgb")
    layered = split_stage.split_layers(ws, frames, sam, options)
    assert len(reads) == FRAMES - 7  # the 7 finished frames were not redone

    items = ws.items(layered)
    for rel, item_id in first_items.items():  # earlier results kept as they were
        assert any(item.relpath == rel and item.id == item_id for item in items)
    frames_by_id = {item.id: item for item in ws.items(frames)}
    backgrounds = [item for item in items if item.kind == "background"]
    cutouts = [item for item in items if item.kind == "cutout"]
    assert len(backgrounds) == FRAMES and {b.parent for b in backgrounds} == set(frames_by_id)
    assert cutouts, "box prompts on a random model should still give some instances"

    checked_masks = 0
    for background in backgrounds:
        frame = read(frames_by_id[background.parent].path)
        pixels = read(background.path)
        assert pixels.shape == (*frame.shape[:2], 4)  # background size equals the input size
        assert np.array_equal(pixels[..., :3], frame)
        key = int(frame[..., 0].sum()) * 31 + int(frame[..., 2].sum())
        instances = masks_by_frame.get(key)
        mine = sorted((c for c in cutouts if c.parent == background.parent), key=lambda c: c.meta["instance"])
        if instances is None:
            continue  # done in the interrupted run, before recording could see it twice
        assert len(mine) == len(instances)
        hole = np.zeros(frame.shape[:2], bool)
        for cutout, instance in zip(mine, instances, strict=True):
            rgba = read(cutout.path)
            x0, y0, x1, y1 = cutout.meta["crop_box"]
            assert rgba.shape == (y1 - y0, x1 - x0, 4)
            assert np.array_equal(rgba[..., 3] == 255, instance.mask[y0:y1, x0:x1])  # alpha IS the mask
            assert set(np.unique(rgba[..., 3])) <= {0, 255}
            assert instance.mask.sum() == instance.mask[y0:y1, x0:x1].sum()  # nothing cut off
            opaque = rgba[..., 3] == 255
            assert np.array_equal(rgba[..., :3][opaque], frame[y0:y1, x0:x1][opaque])
            assert (rgba[..., :3][~opaque] == (0, 255, 0)).all()
            hole |= instance.mask
            checked_masks += 1
        assert np.array_equal(pixels[..., 3] == 0, hole)
    assert checked_masks > 0

    lama = load_lama(save_lama_standin(tmp_path / "lama"), "cpu")
    settings = InpaintSettings(dilate_px=6)
    background_handle = split_stage.select_kinds(ws, layered, ["background"], "backgrounds")
    fill = lama_filler(lama, "cpu")
    with pytest.raises(Cancelled):
        inpaint_stage.inpaint_backgrounds(ws, background_handle, fill, "lama", "standin", settings, StopAfter(5))
    clean_handle = inpaint_stage.inpaint_backgrounds(ws, background_handle, fill, "lama", "standin", settings)
    clean = ws.items(clean_handle)
    assert len(clean) == FRAMES and all(item.kind == "clean_background" for item in clean)
    by_id = {item.id: item for item in backgrounds}
    filled_frames = 0
    for item in clean:
        source = read(by_id[item.parent].path)
        result = read(item.path)
        assert result.shape == source[..., :3].shape
        grown = dilate(source[..., 3] == 0, settings.dilate_px)
        assert np.array_equal(result[~grown], source[..., :3][~grown])  # outside the hole: the input
        filled_frames += int(grown.any() and not np.array_equal(result[grown], source[..., :3][grown]))
    assert filled_frames > 0
    ws.close()


def test_automatic_mode_runs_on_real_frames(montage, sam):
    root, frames = montage
    ws = Workspace.open(root)
    with ws.stage("test_first_frames", 1, {"count": 3}, inputs=[frames]) as st:
        if not st.complete:
            st.emit_all([item.id for item in ws.items(frames)[:3]])
        first_three = st.handle
    options = split.SplitOptions(mode="automatic", points_per_side=2)
    layered = split_stage.split_layers(ws, first_three, sam, options)
    items = ws.items(layered)
    assert sum(1 for item in items if item.kind == "background") == 3
    for item in items:  # whatever the random model found, cut-outs follow the rules
        if item.kind == "cutout":
            share = item.meta["area"] / (1280 * 720)
            assert CharacterRules().min_area <= share <= CharacterRules().max_area
    ws.close()


def _blob(shape, y0, y1, x0, x1):
    mask = np.zeros(shape, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_character_rules_on_synthetic_masks():
    shape = (100, 200)
    person = make_instance(_blob(shape, 20, 100, 80, 120), 0.9, "auto")  # touches the bottom only
    face = make_instance(_blob(shape, 22, 35, 90, 110), 0.95, "auto")  # part of the person
    floor = make_instance(_blob(shape, 70, 100, 0, 200), 0.9, "auto")  # touches 3 edges
    speck = make_instance(_blob(shape, 5, 7, 5, 7), 0.99, "auto")  # too small
    sky = make_instance(_blob(shape, 0, 30, 0, 200), 0.9, "auto")  # 3 edges and large
    dog = make_instance(_blob(shape, 50, 80, 150, 190), 0.8, "auto")
    kept = select_characters([speck, floor, face, person, sky, dog], CharacterRules())
    assert [inst.box for inst in kept] == [person.box, dog.box]
    assert select_characters([person, dog], CharacterRules(max_characters=1)) == [person]
    assert select_characters([face, person], CharacterRules(max_contained=1.0)) == [person, face]


def test_masks_from_another_pack_round_trip_through_the_nodes(pack, montage, media_dir):
    """MASK in (one for all frames, two regions) -> cut-outs/backgrounds -> IMAGE/MASK out."""
    _, frames = montage
    layers = pack.nodes.layers
    width, height = json.loads((media_dir / "montage_6_shots.json").read_text())["size"]
    scale = width // 160
    mask = torch.zeros(1, 90, 160)  # another pack's mask at a lower resolution: resized to the frames
    mask[0, 10:60, 20:50] = 1.0
    mask[0, 40:80, 100:140] = 1.0
    cutouts, backgrounds = layers.MasksToLayers().convert(frames, mask, True, 0, "#000000")
    first, first_mask, total = layers.LayersToMasks().export(cutouts, 0, 1)
    second, second_mask, _ = layers.LayersToMasks().export(cutouts, 1, 1)
    assert total == 2 * FRAMES  # two regions in every frame, each its own cut-out
    assert first.shape == (1, 50 * scale, 30 * scale, 3) and second.shape == (1, 40 * scale, 40 * scale, 3)
    assert bool(first_mask.all()) and bool(second_mask.all())  # margin 0: the rectangle fills its crop
    images, masks, total = layers.LayersToMasks().export(backgrounds, 3, 4)
    assert total == FRAMES and images.shape == (4, height, width, 3)
    expected = torch.nn.functional.interpolate(mask[None], size=(height, width), mode="nearest")[0, 0] > 0.5
    assert all(torch.equal(m > 0.5, expected) for m in masks)  # a background's MASK is its hole
