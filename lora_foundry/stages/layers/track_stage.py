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

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ...media import images
from ...media.masks import mask_box
from ...models.handle import ModelHandle, all_on_device
from ...progress import Progress
from ...scale.local import runner_for
from ...scale.units import Kept, Runner, Send, Unit
from ...workspace import Handle, Item, NewItem, Workspace, remote
from ..units_stage import folder_job, run_planned, units_of
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


def track_layers(ws: Workspace, frames: Handle, sam: ModelHandle, options: SplitOptions,
                 progress: Progress | None = None, clip: Any | None = None, redetect_every: int = 0,
                 runner: Runner | None = None) -> Handle:
    """Layer split with tracking through each shot; returns the handle of all cut-outs and backgrounds.

    ``redetect_every`` > 0 also looks for characters on every n-th frame of a shot (the same way
    as on its first frame) and tracks those that overlap no tracked character from there on, up
    to ``options.rules.max_characters`` per shot: characters who enter mid-shot are kept too.

    Each shot is one unit (``track_shot_unit``), run in this process or, with ``runner`` (a Ray
    cluster), on one actor per slot that opens the same SAM 2 (and CLIP) files once and keeps
    them, asking for a GPU when the model's device is one. In this process SAM 2 (and CLIP) visit
    the compute device once for the whole run, not once per shot (each visit costs two copies of
    the weights).
    """
    options.validate(clip)
    if redetect_every < 0:
        raise ValueError("redetect_every must be >= 0 (0 = find characters on each shot's first frame only)")
    check_tracker(sam.model)
    items = ws.items(frames)
    shots = shots_in_order(items)
    params = {**options.key_params(clip), "redetect_every": redetect_every}
    with ws.stage("layer_track", TRACK_VERSION, params, inputs=[frames], model=sam.identity, label="layers") as st:
        if not st.complete:
            tags = ws.tags(frames) if options.text_rule() is not None else {}
            models = _sources(sam, clip) if runner is not None else (sam, clip)
            with all_on_device(*((sam, clip) if runner is None else ())):
                _track_shots(runner_for(runner, 1, len(shots)), st, shots, TrackSettings(options, redetect_every, tags),
                             models, progress)
        return st.handle


@dataclass(frozen=True)
class TrackSettings:
    """What every shot of a run is tracked with: the split options, how often to look for new
    characters, and the frames' inherited tags (only when a text prompt adds its phrase)."""

    options: SplitOptions
    redetect_every: int
    tags: dict[int, list[str]]


@dataclass(frozen=True)
class TrackShot:
    """One shot as a unit: where its stage writes, its frames, its place in the output order, the
    settings, and the models: ``ModelHandle``s this process holds (a run here), or the
    ``Sam2Source`` (and ``ClipSource``) a worker opens and keeps between shots."""

    stage: remote.StageJob
    unit: str
    order: int
    shot: tuple[Item, ...]
    settings: TrackSettings
    models: tuple[Any, Any]


def _sources(sam: ModelHandle, clip: Any | None) -> tuple[Any, Any]:
    """The files a worker opens for ``sam`` (and ``clip``); refused for models not opened from a file."""
    from ...models.sam2_model import Sam2Source

    if not isinstance(sam.details, Sam2Source):
        raise ValueError("this SAM 2 model cannot be opened on a Ray worker (it was not opened from a file by "
                         "LF SAM2 Loader)")
    from ...models.clip_model import source_of

    return sam.details, source_of(clip) if clip is not None else None


def _opened(models: tuple[Any, Any], kept: Kept) -> tuple[ModelHandle, Any]:
    """The unit's models: as given when this process holds them, else opened once per worker."""
    from ...models.sam2_model import Sam2Source

    sam, clip = models
    if not isinstance(sam, Sam2Source):
        return sam, clip

    def open_both() -> tuple[ModelHandle, Any]:
        from ...models.clip_model import open_source
        from ...models.sam2_model import open_sam2_source

        opened = open_sam2_source(sam)
        check_tracker(opened.model)  # once per model a worker opens, like the driver's once per run
        return opened, open_source(clip) if clip is not None else None

    return kept.get(models, open_both)


def track_shot_unit(job: TrackShot, send: Send, kept: Kept) -> None:
    """In a worker (or this process): find the shot's characters, track them, write every frame's
    layers, send one progress message per frame, then the shot's record. The tracker was checked
    once: by ``track_layers`` for a run here, when a worker opened it otherwise."""
    st = remote.RemoteStage(job.stage, send)
    sam, clip = _opened(job.models, kept)
    options = job.settings.options
    with all_on_device(sam, clip):
        finder = NewCharacters(make_segmenter(sam, options, clip), job.shot, job.settings.redetect_every,
                               options.rules.max_characters)
        done = iter(range(1, len(job.shot) + 1))
        outputs = track_one_shot(st, sam.model, job.shot, finder, parse_color(options.plain_color), options.margin,
                                 job.settings.tags, lambda: send(("progress", next(done), len(job.shot))))
    st.emit(job.unit, job.order, outputs)


def _track_shots(runner: Runner, st: Any, shots: list[list[Item]], settings: TrackSettings,
                 models: tuple[Any, Any], progress: Progress | None) -> None:
    """Every unfinished shot as a unit on ``runner``; records are committed here, once each, and
    one bar counts frames over all shots (shots an earlier run did count as done): ``units_stage``."""
    runner.check_shared(st.ws.root)
    stage = folder_job(st)
    resources = getattr(models[0], "resources", {"num_cpus": 1})  # a Sam2Source's; a run here asks nothing
    units = [f"shot:{shot[0].id}" for shot in shots]
    orders = list(itertools.accumulate((len(shot) for shot in shots), initial=0))

    def shot_unit(number: int) -> Unit:
        return Unit(f"tracking {units[number]}", track_shot_unit,
                    TrackShot(stage, units[number], orders[number], tuple(shots[number]),
                              _for_shot(settings, shots[number]), models), resources, keeps=True)

    run_planned(runner, units_of(st, units, [len(shot) for shot in shots], shot_unit), progress)


def _for_shot(settings: TrackSettings, shot: list[Item]) -> TrackSettings:
    """The settings with only this shot's tags (a unit carries what it needs, not the whole run's)."""
    return replace(settings, tags={item.id: settings.tags[item.id] for item in shot if item.id in settings.tags})


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
