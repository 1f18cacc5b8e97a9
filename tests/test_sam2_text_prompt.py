"""Text prompts through CLIP pick characters among SAM 2's automatic instances.

The selection rule is checked with chosen vectors (so a wrong pick fails); the node path runs on
real frames of montage_6_shots.mp4 with the tiny random SAM 2 and the tiny random open_clip model
(loaded through LF CLIP Loader, as users do) and must record, on every cut-out, the phrase and the
similarity CLIP really gives that cut-out; changing the text must change the stage key.

A random SAM 2 scores every automatic mask far below the generator's quality thresholds, so the
node path lowers those two thresholds (the only change to the automatic path), and the area/border
rules are opened up through the node's own inputs.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sam2")
pytest.importorskip("open_clip")

from clip_standin import save_tiny_local_dir  # noqa: E402
from test_sam2_standin import SHRINK, save_standin  # noqa: E402

from lora_foundry.stages.layers.segment import make_instance  # noqa: E402
from lora_foundry.stages.layers.text_select import TextRule, choose_by_text, parse_phrases, select_by_text  # noqa: E402

PHRASES = "a rabbit, a person"
OPEN_RULES = {"min_area": 0.0, "max_area": 1.0, "max_border_sides": 4, "max_characters": 8}


def test_choose_by_text_keeps_each_phrases_best_and_near_ties():
    sims = np.array([[0.30, 0.10],   # best for phrase 0
                     [0.29, 0.05],   # within 0.02 of phrase 0's best: kept too
                     [0.25, 0.26],   # best for phrase 1 (not within margin for phrase 0)
                     [0.10, 0.12]])  # far from both bests: dropped
    chosen = choose_by_text(sims, TextRule(("p0", "p1"), margin=0.02, min_similarity=0.15))
    assert [(i, p) for i, p, _ in chosen] == [(0, 0), (1, 0), (2, 1)]
    assert chosen[0][2] == pytest.approx(0.30)
    strict = choose_by_text(sims, TextRule(("p0", "p1"), margin=0.0, min_similarity=0.27))
    assert [(i, p) for i, p, _ in strict] == [(0, 0)]
    wide = choose_by_text(sims, TextRule(("p0", "p1"), margin=0.06, min_similarity=0.15))
    assert [(i, p) for i, p, _ in wide] == [(0, 0), (1, 0), (2, 1)]  # eligible for both: its better phrase
    assert choose_by_text(np.zeros((0, 2)), TextRule(("p0", "p1"))) == []
    assert parse_phrases(" a rabbit,, a  person ,a rabbit\nsky ") == ("a rabbit", "a person", "sky")


def _mean_colour_embedder(pictures):
    """Fake CLIP: a picture's vector is its mean colour, normalised (so pixels decide the match)."""
    rows = np.array([np.asarray(p, np.float64).reshape(-1, 3).mean(axis=0) for p in pictures])
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_select_by_text_picks_the_instance_whose_pixels_match(real_frames):
    image = real_frames[0].copy()
    h, w = image.shape[:2]
    red, blue, plain = (np.zeros((h, w), bool) for _ in range(3))
    red[10:60, 10:60], blue[10:60, 100:150], plain[h - 60:h - 10, w - 60:w - 10] = True, True, True
    image[red], image[blue] = (220, 10, 10), (10, 10, 220)
    instances = [make_instance(m, 0.9, "auto") for m in (plain, blue, red)]
    phrases = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # "red thing" ~ red, "blue thing" ~ blue
    rule = TextRule(("red thing", "blue thing"), margin=0.02, min_similarity=0.15)
    chosen = select_by_text(image, instances, (255, 255, 255), rule, _mean_colour_embedder, phrases)
    by_label = {inst.label: inst for inst in chosen}
    assert len(chosen) == 2 and set(by_label) == {"red thing", "blue thing"}
    assert by_label["red thing"].box == instances[2].box and np.array_equal(by_label["red thing"].mask, red)
    assert by_label["blue thing"].box == instances[1].box and by_label["blue thing"].label_score > 0.99
    loose = select_by_text(image, instances, (255, 255, 255), TextRule(rule.phrases, 2.0, -1.0),
                           _mean_colour_embedder, phrases)
    assert len(loose) == 3  # a margin wider than any gap keeps the real-pixel instance too
    assert select_by_text(image, instances, (255, 255, 255), TextRule(rule.phrases, 2.0, 1.01),
                          _mean_colour_embedder, phrases) == []


@pytest.fixture(scope="module")
def real_frames(media_dir):
    """Three frames of different shots, decoded with PyAV at a quarter of 720p."""
    import av

    frames = []
    with av.open(str(media_dir / "montage_6_shots.mp4")) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % 90 == 0:
                frames.append(frame.to_ndarray(format="rgb24", width=320, height=180))
            if len(frames) == 3:
                break
    return frames


