"""General tags inside the pack: a WD14-layout stand-in (tests/wd14_standin.py) opened by the real
loader node, tagging real montage frames through LF Tag Frames, and feeding LF Build Captions."""

from __future__ import annotations

import numpy as np
import pytest
from wd14_standin import CHARACTER_ROWS, Row, expected_scores, save_wd14_standin

from lora_foundry.captions.vocabulary import normalise_tag
from lora_foundry.models import wd14_model
from lora_foundry.stages.tagging import wd14

V3 = "wd-vit-tagger-v3/model.onnx"
AMBIGUOUS = 0.1  # frames whose expected score is this close to the threshold are not asserted


@pytest.fixture()
def tagger(pack, models_root):
    save_wd14_standin(models_root / "wd14" / V3)
    (handle,) = pack.nodes.wd14.TaggerLoader().load(V3, "cpu")
    return handle


@pytest.fixture()
def montage(pack, media_dir, output_root):
    frames, _ = pack.nodes.frames.LoadVideoFrames().load(
        str(media_dir / "montage_6_shots.mp4"), "wd14", mode="interval", interval_s=1.0, per_shot=1, start_s=0.0,
        end_s=0.0, max_frames=0, long_side=320, frame_format="png")
    return frames


def tag_frames(pack, frames, tagger, threshold=0.35, mcut=False, character=0.85, rating="omit", exclude="",
               batch_size=4):
    result = pack.nodes.wd14.TagFrames().tag(frames, tagger, threshold, mcut, character, False, rating, exclude,
                                             batch_size)
    return result["result"][0], result


