"""What a layer split decides, apart from where it writes: the options (and their stage-key form),
how a frame's characters are found (prompts, automatic rules, or text through CLIP), and the masks
a layer file carries. The workspace side is ``split_stage`` / ``track_stage``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ... import names
from ...choices import one_of
from ...media import images
from ...models.handle import ModelHandle
from .segment import (
    CharacterRules,
    Instance,
    make_generator,
    make_instance,
    make_predictor,
    parse_color,
    parse_prompts,
    segment_automatic,
    segment_prompted,
    select_characters,
)
from .text_select import TextRule, clip_functions, parse_phrases, select_by_text

MODES = ("auto", "prompts", "automatic")

@dataclass(frozen=True)
class SplitOptions:
    """Everything that decides a layer split's result (all of it goes into the stage key).

    ``mode``: "prompts" uses only the user's prompts, "automatic" only SAM 2's automatic masks and
    ``rules``, "auto" uses prompts when some are given, else automatic. ``text_prompt`` (phrases,
    comma-separated) picks among the automatic instances through CLIP (see ``text_select``); it
    is used only when automatic instances are, and then a CLIP model is required.
    """

    prompts: str = ""
    mode: str = "auto"
    points_per_side: int = 16
    rules: CharacterRules = field(default_factory=CharacterRules)
    margin: int = 16
    plain_color: str = "#FFFFFF"
    text_prompt: str = ""
    text_margin: float = 0.02
    text_min_similarity: float = 0.15

    def uses_prompts(self) -> bool:
        return self.mode == "prompts" or (self.mode == "auto" and bool(parse_prompts(self.prompts)[0]))

    def text_rule(self) -> TextRule | None:
        """The text rule when text picks the characters (phrases given, automatic instances), else None."""
        phrases = parse_phrases(self.text_prompt)
        if not phrases or self.uses_prompts():
            return None
        return TextRule(phrases, self.text_margin, self.text_min_similarity)

    def key_params(self, clip: Any | None) -> dict[str, Any]:
        """Stage-key parameters; the text fields (and CLIP identity) only when text is used, so
        results made before text prompts existed keep their keys."""
        params = {**asdict(self), "rules": asdict(self.rules)}
        for name in ("text_prompt", "text_margin", "text_min_similarity"):
            params.pop(name)
        rule = self.text_rule()
        if rule is not None:
            params["text"] = {"phrases": list(rule.phrases), "margin": rule.margin,
                              "min_similarity": rule.min_similarity,
                              "clip": getattr(clip, "identity", None)}
        return params

    def validate(self, clip: Any | None = None) -> None:
        """Refuse bad settings before any work, naming them; ``clip`` is the model text prompts need."""
        if self.text_rule() is not None and clip is None:
            raise ValueError("text_prompt needs a CLIP model: connect LF CLIP Loader to clip_model "
                             "(or clear text_prompt)")
        one_of(self.mode, MODES, "mode")
        objects, _ = parse_prompts(self.prompts)
        if self.mode == "prompts" and not objects:
            raise ValueError("mode 'prompts' needs at least one prompt (a box or points)")
        parse_color(self.plain_color)
        if self.points_per_side < 1 or self.margin < 0:
            raise ValueError("points_per_side must be >= 1 and margin >= 0")
        if self.text_margin < 0:
            raise ValueError("text_margin must be >= 0 (how far below the best match a match may be)")

def make_segmenter(sam: ModelHandle, options: SplitOptions,
                   clip: Any | None = None) -> Callable[[np.ndarray], list[Instance]]:
    """A function frame -> its characters (each its own instance), by prompts, text or automatic rules
    (``options`` already checked with ``validate(clip)``)."""
    objects, relative = parse_prompts(options.prompts)
    if options.uses_prompts():
        predictor = make_predictor(sam.model)
        return lambda image: segment_prompted(predictor, image, objects, relative)
    generator = make_generator(sam.model, points_per_side=options.points_per_side)
    rule = options.text_rule()
    if rule is None:
        return lambda image: select_characters(segment_automatic(generator, image), options.rules)
    embed_images, phrase_vectors = clip_functions(clip, rule)
    color = parse_color(options.plain_color)
    # Scenery and parts are still dropped by the rules; the cap applies after the text has chosen.
    uncapped = replace(options.rules, max_characters=1_000_000)

    def by_text(image: np.ndarray) -> list[Instance]:
        candidates = select_characters(segment_automatic(generator, image), uncapped)
        chosen = select_by_text(image, candidates, color, rule, embed_images, phrase_vectors)
        return chosen[: options.rules.max_characters]

    return by_text

def hole_of(background: np.ndarray) -> np.ndarray:
    """The hole mask stored in a background's alpha channel (transparent = hole)."""
    return background[..., 3] < 128

def layer_mask(kind: str, pixels: np.ndarray) -> np.ndarray:
    """The mask a layer carries: a background's hole (1 = fill here, ComfyUI's inpaint convention),
    a cut-out's character (its alpha); items without alpha give an empty mask."""
    if pixels.ndim == 3 and pixels.shape[-1] == 4:
        alpha = pixels[..., 3] >= 128
        return ~alpha if kind == names.KIND_BACKGROUND else alpha
    return np.zeros(pixels.shape[:2], bool)

def mask_instances(mask: np.ndarray, separate_components: bool) -> list[Instance]:
    if not separate_components:
        found = make_instance(mask, 1.0, "mask")
        return [found] if found is not None else []
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    found = [make_instance(labels == label, 1.0, "mask") for label in range(1, count)]
    return [inst for inst in found if inst is not None]


def read_layer(path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A layer file's RGB pixels and its mask (see ``layer_mask``)."""
    pixels = images.load_image(path)
    return pixels[..., :3], layer_mask(kind, pixels)
