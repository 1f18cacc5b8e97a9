"""Layer split and inpainting as workspace stages: resumable per frame, cached by key.

Layer split writes, per input frame, one RGBA ``cutout`` per character (cropped to its box plus a
margin; alpha IS the instance mask, 0 or 255, as kohya's ``alpha_mask`` reads it; the colour under
transparent pixels is the chosen plain colour, so a tool that drops alpha sees the character on
that colour) and one ``background``: the full frame as RGBA whose alpha is 0 exactly on the hole
(the union of the characters). The hole mask travels inside the background file, so it cannot be
separated from its frame; inpainting reads it from there and writes ``clean_background`` items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..progress import Progress
from ..workspace import Handle, Item, NewItem, Workspace
from .annotate import inherited_tags, union
from .inpaint import Filler, InpaintSettings, inpaint
from .masks import resize_mask
from .segment import (
    CharacterRules,
    Instance,
    cutout_rgba,
    hole_mask,
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

SPLIT_VERSION = 1
INPAINT_VERSION = 1
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
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        objects, _ = parse_prompts(self.prompts)
        if self.mode == "prompts" and not objects:
            raise ValueError("mode 'prompts' needs at least one prompt (a box or points)")
        parse_color(self.plain_color)
        if self.points_per_side < 1 or self.margin < 0:
            raise ValueError("points_per_side must be >= 1 and margin >= 0")
        if self.text_margin < 0:
            raise ValueError("text_margin must be >= 0 (how far below the best match a match may be)")


@dataclass(frozen=True)
class LoadedModel:
    """A loaded network with what identifies it in stage keys (file, size, mtime, config)."""

    model: Any
    device: str
    identity: str
    kind: str = ""


def read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_rgba(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGBA"), dtype=np.uint8)


def write_png(st: Any, pixels: np.ndarray, name: str) -> str:
    """PNG (lossless: alpha and untouched pixels must survive exactly), written atomically."""
    return st.write_image(pixels, name)


def make_segmenter(sam: LoadedModel, options: SplitOptions,
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


def split_frame_items(st: Any, item: Item, image: np.ndarray, characters: Sequence[Instance],
                      color: tuple[int, int, int], margin: int, tags: Sequence[str] = ()) -> list[NewItem]:
    """Write one frame's cut-outs and background; return the items to record.

    A character chosen by text carries ``text_match`` / ``text_similarity`` and its phrase joins
    ``tags`` (the frame's inherited ``tags`` first, as the tagging stages do). A tracked character
    carries ``track``, its object number within the shot, and is numbered by it."""
    common = {"parent": item.id, "source": item.source, "frame_index": item.frame_index,
              "time_s": item.time_s, "shot": item.shot}
    outputs = []
    for position, character in enumerate(characters):
        number = position if character.track is None else character.track
        rgba, crop = cutout_rgba(image, character.mask, margin)
        rgba[rgba[..., 3] == 0, :3] = color
        rel = write_png(st, rgba, f"{item.id:08d}_cutout_{number:02d}.png")
        facts = {"instance": number, "box": list(character.box), "crop_box": list(crop),
                 "area": character.area, "score": round(character.score, 4), "by": character.source}
        if character.track is not None:
            facts["track"] = character.track
        notes = dict(facts)
        if character.label:
            facts.update(by="text", text_match=character.label, text_similarity=character.label_score)
            notes = {**facts, "tags": union(tags, [character.label])}
        outputs.append(NewItem(kind="cutout", relpath=rel, width=rgba.shape[1], height=rgba.shape[0],
                               meta=facts, annotations=notes, **common))
    hole = hole_mask(characters, image.shape[:2])
    background = np.dstack([image, np.where(hole, 0, 255).astype(np.uint8)])
    rel = write_png(st, background, f"{item.id:08d}_background.png")
    facts = {"hole_area": int(hole.sum()), "characters": len(characters), "hole_in": "alpha"}
    outputs.append(NewItem(kind="background", relpath=rel, width=image.shape[1], height=image.shape[0],
                           meta=facts, annotations=facts, **common))
    return outputs


def split_layers(ws: Workspace, frames: Handle, sam: LoadedModel, options: SplitOptions,
                 progress: Progress | None = None, clip: Any | None = None) -> Handle:
    """Run the layer split over every frame of ``frames``; returns the handle of all its items.

    ``clip`` (a loaded ``ClipModel``) is needed only when ``options.text_prompt`` picks characters.
    """
    options.validate(clip)
    color = parse_color(options.plain_color)
    with ws.stage("layer_split", SPLIT_VERSION, options.key_params(clip), inputs=[frames],
                  model=sam.identity, label="layers") as st:
        if not st.complete:
            segment = make_segmenter(sam, options, clip)
            tags = inherited_tags(ws, frames) if options.text_rule() is not None else {}
            for position, item in st.pending(ws.items(frames), progress):
                image = read_rgb(item.path)
                characters = segment(image)
                outputs = split_frame_items(st, item, image, characters, color, options.margin,
                                            tags.get(item.id, []))
                st.emit(unit=str(item.id), order=position, outputs=outputs)
        return st.handle


def select_kinds(ws: Workspace, source: Handle, kinds: Sequence[str], label: str) -> Handle:
    """A handle on the items of ``source`` whose kind is in ``kinds`` (no files are copied)."""
    with ws.stage("select_kind", 1, {"kinds": sorted(kinds)}, inputs=[source], label=label) as st:
        if not st.complete:
            st.emit_all([item.id for item in ws.items(source) if item.kind in kinds])
        return st.handle


def cutouts_and_backgrounds(ws: Workspace, layers: Handle) -> tuple[Handle, Handle]:
    """A layer split's result as the two handles its nodes give out: cut-outs, backgrounds."""
    return (select_kinds(ws, layers, ["cutout"], "cutouts"),
            select_kinds(ws, layers, ["background"], "backgrounds"))


def hole_of(background: np.ndarray) -> np.ndarray:
    """The hole mask stored in a background's alpha channel (transparent = hole)."""
    return background[..., 3] < 128


def inpaint_backgrounds(ws: Workspace, backgrounds: Handle, filler: Filler, method: str, identity: str,
                        settings: InpaintSettings | None = None,
                        progress: Progress | None = None) -> Handle:
    """Fill every background's hole; returns the handle of the ``clean_background`` items.

    Items of other kinds are passed over (counted in the stage info as ``skipped``).
    """
    settings = settings or InpaintSettings()
    params = {"method": method, **asdict(settings)}
    with ws.stage("inpaint", INPAINT_VERSION, params, inputs=[backgrounds], model=identity,
                  label="clean backgrounds") as st:
        if not st.complete:
            items = ws.items(backgrounds)
            st.set_info(skipped=sum(1 for item in items if item.kind != "background"))
            for position, item in st.pending(items, progress):
                outputs = [_clean_item(st, item, filler, method, settings)] if item.kind == "background" else []
                st.emit(unit=str(item.id), order=position, outputs=outputs)
        return st.handle


def _clean_item(st: Any, item: Item, filler: Filler, method: str, settings: InpaintSettings) -> NewItem:
    background = read_rgba(item.path)
    hole = hole_of(background)
    if hole.any():
        clean, grown = inpaint(background[..., :3], hole, filler, settings)
    else:
        clean, grown = background[..., :3].copy(), hole
    rel = write_png(st, clean, f"{item.id:08d}_clean.png")
    facts = {"method": method, "filled_area": int(grown.sum()), "dilate_px": settings.dilate_px}
    return NewItem(kind="clean_background", relpath=rel, width=clean.shape[1], height=clean.shape[0],
                   parent=item.id, source=item.source, frame_index=item.frame_index, time_s=item.time_s,
                   shot=item.shot, meta=facts, annotations=facts)


def layers_from_masks(ws: Workspace, frames: Handle, masks: Sequence[np.ndarray], separate_components: bool,
                      margin: int = 16, plain_color: str = "#FFFFFF",
                      progress: Progress | None = None) -> Handle:
    """Layer split from masks made elsewhere (another pack's MASK): one mask per frame, or one for all.

    Each mask is resized (nearest) to its frame. With ``separate_components`` every connected
    region becomes its own character; otherwise the mask is one character.
    """
    items = ws.items(frames)
    if len(masks) not in (1, len(items)):
        raise ValueError(f"got {len(masks)} masks for {len(items)} frames: give one per frame, or one for all")
    color = parse_color(plain_color)
    digest = hashlib.sha256(b"".join(np.packbits(m).tobytes() + str(m.shape).encode() for m in masks))
    params = {"masks": digest.hexdigest(), "separate_components": separate_components, "margin": margin,
              "plain_color": plain_color}
    with ws.stage("layers_from_masks", SPLIT_VERSION, params, inputs=[frames], label="layers") as st:
        if not st.complete:
            for position, item in st.pending(items, progress):
                image = read_rgb(item.path)
                mask = resize_mask(masks[position if len(masks) > 1 else 0], image.shape[:2])
                characters = _mask_instances(mask, separate_components)
                st.emit(unit=str(item.id), order=position,
                        outputs=split_frame_items(st, item, image, characters, color, margin))
        return st.handle


def _mask_instances(mask: np.ndarray, separate_components: bool) -> list[Instance]:
    if not separate_components:
        found = make_instance(mask, 1.0, "mask")
        return [found] if found is not None else []
    import cv2

    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    found = [make_instance(labels == label, 1.0, "mask") for label in range(1, count)]
    return [inst for inst in found if inst is not None]


def layer_mask(item: Item, pixels: np.ndarray) -> np.ndarray:
    """The mask a layer carries: a background's hole (1 = fill here, ComfyUI's inpaint convention),
    a cut-out's character (its alpha); items without alpha give an empty mask."""
    if pixels.ndim == 3 and pixels.shape[-1] == 4:
        alpha = pixels[..., 3] >= 128
        return ~alpha if item.kind == "background" else alpha
    return np.zeros(pixels.shape[:2], bool)


def read_layer(item: Item) -> tuple[np.ndarray, np.ndarray]:
    """An item's RGB pixels and its mask (see ``layer_mask``)."""
    from PIL import Image

    with Image.open(item.path) as image:
        pixels = np.asarray(image.convert("RGBA") if "A" in image.getbands() else image.convert("RGB"))
    return pixels[..., :3], layer_mask(item, pixels)
