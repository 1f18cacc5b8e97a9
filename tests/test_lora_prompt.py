"""Compose Prompt: triggers + scene, contradiction warnings, CLIP tokens per 75-token chunk."""

from __future__ import annotations

import pytest

from lora_foundry.clip_tokens import ClipTokenCounter
from lora_foundry.lora import prompt


@pytest.fixture(scope="module")
def counter():
    return ClipTokenCounter()


def test_triggers_come_first_once(counter):
    composed = prompt.compose_prompt(["alice_lf", "park_bg", "Alice_LF"], "alice_lf, standing in a park, smiling",
                                     counter)
    assert composed.text == "alice_lf, park_bg, standing in a park, smiling"
    assert composed.warnings == ()


def test_counts_clip_bpe_tokens(counter):
    tokens, exact, _ = counter.count("a photo of a cat")
    assert (tokens, exact) == (5, True)
    tokens, _, _ = counter.count("zxqv woman")
    assert tokens == 5, "a made-up trigger word splits into several BPE tokens; a word count would say 2"


@pytest.mark.parametrize("scene, group, terms", [
    ("standing, sitting on a bench", "actions", ("standing", "sitting")),
    ("smiling, crying", "expressions", ("smiling", "crying")),
    ("from front, from behind, city", "views", ("from front", "from behind")),
    ("close-up, full body", "framings", ("close-up", "full body")),
])
def test_contradictions_are_named(counter, scene, group, terms):
    composed = prompt.compose_prompt([], scene, counter)
    assert any(f"two {group}" in w and all(t in w for t in terms) for w in composed.warnings), composed.warnings


@pytest.mark.parametrize("scene", ["smile, smiling", "standing in a park", "closeup, close-up",
                                   "close-up, from side, smiling",
                                   "understanding, outstanding view"])
def test_no_false_contradictions(counter, scene):
    assert prompt.compose_prompt([], scene, counter).warnings == ()


def test_long_prompt_warns_about_chunks(counter):
    scene = ", ".join(f"detailed {w} texture" for w in
                      ["brick", "wood", "stone", "glass", "metal", "cloth", "leather", "paper", "silk",
                       "marble", "sand", "grass", "snow", "ice", "water", "rust", "moss", "clay", "steel",
                       "copper", "gold", "silver", "bronze", "granite", "velvet", "linen", "wool", "denim"])
    composed = prompt.compose_prompt(["alice_lf"], scene, counter)
    report = composed.tokens
    assert report.exact and len(report.chunks) == 2 and report.chunks[0] == 75
    assert report.total == sum(report.chunks) > 75
    assert any("more than 75" in w for w in composed.warnings)
    assert "chunk(s): 75 + " in report.summary()
    short = prompt.compose_prompt(["alice_lf"], "standing", counter)
    assert len(short.tokens.chunks) == 1 and not short.warnings


def test_falls_back_to_an_estimate_without_open_clip(without_open_clip):
    composed = prompt.compose_prompt(["alice_lf"], "standing in a park", ClipTokenCounter())
    assert not composed.tokens.exact and composed.tokens.total == 6  # 5 words + 1 comma
    assert any("estimate" in w for w in composed.warnings)
