"""Which clips a shot gives for a video model: frame-count rule, frame rate, duration window, bucket.

Every video model fixes how many frames a training clip may have, because its VAE compresses time
by 4 and keeps the first frame apart: Wan 2.x and HunyuanVideo need N*4+1 frames (musubi-tuner's
``docs/dataset_config.md``: other counts are truncated to the nearest N*4+1), and so does CogVideoX,
which is conditioned on ``num_seconds * fps + 1`` = 6 s * 8 fps + 1 = 49 frames (diffusers' CogVideoX
pipeline docstring). musubi-tuner reads a video frame by frame without resampling, so the clip's own
frame rate must already be the model's: 16 fps for Wan, 24 fps for HunyuanVideo (its dataset docs),
8 fps for CogVideoX. Frame ranges per model are the caption guide's (Wan 16-81, HunyuanVideo 16-49,
CogVideoX 16-49), rounded in to the rule. A clip never crosses a cut: it is planned inside one shot,
with a source frame of margin at each end (a cut detector can be a frame late).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ...choices import one_of, pick


@dataclass(frozen=True)
class ModelClipRule:
    """A video model's clip format."""

    name: str
    fps: float
    step: int  # frame counts are step * N + 1
    min_frames: int
    max_frames: int
    resolution: tuple[int, int]  # (width, height) of the model's usual landscape training size
    bucket_step: int = 16

    def valid(self, frames: int) -> bool:
        return self.min_frames <= frames <= self.max_frames and (frames - 1) % self.step == 0

    def largest_at_most(self, frames: int) -> int:
        """The longest allowed count not above ``frames`` (0 when none is)."""
        frames = min(frames, self.max_frames)
        count = (frames - 1) // self.step * self.step + 1 if frames >= 1 else 0
        return count if count >= self.min_frames else 0


MODEL_RULES = {
    "wan": ModelClipRule("wan", 16.0, 4, 17, 81, (832, 480)),
    "hunyuan_video": ModelClipRule("hunyuan_video", 24.0, 4, 17, 49, (960, 544)),
    "cogvideox": ModelClipRule("cogvideox", 8.0, 4, 17, 49, (720, 480)),
}


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


def rule_for(model: str) -> ModelClipRule:
    return pick(MODEL_RULES, model, "video model")


@dataclass(frozen=True)
class ClipOptions:
    """How to cut clips; every field goes into the stage key."""

    model: str = "wan"
    min_s: float = 2.0
    max_s: float = 5.0
    split_long: bool = True
    max_per_shot: int = 4
    resolution: int = 0  # the bucket's short side; 0 = the model's usual size
    crf: int = 18
    preset: str = "medium"

    def validate(self) -> ModelClipRule:
        rule = rule_for(self.model)
        if not 0 < self.min_s <= self.max_s:
            raise ValueError(f"clip duration window {self.min_s}-{self.max_s} s is empty")
        if clip_frames(rule, self.min_s, self.max_s, math.inf) == 0:
            raise ValueError(f"no {rule.name} clip fits {self.min_s}-{self.max_s} s: at {rule.fps:g} fps it "
                             f"takes {rule.min_frames}-{rule.max_frames} frames ({rule.step}N+1)")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"crf {self.crf} is not in 0-51")
        one_of(self.preset, X264_PRESETS, "x264 preset")
        return rule


@dataclass(frozen=True)
class ShotSpan:
    """One shot of the source: frames ``first`` to ``last`` (inclusive) and their times."""

    shot: int
    first: int
    last: int
    start_s: float
    end_s: float  # the last frame's time plus one source frame
    inner_start_s: float = 0.0  # the times of the second and the second-to-last frames: a clip's
    inner_end_s: float = 0.0  # frames lie between them (one frame of margin at each cut)


@dataclass(frozen=True)
class ClipPlan:
    """One clip to write: where it starts in the source, how many frames at which rate."""

    shot: int
    part: int
    start_s: float
    frames: int
    fps: float
    first: int  # the shot's source frames the clip may use (a clip never leaves its shot) ...
    last: int
    first_s: float  # ... and their presentation times, which bound it (frame numbers guessed after
    last_s: float  # a seek into variable-rate footage would not)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def name(self) -> str:
        return f"shot{self.shot:04d}_{self.part:02d}"

    def output_times(self) -> list[float]:
        return [self.start_s + k / self.fps for k in range(self.frames)]


def clip_frames(rule: ModelClipRule, min_s: float, max_s: float, available_s: float) -> int:
    """The longest allowed frame count lasting between ``min_s`` and ``max_s`` and fitting
    ``available_s``; 0 when none does."""
    longest = math.floor(min(max_s, available_s) * rule.fps + 1e-6)
    count = rule.largest_at_most(longest)
    return count if count and count >= math.ceil(min_s * rule.fps - 1e-6) else 0


def shot_spans(cuts: Sequence[int], times: Sequence[float], fps: float) -> list[ShotSpan]:
    """Shots between the cuts (frame indices where a shot starts), timed by the frames' own
    presentation times ``times``; a shot ends one nominal source frame after its last frame."""
    count = len(times)
    bounds = [0, *sorted(c for c in cuts if 0 < c < count), count]
    return [ShotSpan(shot, first, end - 1, times[first], times[end - 1] + 1.0 / fps,
                     times[min(first + 1, end - 1)], times[max(end - 2, first)])
            for shot, (first, end) in enumerate(zip(bounds, bounds[1:], strict=False)) if end > first]


def plan_shot(span: ShotSpan, rule: ModelClipRule, options: ClipOptions, source_fps: float) -> list[ClipPlan]:
    """The clips of one shot, spread evenly over it; empty when the shot is too short."""
    margin = 1.0 / source_fps
    start, end = span.start_s + margin, span.end_s - margin
    frames = clip_frames(rule, options.min_s, options.max_s, end - start)
    if frames == 0:
        return []
    length = frames / rule.fps
    count = max(1, min(options.max_per_shot, math.floor((end - start) / length + 1e-9))) if options.split_long else 1
    gap = (end - start - count * length) / (count + 1)
    return [ClipPlan(span.shot, part, round(start + gap + part * (length + gap), 6), frames, rule.fps,
                     span.first + 1, span.last - 1, span.inner_start_s, span.inner_end_s) for part in range(count)]


def plan_clips(cuts: Sequence[int], times: Sequence[float], source_fps: float, options: ClipOptions
               ) -> tuple[list[ClipPlan], list[ShotSpan]]:
    """Every clip of the video, in time order, and the shots too short to give one."""
    rule = options.validate()
    clips: list[ClipPlan] = []
    skipped: list[ShotSpan] = []
    for span in shot_spans(cuts, times, source_fps):
        planned = plan_shot(span, rule, options, source_fps)
        clips += planned
        if not planned:
            skipped.append(span)
    return clips, skipped


def bucket_size(width: int, height: int, rule: ModelClipRule, short_side: int = 0) -> tuple[int, int]:
    """A (width, height) near the model's training area with the source's aspect, multiples of the
    bucket step, never larger than the source (no upscaling)."""
    base_w, base_h = rule.resolution
    if short_side:
        base_w, base_h = round(base_w * short_side / base_h), short_side
    area = min(base_w * base_h, width * height)
    aspect = width / height
    step = rule.bucket_step
    out_w = max(step, math.floor(math.sqrt(area * aspect) / step) * step)
    out_h = max(step, math.floor(math.sqrt(area / aspect) / step) * step)
    return min(out_w, width // step * step or step), min(out_h, height // step * step or step)
