"""Per-frame layer split with SAM 2: one mask per instance, characters chosen, cut-outs and holes.

Users ask for one mask per object, not one merged mask, so every instance SAM 2 finds stays its
own mask. Which instances are *characters* comes from the user's prompts (each prompt object is one
character) or, in automatic mode, from the rules in ``CharacterRules`` (documented there and in
docs/models.md). Each character becomes an RGBA cut-out whose alpha IS its mask (kohya's
``alpha_mask`` training reads it), and the frame's hole mask is the union of the characters.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...choices import quoted
from ...media.masks import mask_box


@dataclass(frozen=True)
class Instance:
    """One object in one frame: its own mask (bool HxW), box (x0,y0,x1,y1 exclusive), score."""

    mask: np.ndarray
    box: tuple[int, int, int, int]
    area: int
    score: float
    source: str  # "prompt" or "auto"
    label: str = ""  # the text phrase that chose it (text prompts through CLIP), else ""
    label_score: float | None = None  # that phrase's CLIP cosine similarity
    track: int | None = None  # the object's number within its shot when tracked through it


@dataclass(frozen=True)
class PromptObject:
    """One character the user pointed at: a box and/or points (label 1 = on it, 0 = not on it)."""

    box: tuple[float, float, float, float] | None
    points: tuple[tuple[float, float], ...]
    labels: tuple[int, ...]


@dataclass(frozen=True)
class CharacterRules:
    """How automatic mode decides that a SAM 2 instance is a character.

    - ``min_area`` / ``max_area``: the mask covers this share of the frame (tiny specks and
      floor/sky/wall regions are not characters);
    - ``max_border_sides``: a mask touching more than this many frame edges is scenery (a
      character standing at the bottom edge touches one; the floor touches three);
    - ``max_contained``: an instance lying this much inside a larger kept one is a part of it
      (a face inside a person), so the whole is kept and the part dropped;
    - ``max_characters``: keep at most this many, largest ``area * score`` first.
    """

    min_area: float = 0.01
    max_area: float = 0.6
    max_border_sides: int = 2
    max_contained: float = 0.8
    max_characters: int = 8


def parse_prompts(text: str) -> tuple[list[PromptObject], bool]:
    """Parse the user's JSON prompt text; return (objects, relative).

    Accepted: ``[{"box": [x0,y0,x1,y1]}, {"points": [[x,y]], "labels": [1]}]`` or
    ``{"relative": true, "objects": [...]}`` where relative coordinates are fractions of the
    frame (useful when shots differ in size). Empty text means "no prompts" (automatic mode).
    """
    if not text.strip():
        return [], False
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"prompts are not valid JSON: {error}") from error
    relative = False
    if isinstance(data, dict):
        relative = bool(data.get("relative", False))
        data = data.get("objects", [])
    if not isinstance(data, list):
        raise ValueError('prompts must be a list of objects like {"box": [x0, y0, x1, y1]}')
    return [_prompt_object(entry, index) for index, entry in enumerate(data)], relative


def _prompt_object(entry: Any, index: int) -> PromptObject:
    if not isinstance(entry, dict) or not ({"box", "points"} & set(entry)):
        raise ValueError(f"prompt {index} needs a 'box' and/or 'points'")
    box = entry.get("box")
    if box is not None and (len(box) != 4 or not all(isinstance(v, int | float) for v in box)):
        raise ValueError(f"prompt {index}: box must be [x0, y0, x1, y1]")
    points = entry.get("points", [])
    if not all(isinstance(p, list | tuple) and len(p) == 2 for p in points):
        raise ValueError(f"prompt {index}: points must be [[x, y], ...]")
    labels = entry.get("labels", [1] * len(points))
    if len(labels) != len(points):
        raise ValueError(f"prompt {index}: one label per point (1 = on the character, 0 = not)")
    return PromptObject(
        box=tuple(float(v) for v in box) if box is not None else None,
        points=tuple((float(x), float(y)) for x, y in points),
        labels=tuple(int(v) for v in labels),
    )


class _DropSam2Info(logging.Filter):
    """sam2 logs "Computing image embeddings..." and "Image embeddings computed." on the root logger
    for every image it embeds: two console lines per frame in ComfyUI. Its warnings still pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or f"{os.sep}sam2{os.sep}" not in record.pathname


@contextmanager
def quiet_sam2() -> Iterator[None]:
    """Silence sam2's per-image INFO lines for the duration of one call."""
    quiet = _DropSam2Info()
    root = logging.getLogger()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)


