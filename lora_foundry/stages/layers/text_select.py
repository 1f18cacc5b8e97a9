"""Pick characters among SAM 2's automatic instances by text ("a rabbit, a person") through CLIP.

Users who cannot click boxes on every shot still know what their characters ARE. Each automatic
instance is cut out (its box, pixels outside its mask painted the plain colour, so the scenery
around it does not vote) and embedded with the same open_clip functions the embed stage uses; each
comma-separated phrase is embedded as text. With ``sims[i, p]`` the cosine similarity of instance
``i`` and phrase ``p`` and ``best[p]`` the highest similarity any instance of the frame reaches for
``p``, the rule is:

    instance ``i`` is kept for phrase ``p`` when ``sims[i, p] >= best[p] - margin`` and
    ``sims[i, p] >= min_similarity``; a kept instance is labelled with the phrase (among those it
    is kept for) it matches best.

So every phrase keeps its best instance of the frame (when that one clears ``min_similarity``) and
any near-tie (several rabbits), and never instances clearly worse than the best. The rule itself
(``choose_by_text``) works on plain arrays, so tests can drive it with chosen vectors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...media import images
from .segment import Instance, cutout_rgba

ImageEmbedder = Callable[[Sequence[Any]], np.ndarray]


@dataclass(frozen=True)
class TextRule:
    """The phrases and how close to the best instance a match must be (see the module docstring)."""

    phrases: tuple[str, ...]
    margin: float = 0.02
    min_similarity: float = 0.15


def parse_phrases(text: str) -> tuple[str, ...]:
    """Comma- or newline-separated phrases, trimmed, empty and repeated ones dropped."""
    phrases: list[str] = []
    for part in text.replace("\n", ",").split(","):
        phrase = " ".join(part.split())
        if phrase and phrase not in phrases:
            phrases.append(phrase)
    return tuple(phrases)


def choose_by_text(sims: np.ndarray, rule: TextRule) -> list[tuple[int, int, float]]:
    """``(instance index, phrase index, similarity)`` for every kept instance, best match first.

    ``sims`` is (instances, phrases) of cosine similarities.
    """
    sims = np.asarray(sims, dtype=np.float64)
    if sims.size == 0:
        return []
    best = sims.max(axis=0, keepdims=True)
    eligible = (sims >= best - rule.margin) & (sims >= rule.min_similarity)
    chosen = []
    for index in np.flatnonzero(eligible.any(axis=1)):
        masked = np.where(eligible[index], sims[index], -np.inf)
        phrase = int(masked.argmax())
        chosen.append((int(index), phrase, float(sims[index, phrase])))
    chosen.sort(key=lambda entry: entry[2], reverse=True)
    return chosen


def instance_pictures(image: np.ndarray, instances: Sequence[Instance], color: tuple[int, int, int]) -> list[Any]:
    """Each instance cut out to its box on the plain colour, as a PIL image (what CLIP sees)."""
    pictures = []
    for inst in instances:
        rgba, _ = cutout_rgba(image, inst.mask, 0)
        pictures.append(images.to_pil(images.flatten(rgba, color)))
    return pictures


def select_by_text(image: np.ndarray, instances: Sequence[Instance], color: tuple[int, int, int],
                   rule: TextRule, embed_images: ImageEmbedder, phrase_vectors: np.ndarray) -> list[Instance]:
    """The instances the text rule keeps, labelled with their phrase and similarity.

    ``embed_images`` maps PIL images to L2-normalised rows; ``phrase_vectors`` holds one
    L2-normalised row per phrase of ``rule``.
    """
    if not instances or not rule.phrases:
        return []
    vectors = np.asarray(embed_images(instance_pictures(image, instances, color)), dtype=np.float64)
    sims = vectors @ np.asarray(phrase_vectors, dtype=np.float64).T
    return [replace(instances[index], label=rule.phrases[phrase], label_score=round(similarity, 4))
            for index, phrase, similarity in choose_by_text(sims, rule)]


def clip_functions(clip: Any, rule: TextRule) -> tuple[ImageEmbedder, np.ndarray]:
    """The image embedder and phrase vectors of a CLIP ``ModelHandle`` (the embed stage's functions)."""
    from ...models.clip_model import ClipEmbedder

    embedder = ClipEmbedder(clip)
    return embedder.images, embedder.texts(list(rule.phrases))
