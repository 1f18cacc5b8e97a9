"""General tags from a WD14-style tagger: its input tensor, its thresholds, its tag spelling.

The caption builder's binding rule needs general tags (hair, eyes, clothes, objects, setting) to
decide what binds to the trigger; the pack's other taggers give pose, expression and lighting only.
This module is the part of WD14 tagging that works on arrays and numbers:

- ``prepare``: the input tensor the whole family was trained on, prepared as SmilingWolf's own demo
  does it (alpha over white, pad to a centred square with white, bicubic resize with Pillow to the
  model's side, RGB to BGR, float32 0-255, no normalisation);
- ``mcut_threshold``: Maximum Cut thresholding (the largest gap between sorted scores), an
  alternative to a fixed threshold for sets whose images carry very different numbers of tags;
- ``pick``: general tags above their threshold, character tags above their own, the rating (the
  best rating row), tags the user excluded removed, spelled through ``captions/vocabulary`` (one
  term per concept: underscores to spaces except in kaomoji, escapes removed, synonyms mapped).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...captions.vocabulary import normalise_tag, normalise_tags
from ...choices import one_of
from ...media.images import WHITE, flatten

RATING_MODES = ("omit", "as tag")
DEFAULT_GENERAL = 0.35
DEFAULT_CHARACTER = 0.85


@dataclass(frozen=True)
class TagRules:
    """How scores become tags (the node's settings; all of it goes into the stage key)."""

    general_threshold: float = DEFAULT_GENERAL
    general_mcut: bool = False
    character_threshold: float = DEFAULT_CHARACTER
    character_mcut: bool = False
    rating: str = "omit"
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        one_of(self.rating, RATING_MODES, "rating")
        for name in ("general_threshold", "character_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in 0..1, got {getattr(self, name)}")


@dataclass
class Tagged:
    """One image's result: tags in caption order (characters, then general by score) and why."""

    tags: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    characters: list[str] = field(default_factory=list)
    rating: str = ""


def exclusions(text: str) -> tuple[str, ...]:
    """The user's comma- or line-separated exclude list, spelled like the tags it removes."""
    return tuple(normalise_tags(text.replace("\n", ",").split(",")))


def prepare(image: np.ndarray, size: int) -> np.ndarray:
    """The model input for one RGB/RGBA uint8 image: ``[size, size, 3]`` float32, BGR, 0..255."""
    from PIL import Image

    rgb = flatten(np.asarray(image), WHITE)
    height, width = rgb.shape[:2]
    side = max(height, width)
    square = np.full((side, side, 3), 255, np.uint8)
    top, left = (side - height) // 2, (side - width) // 2
    square[top:top + height, left:left + width] = rgb
    if side != size:
        square = np.asarray(Image.fromarray(square).resize((size, size), Image.BICUBIC))
    return np.ascontiguousarray(square[:, :, ::-1], dtype=np.float32)


def mcut_threshold(scores: np.ndarray) -> float:
    """Maximum Cut: the midpoint of the largest gap between consecutive sorted scores (Largeron et
    al., 2012), as SmilingWolf's demo applies it; 1.0 (nothing passes) for fewer than two scores."""
    ordered = np.sort(np.asarray(scores, np.float64).reshape(-1))[::-1]
    if len(ordered) < 2:
        return 1.0
    gaps = ordered[:-1] - ordered[1:]
    cut = int(gaps.argmax())
    return float((ordered[cut] + ordered[cut + 1]) / 2)


def _above(scores: np.ndarray, indices: Sequence[int], threshold: float, mcut: bool, floor: float
           ) -> list[int]:
    """Positions among ``indices`` whose score passes, best first."""
    if not len(indices):
        return []
    picked = scores[list(indices)]
    if mcut:
        threshold = max(floor, mcut_threshold(picked))
    order = np.argsort(-picked, kind="stable")
    return [indices[i] for i in order if picked[i] >= threshold]


def pick(scores: np.ndarray, names: Sequence[str], groups: dict[str, list[int]], rules: TagRules) -> Tagged:
    """Tags of one image from its scores; ``groups`` holds the output positions of "general",
    "character" and "rating" (``TaggerFacts.indices``)."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    excluded = set(rules.exclude)
    characters = _above(scores, groups["character"], rules.character_threshold, rules.character_mcut, 0.15)
    general = _above(scores, groups["general"], rules.general_threshold, rules.general_mcut, 0.0)
    ratings = groups["rating"]
    rating = names[max(ratings, key=lambda i: scores[i])] if ratings else ""
    result = Tagged([], rating=normalise_tag(rating) if rating else "")
    for index in characters + general:
        tag = normalise_tag(names[index])
        if tag and tag not in excluded and tag not in result.scores:
            result.tags.append(tag)
            result.scores[tag] = round(float(scores[index]), 4)
            if index in characters:
                result.characters.append(tag)
    if rules.rating == "as tag" and result.rating and f"rating {result.rating}" not in excluded:
        result.tags.append(f"rating {result.rating}")
    return result
