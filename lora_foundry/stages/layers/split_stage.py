"""Layer split as a workspace stage: resumable per frame, cached by key.

Per input frame it writes one RGBA ``cutout`` per character (cropped to its box plus a margin;
alpha IS the instance mask, 0 or 255, as kohya's ``alpha_mask`` reads it; the colour under
transparent pixels is the chosen plain colour, so a tool that drops alpha sees the character on
that colour) and one ``background``: the full frame as RGBA whose alpha is 0 exactly on the hole
(the union of the characters). The hole mask travels inside the background file, so it cannot be
separated from its frame; ``inpaint_stage`` reads it from there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import names
from ...media import images
from ...media.masks import resize_mask
from ...models.handle import ModelHandle, all_on_device
from ...progress import Progress
from ...workspace import Handle, Item, NewItem, Workspace
from ..tagging.tags import union
from .segment import Instance, cutout_rgba, hole_mask, parse_color
from .split import SplitOptions, make_segmenter, mask_instances

SPLIT_VERSION = 1

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
        rel = st.write_image(rgba, f"{item.id:08d}_cutout_{number:02d}.png")
        facts = {names.INSTANCE: number, names.BOX: list(character.box), names.CROP_BOX: list(crop),
                 names.AREA: character.area, names.SCORE: round(character.score, 4), names.FOUND_BY: character.source}
        if character.track is not None:
            facts[names.TRACK] = character.track
        notes = dict(facts)
        if character.label:
            facts.update({names.FOUND_BY: "text", names.TEXT_MATCH: character.label,
                          names.TEXT_SIMILARITY: character.label_score})
            notes = {**facts, names.TAGS: union(tags, [character.label])}
        outputs.append(NewItem(kind=names.KIND_CUTOUT, relpath=rel, width=rgba.shape[1], height=rgba.shape[0],
                               meta=facts, annotations=notes, **common))
    hole = hole_mask(characters, image.shape[:2])
    background = np.dstack([image, np.where(hole, 0, 255).astype(np.uint8)])
    rel = st.write_image(background, f"{item.id:08d}_background.png")
    facts = {names.HOLE_AREA: int(hole.sum()), names.CHARACTERS: len(characters), names.HOLE_IN: "alpha"}
    outputs.append(NewItem(kind=names.KIND_BACKGROUND, relpath=rel, width=image.shape[1], height=image.shape[0],
                           meta=facts, annotations=facts, **common))
    return outputs

def split_layers(ws: Workspace, frames: Handle, sam: ModelHandle, options: SplitOptions,
                 progress: Progress | None = None, clip: Any | None = None) -> Handle:
    """Run the layer split over every frame of ``frames``; returns the handle of all its items.

    ``clip`` (a CLIP ``ModelHandle``) is needed only when ``options.text_prompt`` picks characters.
    Both visit their compute device for the whole run and return to their offload device after it
    (also when it fails or is cancelled).
    """
    options.validate(clip)
    color = parse_color(options.plain_color)
    with ws.stage("layer_split", SPLIT_VERSION, options.key_params(clip), inputs=[frames],
                  model=sam.identity, label="layers") as st:
        if not st.complete:
            tags = ws.tags(frames) if options.text_rule() is not None else {}
            with all_on_device(sam, clip):
                segment = make_segmenter(sam, options, clip)
                for position, item in st.pending(ws.items(frames), progress):
                    image = images.load_rgb(item.path)
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
    return (select_kinds(ws, layers, [names.KIND_CUTOUT], "cutouts"),
            select_kinds(ws, layers, [names.KIND_BACKGROUND], "backgrounds"))

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
                image = images.load_rgb(item.path)
                mask = resize_mask(masks[position if len(masks) > 1 else 0], image.shape[:2])
                characters = mask_instances(mask, separate_components)
                st.emit(unit=str(item.id), order=position,
                        outputs=split_frame_items(st, item, image, characters, color, margin))
        return st.handle