@pytest.fixture()
def rig(pack, media_dir, output_root, tmp_path, monkeypatch):
    """Frames loaded by the node, stand-in SAM 2, stand-in CLIP through LF CLIP Loader."""
    from lora_foundry.models.sam2_model import load_sam2

    monkeypatch.setenv("LORA_FOUNDRY_MODELS", str(tmp_path / "models"))
    monkeypatch.chdir(tmp_path)
    save_tiny_local_dir(tmp_path / "models" / "open_clip" / "tiny-clip")
    clip = pack.nodes.loaders.CLIPLoader().load("tiny-clip/", "auto", "cpu")[0]
    split, split_stage = pack.nodes.layers.split, pack.nodes.layers.split_stage
    path = save_standin(tmp_path / "sam2")
    sam = pack.lora_foundry.models.handle.ModelHandle(load_sam2(path, "cpu", hydra_overrides=SHRINK), "cpu", "standin-sam2", "sam2")
    real_generator = split.make_generator
    monkeypatch.setattr(split, "make_generator", lambda model, points_per_side: real_generator(
        model, points_per_side=points_per_side, pred_iou_thresh=0.0, stability_score_thresh=0.0))
    frames, _ = pack.nodes.frames.LoadVideoFrames().load(
        str(media_dir / "montage_6_shots.mp4"), "textprompt", mode="interval", interval_s=3.0, per_shot=1,
        start_s=0.0, end_s=0.0, max_frames=3, long_side=256, frame_format="png")
    return SimpleNamespace(pack=pack, split=split, split_stage=split_stage, clip=clip, sam=sam, frames=frames)


def test_node_writes_cutouts_labelled_with_the_phrase_clip_prefers(rig):
    from PIL import Image

    from lora_foundry.models.clip_model import embed_pil_batch, embed_texts

    layers = rig.pack.nodes.layers
    with pytest.raises(ValueError, match="clip_model"):  # text without CLIP fails before any SAM 2 work
        layers.SAM2LayerSplit().split(rig.frames, rig.sam, "auto", "", 2, 0.0, 1.0, 4, 8, 0, "#FFFFFF",
                                      text_prompt=PHRASES)
    cutouts, backgrounds, preview = layers.SAM2LayerSplit().split(
        rig.frames, rig.sam, "auto", "", 2, 0.0, 1.0, 4, 8, 0, "#FFFFFF", clip_model=rig.clip,
        text_prompt=PHRASES, text_margin=0.02, text_min_similarity=-1.0)
    ws = layers.Workspace.from_handle(cutouts)
    with ws:
        items = ws.items(cutouts)
        assert len(ws.items(backgrounds)) == 3 and preview.shape[-1] == 3
        assert items, "every frame's best instance clears text_min_similarity -1"
        matches = ws.annotations(cutouts, "text_match")
        similarities = ws.annotations(cutouts, "text_similarity")
        tags = ws.annotations(cutouts, "tags")
        phrase_vectors = embed_texts(rig.clip, ["a rabbit", "a person"])
        for item in items:
            with Image.open(item.path) as picture:  # margin 0: the file is exactly what CLIP saw
                seen = embed_pil_batch(rig.clip, [picture.convert("RGB")])[0]
            sims = phrase_vectors @ seen
            best = int(np.argmax(sims))
            assert matches[item.id] == ["a rabbit", "a person"][best]
            assert similarities[item.id] == pytest.approx(float(sims[best]), abs=2e-3)
            assert tags[item.id] == [matches[item.id]]
            assert item.meta["by"] == "text" and item.meta["text_match"] == matches[item.id]


def test_text_and_clip_identity_are_in_the_stage_key(rig):
    split, split_stage = rig.split, rig.split_stage
    ws = rig.pack.nodes.layers.Workspace.from_handle(rig.frames)
    with ws:
        with ws.stage("test_first_frame", 1, {"count": 1}, inputs=[rig.frames]) as st:
            if not st.complete:
                st.emit_all([ws.items(rig.frames)[0].id])
            one = st.handle
        rules = rig.pack.nodes.layers.CharacterRules(**OPEN_RULES)
        rabbit = split.SplitOptions(mode="automatic", points_per_side=2, rules=rules, margin=0,
                                     text_prompt="a rabbit", text_min_similarity=-1.0)
        person = split.SplitOptions(**{**rabbit.__dict__, "text_prompt": "a person"})
        first = split_stage.split_layers(ws, one, rig.sam, rabbit, clip=rig.clip)
        second = split_stage.split_layers(ws, one, rig.sam, person, clip=rig.clip)
        again = split_stage.split_layers(ws, one, rig.sam, rabbit, clip=rig.clip)
        assert first.stage_key != second.stage_key and again.stage_key == first.stage_key
        labels = {item.meta.get("text_match") for item in ws.items(second) if item.kind == "cutout"}
        assert labels <= {"a person"}
    other_clip = SimpleNamespace(identity="another-clip")
    assert rabbit.key_params(rig.clip) != rabbit.key_params(other_clip)
    plain = split.SplitOptions(mode="automatic", rules=rules)
    assert "text" not in plain.key_params(rig.clip)  # no text: keys of earlier results unchanged
    assert plain.key_params(rig.clip) == plain.key_params(None)
    prompted = split.SplitOptions(prompts='[{"box": [0, 0, 10, 10]}]', text_prompt="a rabbit")
    assert "text" not in prompted.key_params(rig.clip)  # boxes given: the text is not used


def test_a_text_prompt_without_a_clip_model_is_refused_before_any_work():
    from lora_foundry.stages.layers import split

    options = split.SplitOptions(text_prompt="a rabbit")
    with pytest.raises(ValueError, match="text_prompt needs a CLIP model"):
        options.validate(clip=None)
    split.SplitOptions(text_prompt="a rabbit", prompts='[{"box": [0, 0, 4, 4]}]').validate()  # boxes win
    split.SplitOptions(text_prompt="a rabbit").validate(clip=object())
