"""Layer split that follows each character through its shot with SAM 2's video tracking.

The per-frame split (``layers_stage.split_layers``) finds characters in every frame on its own,
so instance 0 in one frame may be instance 1 in the next and a character the automatic rules
miss for a frame is simply gone. Here the characters are found once, on the first frame of each
shot (boxes/points, automatic rules or text, exactly as the per-frame split finds them), and SAM 2
tracks each of them through the rest of the shot: every cut-out carries ``track``, the same number
for the same character throughout the shot. Outputs have the per-frame split's layout, so
inpainting, tagging and datasets take them unchanged.

One shot is one unit of work (tracking memory cannot be resumed half-way): an interrupted run
keeps its finished shots and redoes the shot it was in. Frames are read from the workspace as
SAM 2 reaches them, never all at once (see ``video_tracking``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ...media import images
from ...media.masks import mask_box
from ...models.handle import ModelHandle, all_on_device
from ...progress import Progress, ensure_progress
from ...workspace import Handle, Item, NewItem, Workspace
from .segment import Instance, parse_color
from .split import SplitOptions, make_segmenter
from .split_stage import split_frame_items
from .video_tracking import check_tracker, overlaps_any, track_shot

TRACK_VERSION = 1


def shots_in_order(items: Sequence[Item]) -> list[list[Item]]:
    """Runs of consecutive items from the same source and shot, in the order given.

    An item without a shot (an image from a folder) is a shot of its own: unrelated images are
    never tracked into each other.
    """
    shots: list[list[Item]] = []
    for item in items:
        previous = shots[-1][-1] if shots else None
        same = (previous is not None and item.shot is not None
                and (previous.source, previous.shot) == (item.source, item.shot))
        if same:
            shots[-1].append(item)
        else:
            shots.append([item])
    return shots


class FrameCounter:
    """Per-frame progress over all shots (a shot is the unit of resume, a frame the unit of report)."""

    def __init__(self, progress: Progress | None, total: int, done: int) -> None:
        self._report = ensure_progress(progress)
        self.total = total
        self.done = done
        self._report.update(done, total)

    def step(self) -> None:
        self.done += 1
        self._report.update(self.done, self.total)


def track_layers(ws: Workspace, frames: Handle, sam: ModelHandle, options: SplitOptions,
                 progress: Progress | None = None, clip: Any | None = None, redetect_every: int = 0) -> Handle:
    """Layer split with tracking through each shot; returns the handle of all cut-outs and backgrounds.

    ``redetect_every`` > 0 also looks for characters on every n-th frame of a shot (the same way
    as on its first frame) and tracks those that overlap no tracked character from there on, up
    to ``options.rules.max_characters`` per shot: characters who enter mid-shot are kept too.

    SAM 2 (and CLIP) visit the compute device once for the whole run, not once per shot: nothing
    else runs between two shots of one node, and each visit costs two copies of the weights.
    """
    options.validate(clip)
    if redetect_every < 0:
        raise ValueError("redetect_every must be >= 0 (0 = find characters on each shot's first frame only)")
    check_tracker(sam.model)
    color = parse_color(options.plain_color)
    items = ws.items(frames)
    shots = shots_in_order(items)
    params = {**options.key_params(clip), "redetect_every": redetect_every}
    with ws.stage("layer_track", TRACK_VERSION, params, inputs=[frames], model=sam.identity, label="layers") as st:
        if not st.complete:
            tags = ws.tags(frames) if options.text_rule() is not None else {}
            units = [f"shot:{shot[0].id}" for shot in shots]
            counter = FrameCounter(progress, len(items),
                                   sum(len(shot) for shot, unit in zip(shots, units, strict=True) if st.is_done(unit)))
            with all_on_device(sam, clip):
                segment = make_segmenter(sam, options, clip)
                order = 0
                for shot, unit in zip(shots, units, strict=True):
                    if not st.is_done(unit):
                        finder = NewCharacters(segment, shot, redetect_every, options.rules.max_characters)
                        outputs = track_one_shot(st, sam.model, shot, finder, color, options.margin, tags,
                                                 counter.step)
                        st.emit(unit=unit, order=order, outputs=outputs)
                    order += len(shot)
        return st.handle


class NewCharacters:
    """Who the characters of one shot are: found on its first frame, then (every ``every`` frames)
    the found ones that overlap no tracked character, up to ``limit`` in all. ``known[n]`` is
    track number n as it was found."""

    def __init__(self, segment: Callable[[np.ndarray], list[Instance]], shot: Sequence[Item], every: int,
                 limit: int) -> None:
        self._segment, self._shot, self.every, self._limit = segment, shot, every, limit
        self.known: list[Instance] = []

    def first(self, image: np.ndarray) -> list[Instance]:
        self.known = [replace(found, track=number) for number, found in enumerate(self._segment(image))]
        return self.known

    def __call__(self, frame_idx: int, tracked: list[np.ndarray]) -> list[np.ndarray]:
        room = self._limit - len(self.known)
        if room <= 0:
            return []
        fresh: list[Instance] = []
        for found in self._segment(images.load_rgb(self._shot[frame_idx].path)):
            if len(fresh) < room and not overlaps_any(found.mask, [*tracked, *(f.mask for f in fresh)]):
                fresh.append(replace(found, track=len(self.known) + len(fresh)))
        self.known += fresh
        return [found.mask for found in fresh]


def track_one_shot(st: Any, predictor: Any, shot: Sequence[Item], finder: NewCharacters,
                   color: tuple[int, int, int], margin: int, tags: dict[int, list[str]],
                   step: Callable[[], None]) -> list[NewItem]:
    """Find the characters on the shot's first frame, track them through the rest, write every frame."""
    first = shot[0]
    image = images.load_rgb(first.path)
    characters = finder.first(image)
    outputs = split_frame_items(st, first, image, characters, color, margin, tags.get(first.id, []))
    step()
    tracked = track_shot(predictor, [item.path for item in shot], [c.mask for c in characters],
                         finder if finder.every else None, finder.every)
    for index, masks in tracked:
        item = shot[index]
        found = [_follow(character, mask) for character, mask in zip(finder.known, masks, strict=True)]
        outputs += split_frame_items(st, item, images.load_rgb(item.path), [f for f in found if f is not None],
                                     color, margin, tags.get(item.id, []))
        step()
    return outputs


def _follow(character: Instance, mask: np.ndarray) -> Instance | None:
    """The character at its tracked mask (None when it is not in this frame); its score, phrase
    and track number are those it was found with. On the frame it was found, it is the finding."""
    if mask is character.mask:
        return character
    box = mask_box(mask)
    if box is None:
        return None
    return replace(character, mask=mask, box=box, area=int(mask.sum()), source="track")