def segment_prompted(predictor: Any, image: np.ndarray, objects: Sequence[PromptObject],
                     relative: bool = False) -> list[Instance]:
    """One instance per prompt object (empty masks dropped), with a ``SAM2ImagePredictor``."""
    with quiet_sam2():
        predictor.set_image(image)
    height, width = image.shape[:2]
    scale = np.array([width, height], dtype=np.float32) if relative else np.ones(2, np.float32)
    instances = []
    for obj in objects:
        box = np.array(obj.box, np.float32).reshape(2, 2) * scale if obj.box else None
        points = np.array(obj.points, np.float32) * scale if obj.points else None
        masks, scores, _ = predictor.predict(
            point_coords=points, point_labels=np.array(obj.labels) if obj.points else None,
            box=box.reshape(4) if box is not None else None, multimask_output=False,
        )
        instance = make_instance(masks[0] > 0, float(scores[0]), "prompt")
        if instance is not None:
            instances.append(instance)
    return instances


def segment_automatic(generator: Any, image: np.ndarray) -> list[Instance]:
    """Every instance ``SAM2AutomaticMaskGenerator`` finds, each with its own mask."""
    instances = []
    with quiet_sam2():
        records = generator.generate(image)
    for record in records:
        instance = make_instance(np.asarray(record["segmentation"], bool),
                                 float(record.get("predicted_iou", 0.0)), "auto")
        if instance is not None:
            instances.append(instance)
    return instances


def make_instance(mask: np.ndarray, score: float, source: str) -> Instance | None:
    """An ``Instance`` for a non-empty mask, None for an empty one."""
    box = mask_box(mask)
    if box is None:
        return None
    return Instance(mask=mask, box=box, area=int(mask.sum()), score=score, source=source)


def select_characters(instances: Sequence[Instance], rules: CharacterRules) -> list[Instance]:
    """Automatic mode: the instances that look like characters, by ``rules`` (see its docstring)."""
    if not instances:
        return []
    height, width = instances[0].mask.shape
    frame_area = float(height * width)
    candidates = [
        inst for inst in instances
        if rules.min_area <= inst.area / frame_area <= rules.max_area
        and border_sides(inst.box, width, height) <= rules.max_border_sides
    ]
    kept: list[Instance] = []
    for inst in sorted(candidates, key=lambda i: i.area, reverse=True):
        if any(contained_share(inst, bigger) > rules.max_contained for bigger in kept):
            continue
        kept.append(inst)
    kept.sort(key=lambda inst: inst.area * max(inst.score, 1e-6), reverse=True)
    return kept[: rules.max_characters]


def border_sides(box: tuple[int, int, int, int], width: int, height: int) -> int:
    """How many frame edges (left, top, right, bottom) a box touches."""
    x0, y0, x1, y1 = box
    return int(x0 <= 0) + int(y0 <= 0) + int(x1 >= width) + int(y1 >= height)


def contained_share(inner: Instance, outer: Instance) -> float:
    """Share of ``inner``'s pixels that lie inside ``outer``."""
    return float(np.logical_and(inner.mask, outer.mask).sum()) / max(inner.area, 1)


def cutout_rgba(image: np.ndarray, mask: np.ndarray, margin: int = 0
                ) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The character cropped to its mask's box (plus ``margin`` px), alpha = mask (0 or 255)."""
    box = mask_box(mask)
    if box is None:
        raise ValueError("cannot cut out an empty mask")
    height, width = mask.shape
    x0, y0, x1, y1 = box
    x0, y0 = max(x0 - margin, 0), max(y0 - margin, 0)
    x1, y1 = min(x1 + margin, width), min(y1 + margin, height)
    rgba = np.empty((y1 - y0, x1 - x0, 4), np.uint8)
    rgba[..., :3] = image[y0:y1, x0:x1, :3]
    rgba[..., 3] = np.where(mask[y0:y1, x0:x1], 255, 0)
    return rgba, (x0, y0, x1, y1)


def hole_mask(characters: Sequence[Instance], shape: tuple[int, int]) -> np.ndarray:
    """The union of the characters' masks: what inpainting must fill in the background."""
    hole = np.zeros(shape, bool)
    for inst in characters:
        hole |= inst.mask
    return hole


def parse_color(text: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` or ``"r,g,b"`` -> an RGB tuple."""
    value = text.strip()
    if value.startswith("#") and len(value) == 7 and all(ch in "0123456789abcdefABCDEF" for ch in value[1:]):
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
    parts = [p.strip() for p in value.split(",")]
    if len(parts) == 3 and all(p.isdigit() and int(p) <= 255 for p in parts):
        return tuple(int(p) for p in parts)  # type: ignore[return-value]
    raise ValueError(f"colour {quoted(text, 20)} must be '#RRGGBB' or 'r,g,b'")


def make_predictor(model: Any) -> Any:
    """A ``SAM2ImagePredictor`` around a loaded model (prompted mode)."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    return SAM2ImagePredictor(model)


def make_generator(model: Any, points_per_side: int = 16, pred_iou_thresh: float = 0.8,
                   stability_score_thresh: float = 0.9) -> Any:
    """A ``SAM2AutomaticMaskGenerator`` (automatic mode); its cost grows with points_per_side²."""
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

    return SAM2AutomaticMaskGenerator(
        model, points_per_side=points_per_side, pred_iou_thresh=pred_iou_thresh,
        stability_score_thresh=stability_score_thresh, output_mode="binary_mask",
    )
