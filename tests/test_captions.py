"""Captions follow the binding rule: what a caption names stays promptable, what it omits binds."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from lora_foundry.captions.builder import CaptionSettings, build_captions, split_terms
from lora_foundry.captions.core_tags import core_tags, core_tags_by_group, tag_shares
from lora_foundry.captions.prompt_set import build_prompt_set
from lora_foundry.captions.render import CAPTION_ORDER, render_caption
from lora_foundry.captions.strategies import STRATEGIES, describe_templates, strategy_for
from lora_foundry.captions.tokens import count_tokens
from lora_foundry.captions.vocabulary import (
    CATEGORIES,
    category_of,
    normalise_tag,
    parse_tag_text,
    read_tag_folder,
)

VARIED = {
    "expression": ["smiling", "serious", "laughing", "surprised"],
    "view": ["front view", "three quarter view", "profile"],
    "clothing": ["red dress", "white shirt", "leather jacket", "hoodie"],
    "background": ["forest", "city", "beach", "white background"],
}


def character_set(n: int = 20, cat_ears_in: int = 10) -> dict[int, list[str]]:
    """A character whose tags all include brown hair and blue eyes, plus varied tags.

    "cat ears" (a tag the vocabulary does not place) is on the first ``cat_ears_in`` images.
    """
    rng = random.Random(3)
    tags = {}
    for i in range(n):
        varied = [rng.choice(options) for options in VARIED.values()]
        tags[i] = ["brown_hair", "blue_eyes", *varied] + (["cat_ears"] if i < cat_ears_in else [])
    return tags


def test_character_captions_leave_identity_out_and_keep_varied_tags():
    tags = character_set()
    result = build_captions(tags, CaptionSettings("character", "sks", "woman", count_tokens=False))
    for caption in result.captions:
        assert caption.text.startswith("sks woman, ")
        assert "brown hair" not in caption.text and "blue eyes" not in caption.text
        raw = [normalise_tag(t) for t in tags[caption.item]]
        for varied in raw[2:6]:
            assert varied in caption.kept, (varied, caption.text)
            assert varied in caption.text
        assert caption.dropped["brown hair"] == "category"


def test_moving_the_threshold_changes_what_is_dropped():
    tags = character_set(n=20, cat_ears_in=10)  # cat ears on 50% of the images
    low = build_captions(tags, CaptionSettings("character", "sks", "woman", threshold=0.4, count_tokens=False))
    high = build_captions(tags, CaptionSettings("character", "sks", "woman", threshold=0.6, count_tokens=False))
    assert low.captions[0].dropped.get("cat ears") == "core"
    assert "cat ears" not in low.captions[0].text
    assert "cat ears" in high.captions[0].kept and "cat ears" in high.captions[0].text
    # A varied tag never becomes core for a character, however often it occurs.
    always_smiling = {i: t + ["smiling"] for i, t in tags.items()}
    kept = build_captions(always_smiling, CaptionSettings("character", "sks", count_tokens=False))
    assert all("smiling" in c.kept for c in kept.captions)


def test_core_tags_are_per_cluster_and_force_lists_override():
    tags = {0: ["tattoo", "hat"], 1: ["tattoo"], 2: ["halo"], 3: ["halo", "hat"]}
    clusters = {0: 0, 1: 0, 2: 1, 3: 1}
    by_group = core_tags_by_group(tags, clusters, threshold=0.6)
    assert by_group == {0: {"tattoo"}, 1: {"halo"}}
    settings = CaptionSettings("character", "sks", threshold=0.6, count_tokens=False,
                               force_keep=("tattoo",), force_drop=("hat",))
    result = {c.item: c for c in build_captions(tags, settings, clusters).captions}
    assert "tattoo" in result[0].kept  # forced keep beats core
    assert result[2].dropped["halo"] == "core"  # cluster 1's own core tag
    assert result[0].dropped["hat"] == "forced" and result[3].dropped["hat"] == "forced"
    assert split_terms("Hat, 3/4_view") == ("hat", "three quarter view")


def test_core_share_threshold_is_inclusive_and_validated():
    lists = [["a", "b"], ["a"], ["a"], ["c"], ["c"]]
    assert tag_shares(lists)["a"] == pytest.approx(0.6)
    assert core_tags(lists, 0.4) == {"a", "c"}
    assert core_tags(lists, 0.6) == {"a"}
    with pytest.raises(ValueError):
        core_tags(lists, 0.0)


@pytest.mark.parametrize(
    ("lora_type", "absent", "present"),
    [
        ("character", ["brown hair", "blue eyes"], ["smiling", "profile", "red dress", "forest"]),
        ("style", ["watercolor", "sketch"], ["brown hair", "smiling", "forest"]),
        ("scene", ["forest"], ["smiling", "red dress", "brown hair"]),
        ("expression", ["smiling"], ["brown hair", "profile", "forest"]),
        ("lighting", ["backlighting", "golden hour"], ["smiling", "forest", "brown hair"]),
    ],
)
def test_each_type_drops_its_own_subject(lora_type, absent, present):
    tags = {i: ["brown hair", "blue eyes", "smiling", "profile", "red dress", "forest",
                "watercolor", "sketch", "backlighting", "golden hour", "masterpiece"] for i in range(4)}
    result = build_captions(tags, CaptionSettings(lora_type, "sks", count_tokens=False))
    text = result.captions[0].text
    for tag in absent:
        assert tag not in result.captions[0].kept, (lora_type, text)
    for tag in present:
        assert tag in text, (lora_type, text)
    assert "masterpiece" not in text  # quality words never train into a LoRA


def test_concept_and_object_bind_their_frequent_tags():
    tags = {i: ["handstand", ["woman", "man"][i % 2], ["forest", "beach"][i % 2]] for i in range(6)}
    concept = build_captions(tags, CaptionSettings("pose", "sks", count_tokens=False))
    assert all("handstand" not in c.text and c.text.startswith("sks, ") for c in concept.captions)
    assert "forest" in concept.captions[0].text and "woman" in concept.captions[0].text
    mug = {i: ["ceramic", "chipped handle", ["on table", "held in hands", "on shelf"][i % 3]] for i in range(6)}
    obj = build_captions(mug, CaptionSettings("object", "sks", "mug", count_tokens=False))
    assert obj.captions[0].text == "sks mug, on table"


def test_templates_are_documented_for_every_type():
    text = describe_templates()
    for lora_type in ("character", "style", "scene", "concept", "expression", "lighting", "object"):
        assert lora_type in STRATEGIES[lora_type].template.split(":")[0]
        assert lora_type in text
    assert strategy_for("background") is STRATEGIES["scene"]
    with pytest.raises(ValueError, match="^LoRA type 'vibes' is not one of character, style, scene, concept, expression, lighting, object$"):
        strategy_for("vibes")


def test_tag_and_natural_language_rendering():
    tags = ["smiling", "three quarter view", "upper body", "red dress", "forest", "golden hour"]
    assert render_caption("sks woman", tags, "SDXL") == (
        "sks woman, smiling, three quarter view, upper body, red dress, forest, golden hour")
    assert render_caption("sks woman", tags, "Pony", pony_score=True).startswith(
        "sks woman, score_9, score_8_up, score_7_up, smiling")
    assert render_caption("sks woman", tags, "SDXL", pony_score=True).startswith("sks woman, smiling")
    assert render_caption("sks woman", tags, "SD1.5", separator=True).startswith("sks woman ||| smiling")
    sentence = render_caption("sks woman", tags, "Flux")
    assert sentence == ("sks woman, smiling, seen in three quarter view, upper body shot, "
                        "wearing red dress, in a forest, at golden hour.")
    assert render_caption("sks woman", tags, "SD3") == sentence
    assert set(CAPTION_ORDER) == set(CATEGORIES)
    with pytest.raises(ValueError, match=r"^base model 'SD9' is not one of SD1\.5, SDXL, Pony, Flux, SD3$"):
        render_caption("sks", tags, "SD9")


def test_synonyms_normalise_to_one_term(tmp_path):
    assert {normalise_tag(t) for t in ("3/4 view", "three-quarter_view", "Three Quarter View")} == {
        "three quarter view"}
    assert normalise_tag("from_side") == "profile" and normalise_tag("smile") == "smiling"
    assert normalise_tag(r"hatsune miku \(cosplay\)") == "hatsune miku (cosplay)"
    assert category_of("teal_hair") == "hair" and category_of("striped dress") == "clothing"
    (tmp_path / "0001.txt").write_text("1girl, brown_hair, 3/4_view, smile, smile\n")
    (tmp_path / "0002.txt").write_text("brown_hair blue_eyes from_side")
    imported = read_tag_folder(tmp_path)
    assert imported["0001"] == ["1girl", "brown hair", "three quarter view", "smiling"]
    assert imported["0002"] == ["brown hair", "blue eyes", "profile"]
    assert parse_tag_text("") == []


def test_token_counting_and_the_warning():
    short, long = "sks woman, smiling", ", ".join(f"detail number {i}" for i in range(40))
    counts = count_tokens([short, long], limit=75)
    assert counts[0].tokens == 4 and counts[0].chunks == 1 and not counts[0].over_limit
    assert counts[1].tokens > 75 and counts[1].chunks >= 2 and counts[1].over_limit
    tags = {"a": ["smiling"], "b": [f"detail number {i}" for i in range(40)]}
    result = build_captions(tags, CaptionSettings("style", "sks", token_limit=75))
    assert result.captions[0].tokens is not None
    assert len(result.warnings) == 1 and result.warnings[0].startswith("b: caption has")


def test_prompt_set_distribution_and_identity_left_out():
    anchor = "brown hair, blue eyes, freckles"
    items = build_prompt_set("character", anchor, 40, seed=7, trigger="sks", class_word="woman")
    assert items == build_prompt_set("character", anchor, 40, seed=7, trigger="sks", class_word="woman")
    assert items != build_prompt_set("character", anchor, 40, seed=8, trigger="sks", class_word="woman")
    views = Counter(t for i in items for t in i.tags if t in ("front view", "three quarter view", "profile"))
    framings = Counter(t for i in items for t in i.tags if t in ("close-up", "upper body", "full body"))
    assert views == {"front view": 18, "three quarter view": 16, "profile": 6}
    assert framings == {"close-up": 18, "upper body": 14, "full body": 8}
    outfits = [tuple(t for t in i.tags if category_of(t) == "clothing") for i in items]
    assert all(a != b for a, b in zip(outfits, outfits[1:], strict=False)) and len(set(outfits)) >= 12
    for item in items:
        assert anchor in item.prompt and item.caption.startswith("sks woman, ")
        assert "brown hair" not in item.caption and "freckles" not in item.caption
    for subject_type in ("style", "object", "concept", "scene"):
        other = build_prompt_set(subject_type, "ANCHOR", 5, 1, "sks", base_model="Flux")
        assert all("ANCHOR" in i.prompt and "ANCHOR" not in i.caption for i in other)
        assert all(i.caption.endswith(".") for i in other)


def test_caption_node_reads_imported_tags_only_from_allowed_folders(pack, tmp_path, output_root):
    from lora_foundry.workspace import NewItem, Workspace

    ws = Workspace.open(tmp_path / "ws")
    with ws.stage("src", 1, {}) as st:
        for position, unit in st.pending_units(["0", "1"]):
            rel = st.write_file(f"{position:04d}.png", lambda h: h.write(b"x"))
            st.emit(unit, position, [NewItem(kind="image", relpath=rel, width=1, height=1,
                                             annotations={"tags": ["brown hair", "smiling"]})])
    tags_dir = output_root / "my_tags"
    tags_dir.mkdir()
    (tags_dir / "0001.txt").write_text("blue_eyes, 3/4_view, red_dress")
    node = pack.nodes.captions.BuildCaptions()
    frames, summary = node.build(st.handle, "character", "sks", "woman", "SDXL", 0.4, tags_folder="my_tags")
    captions = Workspace.from_handle(frames).annotations(frames, "caption")
    assert sorted(captions.values()) == ["sks woman, smiling", "sks woman, smiling, three quarter view, red dress"]
    assert "keep_tokens = 1" in summary and "core tags" in summary
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    with pytest.raises(ValueError, match="tags_folder .* is outside the folders workflows may read"):
        node.build(st.handle, "character", "sks", "woman", "SDXL", 0.4, tags_folder=str(outside))
    with pytest.raises(ValueError, match="outside the folders"):
        node.build(st.handle, "character", "sks", "woman", "SDXL", 0.4, tags_folder="../elsewhere")
