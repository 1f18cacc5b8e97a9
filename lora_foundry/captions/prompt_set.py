"""Synthetic training prompts: a fixed appearance anchor plus varied angle, outfit, place and light.

A synthetic dataset teaches only what stays fixed across it. So every prompt repeats the anchor
(the character's looks, the style, the object, the concept, the scene) word for word and varies the
rest; the matching caption names only the varied part, so the anchor binds to the trigger. The mix
follows what works for character LoRAs: mostly front and three-quarter close-ups, some profiles,
upper and full body shots, a new outfit in most images. Quotas are allocated exactly (largest
remainder) and shuffled by ``seed``, so the same inputs always give the same set.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..choices import one_of
from ..paths import single_line
from .render import render_caption
from .strategies import head_text, strategy_for

VIEW_MIX = (("front view", 0.45), ("three quarter view", 0.40), ("profile", 0.15))
FRAMING_MIX = (("close-up", 0.45), ("upper body", 0.35), ("full body", 0.20))
OBJECT_VIEW_MIX = (("front view", 0.35), ("three quarter view", 0.35), ("from above", 0.15), ("profile", 0.15))
SCENE_VIEW_MIX = (("wide shot", 0.5), ("from below", 0.15), ("from above", 0.15), ("close-up", 0.2))
EXPRESSIONS = ("smiling", "serious", "laughing", "surprised", "neutral expression", "sad", "angry", "smirk")
OUTFITS = (
    ("white shirt", "jeans"), ("sundress",), ("leather jacket", "t-shirt"), ("hoodie", "shorts"),
    ("suit", "tie"), ("sweater", "skirt"), ("coat", "scarf"), ("tank top", "pants"),
    ("kimono",), ("denim jacket", "dress"), ("blouse", "skirt"), ("school uniform",),
    ("armor",), ("swimsuit",), ("uniform",), ("jacket", "hat"),
)
BACKGROUNDS = (
    "simple background", "white background", "forest", "city", "street", "beach", "bedroom",
    "kitchen", "cafe", "park", "library", "office", "garden", "mountains", "field", "classroom",
)
LIGHTINGS = (
    "soft lighting", "sunlight", "golden hour", "overcast", "studio lighting", "backlighting",
    "night", "dramatic lighting", "neon lights", "dappled sunlight",
)
STYLE_SUBJECTS = (
    "woman", "man", "girl", "boy", "cat", "dog", "no humans, mountains", "no humans, city",
    "no humans, forest", "person, reading", "woman, dancing", "man, walking",
)
OBJECT_PLACEMENTS = ("on a wooden table", "held in hands", "on a shelf", "on the floor", "on a desk")
PEOPLE = ("woman", "man", "girl", "boy")
SCENE_SUBJECTS = ("no humans", "no humans", "woman, walking", "man, standing", "person, sitting")
SUBJECT_TYPES = ("character", "style", "object", "concept", "scene")


@dataclass(frozen=True)
class PromptItem:
    """One synthetic image: the generation prompt, its training caption and the varied tags."""

    index: int
    prompt: str
    caption: str
    tags: tuple[str, ...]


def allocate(mix: Sequence[tuple[str, float]], n: int, rng: random.Random) -> list[str]:
    """Exactly ``n`` labels in the mix's proportions (largest remainder), shuffled by ``rng``."""
    total = sum(share for _, share in mix)
    exact = [(label, n * share / total) for label, share in mix]
    counts = {label: int(value) for label, value in exact}
    by_remainder = sorted(exact, key=lambda lv: lv[1] - int(lv[1]), reverse=True)
    for label, _ in by_remainder[: n - sum(counts.values())]:
        counts[label] += 1
    labels = [label for label, _ in mix for _ in range(counts[label])]
    rng.shuffle(labels)
    return labels


def _cycle(pool: Sequence, n: int, rng: random.Random) -> list:
    """``n`` picks that walk a shuffled pool, so consecutive picks differ and all get used."""
    picks: list = []
    while len(picks) < n:
        block = list(pool)
        rng.shuffle(block)
        if picks and block[0] == picks[-1]:
            block.append(block.pop(0))
        picks += block
    return picks[:n]


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _varied_tags(subject_type: str, n: int, rng: random.Random, class_word: str) -> list[list[str]]:
    backgrounds = _cycle(BACKGROUNDS, n, rng)
    lightings = _cycle(LIGHTINGS, n, rng)
    if subject_type == "character":
        views, framings = allocate(VIEW_MIX, n, rng), allocate(FRAMING_MIX, n, rng)
        expressions, outfits = _cycle(EXPRESSIONS, n, rng), _cycle(OUTFITS, n, rng)
        return [[expressions[i], views[i], framings[i], *outfits[i], backgrounds[i], lightings[i]]
                for i in range(n)]
    if subject_type == "style":
        subjects, framings = _cycle(STYLE_SUBJECTS, n, rng), allocate(FRAMING_MIX, n, rng)
        return [[*_split(subjects[i]), framings[i], backgrounds[i], lightings[i]] for i in range(n)]
    if subject_type == "object":
        views, places = allocate(OBJECT_VIEW_MIX, n, rng), _cycle(OBJECT_PLACEMENTS, n, rng)
        return [[views[i], places[i], backgrounds[i], lightings[i]] for i in range(n)]
    if subject_type == "concept":
        people, outfits = _cycle(PEOPLE, n, rng), _cycle(OUTFITS, n, rng)
        views = allocate(VIEW_MIX, n, rng)
        return [[people[i], views[i], *outfits[i], backgrounds[i], lightings[i]] for i in range(n)]
    subjects, views = _cycle(SCENE_SUBJECTS, n, rng), allocate(SCENE_VIEW_MIX, n, rng)  # "scene"
    return [[*_split(subjects[i]), views[i], lightings[i]] for i in range(n)]


def build_prompt_set(
    subject_type: str,
    anchor: str,
    count: int,
    seed: int,
    trigger: str,
    class_word: str = "",
    base_model: str = "SDXL",
    prompt_suffix: str = "",
) -> list[PromptItem]:
    """``count`` prompts (anchor + varied tags) with captions (trigger + varied tags, no anchor).

    For a character the anchor is the look ("brown hair, blue eyes, freckles"); for a style the
    style words; for an object its description; for a concept the pose or action; for a scene
    the place. The class word goes into both prompt and caption (``woman``).
    """
    one_of(subject_type, SUBJECT_TYPES, "subject type")
    if count < 1:
        raise ValueError("a prompt set needs at least one prompt")
    if not anchor.strip():
        raise ValueError("the appearance anchor is empty: it is what the LoRA should learn")
    trigger, class_word = single_line(trigger, "trigger"), single_line(class_word, "class_word")
    anchor = " ".join(anchor.split())  # typed in a multi-line box; each prompt is one line
    rng = random.Random(seed)
    strategy = strategy_for(subject_type)
    head = head_text(trigger, class_word, strategy)
    items = []
    for index, varied in enumerate(_varied_tags(subject_type, count, rng, class_word)):
        subject = [class_word] if class_word and subject_type == "character" else []
        parts = [*subject, anchor.strip(), *varied] + ([prompt_suffix.strip()] if prompt_suffix.strip() else [])
        caption = render_caption(head, varied, base_model)
        items.append(PromptItem(index, ", ".join(parts), caption, tuple(varied)))
    return items
