"""Video probing and sequential frame decoding.

Sequential, because on long-GOP footage an accurate seek costs as much as decoding 40-70 frames
(FIELD_NOTES). Frames nobody wants are decoded and dropped, never converted; wanted ones are
scaled by swscale straight from YUV. Frame indices count from the first frame of the file, so
resumed runs, second passes and the cut detector agree; with ``start_s > 0`` we seek and number
frames by timestamp (containers without reliable timestamps, such as AVI, are counted instead).
Animated GIF and WebP go through Pillow (``ImageSequence``): FFmpeg's WebP decoder does not
handle animated WebP, and Pillow composites GIF frames (disposal, transparency) properly.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import announce_read
from .video_types import DecodedFrame, MediaError, RawFrame, VideoInfo

logger = logging.getLogger(__name__)

PILLOW_SUFFIXES = frozenset({".gif", ".webp"})
SMALL_PICTURE = 256 * 256
"""Pictures of at most this many pixels are scaled on one thread."""
VIDEO_SUFFIXES = frozenset(".mp4 .mkv .avi .mpg .mpeg .webm .mov .m4v .ts .wmv .flv .gif .webp".split())


def _check_file(path: Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise MediaError(f"{path}: the file is empty (0 bytes)")
    return path


def _uses_pillow(path: Path) -> bool:
    return path.suffix.lower() in PILLOW_SUFFIXES


def _open_av(path: Path):
    import av

    try:
        announce_read(path)
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, OSError) as exc:
        raise MediaError(f"{path}: not a readable video file: damaged, truncated or not a video "
                         f"({exc})") from exc
    if not container.streams.video:
        container.close()
        raise MediaError(f"{path}: the file has no video stream")
    return container


def _stream_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 25.0


def _display_size(stream) -> tuple[int, int]:
    """Width and height as shown: non-square pixels (DVD, DV) are stretched to square ones."""
    width, height = stream.codec_context.width, stream.codec_context.height
    sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
    if sar and Fraction(sar) not in (0, 1):
        width = max(1, round(width * float(sar)))
    return width, height


def _first_frame_rotation(container, stream) -> int:
    """Display rotation in degrees; PyAV exposes it on frames only, so decode the first one."""
    import av

    try:
        for frame in container.decode(stream):
            return int(frame.rotation or 0)
    except av.FFmpegError:
        return 0
    return 0


def _probe_av(path: Path) -> VideoInfo:
    with _open_av(path) as container:
        stream = container.streams.video[0]
        fps = _stream_fps(stream)
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        frames = stream.frames if stream.frames > 0 else round(duration * fps)
        width, height = _display_size(stream)
        if width <= 0 or height <= 0:
            raise MediaError(f"{path}: the video stream has no picture size")
        if _first_frame_rotation(container, stream) % 180 == 90:
            width, height = height, width
        return VideoInfo(path, width, height, fps, int(frames), duration, stream.codec_context.name)


def probe_video(path: Path) -> VideoInfo:
    """Size, frame rate, frame count and codec; exact count when the container stores it."""
    path = _check_file(path)
    if _uses_pillow(path):
        from .animated import probe_animated

        return probe_animated(path)
    return _probe_av(path)


# Containers whose frames carry no trustworthy presentation timestamps (AVI stores none, and
# B-frames make PyAV's guesses run out of order; raw elementary streams have none at all): frames
# are numbered and timed by counting, and never reached by seeking.
_UNTIMED_FORMATS = frozenset({"avi", "h264", "hevc", "mpegvideo", "m4v", "rawvideo", "cavsvideo"})


def _is_timed(container) -> bool:
    return not set(container.format.name.split(",")) & _UNTIMED_FORMATS


def _seek_to(container, stream, origin: int, start_s: float) -> None:
    target = origin + int(max(0.0, start_s) / float(stream.time_base))
    container.seek(target, stream=stream, backward=True, any_frame=False)


def _frames_from(container, stream, origin: int, start_s: float, fps: float) -> Iterator[Any]:
    """Frames from a keyframe at or before ``start_s``.

    Some demuxers (MPEG-PS) land after the target; step further back until the first frame is
    early enough, decoding from the very start as the last resort.
    """
    base = float(stream.time_base)
    for back_s in (0.0, 3.0, 15.0, None):
        _seek_to(container, stream, origin, 0.0 if back_s is None else start_s - back_s)
        frames = container.decode(stream)
        first = next(frames, None)
        if first is None:
            return
        early = first.pts is None or (first.pts - origin) * base <= start_s + 0.25 / fps
        if early or back_s is None:
            yield first
            yield from frames
            return


def _timed_frames(container, stream, start_s: float, end_s: float | None, keyframes_only: bool,
                  counter: list[int]) -> Iterator[RawFrame]:
    """Frames numbered by timestamp (relative to the first frame's), reached by seeking."""
    fps, base = _stream_fps(stream), float(stream.time_base)
    if keyframes_only:
        stream.codec_context.skip_frame = "NONKEY"
    frames = container.decode(stream)
    first = next(frames, None)
    if first is None:
        return
    origin = first.pts if first.pts is not None else (stream.start_time or 0)
    if start_s > 0:
        frames = _frames_from(container, stream, origin, start_s, fps)
    else:
        frames = itertools.chain([first], frames)
    # After a seek the first index comes from its timestamp and the rest are counted (so indices
    # stay contiguous); a keyframes-only pass skips frames, so each index comes from its time.
    index, scalers = None, {}
    for frame in frames:
        time_s = (frame.pts - origin) * base if frame.pts is not None else None
        if keyframes_only or index is None:
            index = max(0, round(time_s * fps)) if time_s is not None else 0
        if time_s is None:
            time_s = index / fps
        if end_s is not None and time_s >= end_s:
            return
        if time_s >= start_s - 0.25 / fps:
            yield RawFrame(index, max(0.0, time_s), frame, scalers)
        index += 1
        counter[0] = index


def _presentation_times(path: str, stream_index: int) -> list[float]:
    """The container's presentation times of the frames, in display order, from the first one on.

    AVI stores no per-frame timestamps but the demuxer derives one per non-empty chunk, and a file
    may skip chunks (e.g. one written from frames timed 1, 2, ...: frame 0 at 0, frame 1 at 2):
    counting then puts every later frame one frame early. Packets come in decode order, so the
    times are sorted; they start at the first one, like the timed containers' (``_timed_frames``).
    Demuxing reads no pixels: a fraction of the decode's cost.
    """
    import av

    announce_read(path)
    with av.open(path) as container:
        return _demuxed_times(container, container.streams.video[stream_index])


def _demuxed_times(container, stream) -> list[float]:
    """``_presentation_times`` of an open container (demuxing it to the end)."""
    ticks = sorted(p.pts for p in container.demux(stream) if p.size and p.pts is not None)
    base = float(stream.time_base)
    return [(tick - ticks[0]) * base for tick in ticks]


def _counted_frames(container, stream, start_s: float, end_s: float | None, keyframes_only: bool,
                    counter: list[int]) -> Iterator[RawFrame]:
    """Frames numbered by counting from the start (no seeking, no skipping), timed by the
    container's presentation times (the decoded frames' own timestamps are not trustworthy here)."""
    fps, scalers = _stream_fps(stream), {}
    times = _presentation_times(container.name, stream.index)
    for index, frame in enumerate(container.decode(stream)):
        time_s = times[index] if index < len(times) else (times[-1] if times else -1 / fps) + \
            (index - len(times) + 1) / fps
        counter[0] = index + 1
        if end_s is not None and time_s >= end_s:
            return
        if time_s >= start_s - 0.25 / fps and (frame.key_frame or not keyframes_only):
            yield RawFrame(index, time_s, frame, scalers)


def _decode_av(path: Path, start_s: float, end_s: float | None, keyframes_only: bool
               ) -> Iterator[RawFrame]:
    import av

    with _open_av(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        timed = _is_timed(container)
        source = _timed_frames if timed else _counted_frames
        counter = [0]  # one past the last frame index seen, for the truncation check
        try:
            yield from source(container, stream, start_s, end_s, keyframes_only, counter)
        except av.FFmpegError as exc:
            logger.warning("%s: decoding stopped early, the file looks damaged (%s)", path, exc)
            return
        finally:
            _drain(stream)
        if timed:
            _warn_if_short(path, counter[0], stream.frames, end_s, keyframes_only)


def _drain(stream) -> None:
    """Let the decoder's frame threads finish before the stream is freed.

    Freeing a codec context (when the generator stops early: an end time, a closed consumer) waits
    for its frame threads while holding the GIL. If a Python log callback is installed (torchvision
    installs one at import, so inside ComfyUI it is), a frame thread that logs needs the GIL too:
    the whole server froze there. Flushing the decoder first runs those threads out with the GIL
    released (PyAV sends and receives without it), so the free has nothing to wait for.
    """
    import av

    try:
        for _ in stream.codec_context.decode(None):
            pass
    except (av.FFmpegError, ValueError):
        pass  # a damaged stream or one already flushed: nothing left to run out


def _warn_if_short(path: Path, decoded_to: int | None, declared: int, end_s: float | None,
                   keyframes_only: bool) -> None:
    """A file cut short often just ends; the container's own frame count tells us it did."""
    if end_s is None and not keyframes_only and declared > 0 and decoded_to is not None:
        if decoded_to < declared - 1:
            logger.warning("%s: the stream ended at frame %d of the %d the file declares "
                           "(truncated file?)", path, decoded_to, declared)


def decode_raw(path: Path, *, start_s: float = 0.0, end_s: float | None = None,
               keyframes_only: bool = False) -> Iterator[RawFrame]:
    """Decoded frames, unconverted, in order; raises MediaError when not one frame decodes."""
    path = _check_file(path)
    if _uses_pillow(path):
        from .animated import decode_animated

        source = decode_animated(path, start_s, end_s)
    else:
        source = _decode_av(path, start_s, end_s, keyframes_only)
    produced = 0
    for raw in source:
        produced += 1
        yield raw
    if produced == 0 and start_s <= 0 and not keyframes_only:
        raise MediaError(f"{path}: no frame could be decoded (truncated or damaged file?)")


def scaled_size(width: int, height: int, long_side: int | None) -> tuple[int, int]:
    """(width, height) with the long side at most ``long_side``, aspect kept; never upscales."""
    if not long_side or max(width, height) <= long_side:
        return width, height
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _scaler(raw: RawFrame, fmt: str, width: int, height: int):
    from av.video.reformatter import VideoReformatter

    key = (fmt, width, height)
    if key not in raw.scalers:
        raw.scalers[key] = VideoReformatter()
    return raw.scalers[key]


def raw_to_array(raw: RawFrame, size: tuple[int, int] | None, fmt: str = "rgb24") -> np.ndarray:
    """Convert one raw frame to uint8 RGB (``rgb24``) or grey (``gray``) at ``size`` (w, h)."""
    frame = raw.frame
    if hasattr(frame, "to_ndarray"):  # av.VideoFrame: swscale converts and scales from YUV
        quarter_turns = round((frame.rotation or 0) / 90) % 4
        width, height = size if size else (frame.width, frame.height)
        if size and quarter_turns % 2:  # ``size`` is as displayed: swap before turning
            width, height = height, width
        array = _scaler(raw, fmt, width, height).reformat(
            frame, width=width, height=height, format=fmt,
            interpolation="AREA",  # a box filter when shrinking; and faster than the default
            # swscale's slice threads cost more than they save on a tiny picture (the 64x36 cut
            # thumbnail of every frame: 0.37 -> 0.19 ms, the same pixels)
            threads=1 if width * height <= SMALL_PICTURE else None,
        ).to_ndarray()
        if quarter_turns:  # phone footage: display-matrix rotation, as ffmpeg applies it
            array = np.ascontiguousarray(np.rot90(array, k=quarter_turns))
        return array
    from PIL import Image

    image = frame if fmt == "rgb24" else frame.convert("L")
    if size and size != image.size:
        image = image.resize(size, Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def iter_frames(
    path: Path,
    *,
    start_s: float = 0.0,
    end_s: float | None = None,
    long_side: int | None = None,
    wanted: Callable[[int], bool] | None = None,
    thumb_size: tuple[int, int] | None = None,
    keyframes_only: bool = False,
    info: VideoInfo | None = None,
) -> Iterator[DecodedFrame]:
    """Decode ``path`` in order and yield the frames ``wanted(index)`` accepts, as RGB uint8.

    ``long_side`` shrinks (never enlarges) keeping the aspect; ``thumb_size=(w, h)`` gives frames
    of exactly that size for analysis. A damaged file yields what decodes, logs a warning and
    stops; MediaError if nothing decodes. ``info`` is ``probe_video(path)`` when the caller has
    it already (probing decodes a frame); probed here otherwise.
    """
    path = Path(path)
    info = info or probe_video(path)
    size = (int(thumb_size[0]), int(thumb_size[1])) if thumb_size else (
        scaled_size(info.width, info.height, long_side))
    for raw in decode_raw(path, start_s=start_s, end_s=end_s, keyframes_only=keyframes_only):
        if wanted is not None and not wanted(raw.index):
            continue
        yield DecodedFrame(raw.index, raw.time_s, raw_to_array(raw, size))


def frame_times(path: Path) -> list[float]:
    """Each frame's presentation time in seconds from the first frame, in display order, read by
    demuxing alone (no pixel is decoded): what a clip cutter plans with, whatever the frame rate
    claims (variable-rate phone footage, 29.97 fps)."""
    path = _check_file(path)
    if _uses_pillow(path):
        raise MediaError(f"{path}: animated GIF/WebP has no video stream to cut clips from")
    with _open_av(path) as container:  # opened once: the checks and the demux share it
        return _demuxed_times(container, container.streams.video[0])


def keyframe_times(path: Path, *, start_s: float = 0.0, end_s: float | None = None
                   ) -> list[tuple[int, float]]:
    """(index, time_s) of every keyframe in range, from a pass that skips non-key frames."""
    return [(raw.index, raw.time_s) for raw in
            decode_raw(path, start_s=start_s, end_s=end_s, keyframes_only=True)]