def reference_input(rgb: np.ndarray, size: int = 448) -> np.ndarray:
    """SmilingWolf's demo preprocessing, written out with Pillow alone: alpha over white, paste
    centred on a white square, bicubic resize, RGB -> BGR, float32 0..255."""
    from PIL import Image

    image = Image.fromarray(rgb)
    canvas = Image.new("RGBA", image.size, (255, 255, 255))
    canvas.alpha_composite(image.convert("RGBA"))
    image = canvas.convert("RGB")
    side = max(image.size)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(image, ((side - image.size[0]) // 2, (side - image.size[1]) // 2))
    if side != size:
        square = square.resize((size, size), Image.BICUBIC)
    return np.asarray(square, dtype=np.float32)[:, :, ::-1]


def test_preprocessing_is_the_reference_tensor_on_real_frames(media_dir):
    import av

    with av.open(str(media_dir / "montage_6_shots.mp4")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    portrait = np.ascontiguousarray(frame[:, 300:700])  # taller than wide: padded left and right
    cutout = np.dstack([frame, np.where(np.arange(frame.shape[1]) < 640, 255, 0).astype(np.uint8)[None].repeat(
        frame.shape[0], 0)])  # a binary-alpha cut-out: its right half transparent
    small = np.ascontiguousarray(frame[::4, ::4][:100, :448])  # no resize for the side that fits
    for image in (frame, portrait, cutout, small):
        ours = wd14.prepare(image, 448)
        assert ours.dtype == np.float32 and ours.shape == (448, 448, 3)
        assert np.array_equal(ours, reference_input(image))


def test_the_standin_loads_through_the_real_loader_in_both_layouts(pack, models_root):
    save_wd14_standin(models_root / "wd14" / "wd-v1-4-convnext-tagger-v2.onnx", layout="v2")
    save_wd14_standin(models_root / "wd14" / V3)
    loader = pack.nodes.wd14.TaggerLoader()
    (v2,) = loader.load("wd-v1-4-convnext-tagger-v2.onnx", "cpu")
    (v3,) = loader.load(V3, "cpu")
    assert (v2.details.input_name, v2.details.output_name) == ("input_1:0", "predictions_sigmoid")
    assert (v3.details.input_name, v3.details.output_name) == ("input", "output")
    assert v3.details.size == v2.details.size == 448 and v3.details.batch is None
    assert v3.name == "wd-vit-tagger-v3" and "wd-vit-tagger-v3" in v3.identity
    assert loader.load(V3, "cpu")[0] is v3  # cached
    assert V3 in pack.nodes.wd14.TaggerLoader.INPUT_TYPES()["required"]["model_name"][0]


def test_missing_files_say_where_to_put_them_and_nothing_downloads(pack, models_root):
    ModelMissingError = pack.lora_foundry.models.registry.ModelMissingError  # noqa: N806 (the pack's class)
    loader = pack.nodes.wd14.TaggerLoader()
    with pytest.raises(ModelMissingError, match="put wd-eva02-large-tagger-v3/model.onnx in") as error:
        loader.load("wd-eva02-large-tagger-v3/model.onnx", "cpu")
    assert "huggingface.co/SmilingWolf/wd-eva02-large-tagger-v3" in str(error.value)
    assert "Apache-2.0" in str(error.value)
    path = save_wd14_standin(models_root / "wd14" / V3)
    path.with_name("selected_tags.csv").unlink()
    with pytest.raises(ModelMissingError, match="put selected_tags.csv in .*wd-vit-tagger-v3") as error:
        loader.load(V3, "cpu")
    assert "resolve/main/selected_tags.csv" in str(error.value) and "Apache-2.0" in str(error.value)


@pytest.mark.parametrize("layout", [{"channels_first": True}, {"size": (448, 384)}, {"size": 0}],
                         ids=["nchw", "not square", "dynamic size"])
def test_a_model_whose_input_we_do_not_know_is_refused(tmp_path, layout):
    if layout.get("size") == 0:
        layout = {"size": ("height", "width")}
    path = save_wd14_standin(tmp_path / "odd.onnx", **layout)
    with pytest.raises(ValueError, match="odd.onnx: input"):
        wd14_model.load_wd14(path)


def test_csv_and_output_width_must_agree(tmp_path):
    path = save_wd14_standin(tmp_path / "short.onnx")
    save_wd14_standin(tmp_path / "other.onnx", rows=CHARACTER_ROWS[:3], csv_path=tmp_path / "short.csv")
    with pytest.raises(ValueError, match="outputs 16 scores but short.csv lists 3 tags"):
        wd14_model.load_wd14(path)


def test_tag_spelling_thresholds_and_mcut():
    assert [normalise_tag(t) for t in ("brown_hair", "^_^", "ganyu_\\(genshin_impact\\)", "o_o")] == [
        "brown hair", "^_^", "ganyu (genshin impact)", "o_o"]
    assert wd14.mcut_threshold(np.array([0.2, 0.9, 0.3, 0.85])) == pytest.approx(0.575)
    names = ["a_b", "c", "d", "chara_(x)", "general", "explicit", "chara_y"]
    groups = {"general": [0, 1, 2], "character": [3, 6], "rating": [4, 5]}
    scores = np.array([0.9, 0.85, 0.3, 0.5, 0.2, 0.7, 0.05])
    fixed = wd14.pick(scores, names, groups, wd14.TagRules(0.35, character_threshold=0.85))
    assert fixed.tags == ["a b", "c"] and fixed.rating == "explicit" and not fixed.characters
    cut = wd14.pick(scores, names, groups, wd14.TagRules(0.1, True, 0.85, True, "as tag", ("c",)))
    assert cut.tags == ["chara (x)", "a b", "rating explicit"] and cut.characters == ["chara (x)"]


def _bgr_means(path) -> tuple[float, float, float]:
    """The frame's B, G, R means once padded with white to a square (0..1), computed here."""
    from lora_foundry.media.images import load_rgb

    rgb = load_rgb(path).astype(np.float64)
    height, width = rgb.shape[:2]
    side = max(height, width)
    sums = rgb.reshape(-1, 3).sum(axis=0) + 255.0 * (side * side - height * width)
    red, green, blue = sums / (side * side) / 255.0
    return blue, green, red


def test_montage_frames_get_thresholded_normalised_tags_in_the_union(pack, montage, tagger):
    from lora_foundry.workspace import Workspace

    lit, _ = pack.nodes.tagging.TagLighting().tag(montage, 0.5)
    out, result = tag_frames(pack, lit, tagger, exclude="solo")
    with Workspace.from_handle(out) as ws:
        items = ws.items(out)
        union, lighting, wd = ws.tags(out), ws.annotations(out, "lighting_tags"), ws.annotations(out, "wd14_tags")
    assert len(items) >= 15
    checked = 0
    for item in items:
        tags = wd[item.id]["tags"]
        assert union[item.id] == lighting[item.id] + [t for t in tags if t not in lighting[item.id]]
        assert {"brown hair", "blue eyes", "^_^", "ganyu (genshin impact)"} <= set(tags)
        assert not {"brown_hair", "solo", "long hair", "hatsune miku"} & set(tags)
        assert wd[item.id]["characters"] == ["ganyu (genshin impact)"] and wd[item.id]["rating"] == "general"
        assert tags[0] == "ganyu (genshin impact)"  # characters first, then general by score
        for raw, score in expected_scores(_bgr_means(item.path)).items():
            if abs(score - 0.35) > AMBIGUOUS and raw in ("outdoors", "indoors", "jacket", "white_shirt"):
                assert (normalise_tag(raw) in tags) == (score > 0.35), (item.path.name, raw, score)
                checked += 1
    assert checked >= 3 * len(items)
    outdoors = [i for i in items if "outdoors" in wd[i.id]["tags"]]
    assert outdoors and len(outdoors) < len(items)  # only the street shot is bluer than red
    assert result["ui"]["images"] and "ganyu (genshin impact)" in result["ui"]["text"][0]


def test_fixed_batch_models_and_strict_thresholds(pack, models_root, montage):
    from lora_foundry.workspace import Workspace

    save_wd14_standin(models_root / "wd14" / "fixed.onnx", layout="v2", batch=1)
    (fixed,) = pack.nodes.wd14.TaggerLoader().load("fixed.onnx", "cpu")
    assert fixed.details.batch == 1
    out, _ = tag_frames(pack, montage, fixed, threshold=0.96, rating="as tag", batch_size=5)
    with Workspace.from_handle(out) as ws:
        tags = ws.tags(out)
    assert all("solo" not in t and "rating general" in t and "brown hair" in t for t in tags.values())


def test_cancelled_runs_resume_and_finished_runs_are_cached(pack, montage, tagger, monkeypatch):
    engine = pack.lora_foundry  # the modules the nodes use (the pack imported as ComfyUI does)
    CallbackProgress, Cancelled = engine.progress.CallbackProgress, engine.progress.Cancelled  # noqa: N806
    wd14_stage, Workspace = engine.stages.tagging.wd14_stage, engine.workspace.Workspace  # noqa: N806
    rules, real_scores, scored = engine.stages.tagging.wd14.TagRules(), engine.models.wd14_model.scores, []

    def counting(model, batch):
        scored.append(len(batch))
        return real_scores(model, batch)

    monkeypatch.setattr(engine.models.wd14_model, "scores", counting)
    with Workspace.from_handle(montage) as ws:
        total = ws.count(montage)
        calls: list[int] = []
        with pytest.raises(Cancelled):  # stops when reporting the third batch, after recording it
            wd14_stage.wd14_stage(ws, montage, tagger, rules, 4, CallbackProgress(
                lambda done, _total: calls.append(done), should_stop=lambda: len(calls) > 2))
        assert sum(scored) == 12 and calls == [0, 4, 8]
        resumed = wd14_stage.wd14_stage(ws, montage, tagger, rules, 4)
        assert sum(scored) == total  # the resumed run tagged only the rest
        first = ws.annotations(resumed, "wd14_tags")
        fresh = wd14_stage.wd14_stage(ws, montage, tagger, type(rules)(exclude=("jacket",)), 4)
        assert fresh != resumed and sum(scored) == 2 * total  # other rules: another stage
        again = wd14_stage.wd14_stage(ws, montage, tagger, rules, 4)
        assert again == resumed and sum(scored) == 2 * total  # the same rules: cached
        assert ws.annotations(again, "wd14_tags") == first and len(first) == total


def test_tagger_tags_bind_the_core_and_keep_what_varies_through_the_nodes(pack, montage, tagger):
    """Frames clustered by scene (weights-free pixel features), then tagged: brown hair, blue eyes
    (and cat ears, on every frame) bind to the trigger in every cluster; clothing and setting, which
    the stand-in emits by each frame's colour, stay in the captions."""
    from lora_foundry.workspace import Workspace

    clusters = pack.nodes.clusters
    embedded, _ = clusters.EmbedFrames().embed(montage, "pixels", 8)
    grouped = clusters.ClusterFrames().cluster(embedded, "scenes", 2, 0.97, 0.1, 0.5, "auto")["result"][0]
    tagged, _ = tag_frames(pack, grouped, tagger, exclude="solo, ganyu_(genshin_impact), ^_^")
    captioned, summary = pack.nodes.captions.BuildCaptions().build(tagged, "character", "alice", "woman", "SDXL",
                                                                    0.4)
    with Workspace.from_handle(captioned) as ws:
        captions, dropped = ws.annotations(captioned, "caption"), ws.annotations(captioned, "caption_dropped")
    assert len(captions) >= 15
    for item_id, caption in captions.items():
        words = [part.strip() for part in caption.split(",")]
        assert words[0] == "alice woman"
        assert not {"brown hair", "blue eyes", "cat ears"} & set(words), caption
        assert {"jacket", "white shirt"} & set(words) and {"outdoors", "indoors"} & set(words), caption
        assert dropped[item_id]["cat ears"] == "core" and dropped[item_id]["brown hair"] == "category"
    texts = " ".join(captions.values())
    assert all(tag in texts for tag in ("jacket", "white shirt", "outdoors", "indoors"))  # they vary
    core_lines = [line for line in summary.splitlines() if line.startswith("core tags (cluster")]
    assert len(core_lines) >= 2 and all("cat ears" in line for line in core_lines), summary


def test_scripted_rows_answer_by_colour(tmp_path):
    """The stand-in itself: fed BGR it says 'outdoors' on a blue image; fed RGB it would not."""
    path = save_wd14_standin(tmp_path / "m.onnx", rows=(Row("outdoors", blue=60.0, red=-60.0),))
    model = wd14_model.load_wd14(path)
    blue = np.zeros((64, 64, 3), np.uint8)
    blue[..., 2] = 255
    tensor = wd14.prepare(blue, 448)[None]
    assert wd14_model.scores(model, tensor)[0, 0] > 0.99
    assert wd14_model.scores(model, np.ascontiguousarray(tensor[..., ::-1]))[0, 0] < 0.01
