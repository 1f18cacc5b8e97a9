"""Generated footage with planted ground truth for the clip tests: every frame carries its own index
as a barcode (16 blocks of 16 px, readable after H.264 and a crop), shots differ strongly (the cut
detector finds them), and frame timestamps may be irregular (variable frame rate)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

BITS = 12
BLOCK = 16
TOP = 12  # rows above the barcode: a bucket crop may take a few


def frame_picture(index: int, shot: int, width: int, height: int, phase: float) -> np.ndarray:
    """A textured picture unique to ``shot`` (moving stripes) with ``index`` as a barcode."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.array([(60, 200, 40), (220, 60, 60), (40, 60, 220), (230, 230, 90), (30, 30, 30),
                     (160, 90, 200)][shot % 6], np.float32)
    stripes = 0.5 + 0.5 * np.sin((x + phase) / (6 + 3 * shot) + y / (9 + 2 * shot))
    rgb = (base[None, None, :] * (0.55 + 0.45 * stripes[..., None])).astype(np.uint8)
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        rgb[TOP:TOP + BLOCK, 8 + bit * BLOCK:8 + (bit + 1) * BLOCK] = value
    rgb[TOP + BLOCK:TOP + BLOCK + 4, 8:8 + BITS * BLOCK] = 128
    return rgb


def read_barcode(rgb: np.ndarray, offset_y: int = 0, scale: float = 1.0) -> int:
    """The index planted by ``frame_picture`` in a (possibly cropped by ``offset_y``) frame."""
    value = 0
    for bit in range(BITS):
        cy = round((TOP + BLOCK / 2) * scale) - offset_y
        cx = round((8 + bit * BLOCK + BLOCK / 2) * scale)
        half = max(2, round(BLOCK * scale / 4))
        if rgb[cy - half:cy + half, cx - half:cx + half].mean() > 128:
            value |= 1 << bit
    return value


def make_video(path: Path, shot_frames: list[int], *, fps: Fraction = Fraction(30000, 1001),
               slow_shots: frozenset[int] = frozenset(), width: int = 320, height: int = 180,
               gop: int = 48) -> list[float]:
    """Write an H.264 MP4 of the shots; frames of ``slow_shots`` are shown twice as long (their
    timestamps step by two ticks: a variable frame rate). Returns each frame's time in seconds."""
    import av

    times, tick = [], 0
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = 1 / fps
        stream.options = {"crf": "16", "g": str(gop), "preset": "veryfast"}
        index = 0
        for shot, count in enumerate(shot_frames):
            for local in range(count):
                frame = av.VideoFrame.from_ndarray(frame_picture(index, shot, width, height, 3.0 * local),
                                                   format="rgb24")
                frame.pts = tick
                times.append(float(tick / fps))
                tick += 2 if shot in slow_shots else 1
                index += 1
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return times


def shot_of_index(index: int, shot_frames: list[int]) -> int:
    edges = np.cumsum(shot_frames)
    return int(np.searchsorted(edges, index, side="right"))


def decode_clip(path: Path) -> tuple[list[np.ndarray], float, int, str]:
    """(RGB frames, average frame rate, declared frame count, codec) of a written clip."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, float(stream.average_rate), stream.frames, stream.codec_context.name


def textured_plate(seed: int = 7, size: tuple[int, int] = (1800, 1200)) -> np.ndarray:
    """A blurred-noise plate with rectangles on it: corners for a tracker to follow."""
    import cv2

    rng = np.random.default_rng(seed)
    plate = cv2.GaussianBlur(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8), (0, 0), 3)
    for _ in range(400):
        x, y = int(rng.integers(0, size[0] - 40)), int(rng.integers(0, size[1] - 40))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(plate, (x, y), (x + int(rng.integers(8, 40)), y + int(rng.integers(8, 40))), colour, -1)
    return plate


def camera_window(plate: np.ndarray, cx: float, cy: float, scale: float = 1.0,
                  size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """What a camera centred at (cx, cy) on the plate sees, taking in ``scale`` x twice its frame."""
    import cv2

    width, height = size
    w, h = width * 2 * scale, height * 2 * scale
    matrix = np.array([[w / width, 0, cx - w / 2], [0, h / height, cy - h / 2]], np.float32)
    return cv2.warpAffine(plate, matrix, size, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_AREA)


def make_camera_video(path: Path, shots: list, frames_per_shot: int, fps: int = 24) -> None:
    """An MP4 of shots, each a camera path ``k -> (cx, cy[, scale])`` over its own plate, or a
    tuple (path, plate seed, gain, level): pixels = plate * gain + level (dark shots, repeated shots)."""
    import av

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 320, 180, "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for number, shot in enumerate(shots):
            # by default shots differ in brightness, so the cut detector sees them
            camera_path, seed, gain, level = shot if isinstance(shot, tuple) else (
                shot, number + 1, 0.5, (0, 120, 60, 180)[number % 4])
            plate = (textured_plate(seed=seed) * gain + level).clip(0, 255).astype(np.uint8)
            for k in range(frames_per_shot):
                frame = av.VideoFrame.from_ndarray(camera_window(plate, *camera_path(k)), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
