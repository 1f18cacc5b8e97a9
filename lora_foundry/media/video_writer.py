"""Writing H.264 MP4 clips with PyAV, frame by frame, atomically.

Why PyAV and not the ffmpeg CLI: frames arrive one at a time from our own decoder (a clip is
resampled by presentation time and cropped to its bucket), so nothing is held but the frame being
encoded, and no shell or extra process is involved. x264 is deterministic unless told otherwise,
so the same frames give the same bytes (a resumed run equals an uninterrupted one). The file is
written under a ``.tmp-`` name beside its target and renamed on ``close`` (``fileio.AtomicFile``, the
one owner of that): a kill leaves no clip that looks finished.
"""

from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..fileio import AtomicFile


class Mp4Writer:
    """``write(rgb)`` per frame (uint8 H x W x 3 at the writer's size), then ``close()``."""

    def __init__(self, path: Path, width: int, height: int, fps: float, *, crf: int = 18,
                 preset: str = "medium") -> None:
        import av

        if width % 2 or height % 2:
            raise ValueError(f"H.264 (yuv420p) needs even sizes, got {width}x{height}")
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"a clip needs a positive frame rate, got {fps}")
        self.path = Path(path)
        self._count = 0
        self.size = (width, height)
        self._file = AtomicFile(self.path)
        self._tmp = self._file.open()
        try:  # from here on a failure leaves no temporary file (nor an open container)
            self._container = av.open(str(self._tmp), "w", format="mp4")
            rate = Fraction(fps).limit_denominator(1001)
            stream = self._container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.time_base = 1 / rate
            stream.options = {"crf": str(int(crf)), "preset": preset}
        except BaseException:
            self.abort()
            raise
        self._stream = stream

    def write(self, rgb: np.ndarray) -> None:
        import av

        if rgb.shape[1::-1] != self.size:
            raise ValueError(f"frame is {rgb.shape[1]}x{rgb.shape[0]}, the clip {self.size[0]}x{self.size[1]}")
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"))

    def write_yuv(self, planes: np.ndarray) -> None:
        """One frame given as planar YUV 4:2:0 (``(h * 3 / 2, w)`` uint8, as PyAV's ``yuv420p``
        arrays are): handed to x264 as it is, no colour conversion."""
        import av

        width, height = self.size
        if planes.shape != (height * 3 // 2, width):
            raise ValueError(f"YUV frame is {planes.shape}, the clip needs {(height * 3 // 2, width)}")
        self._encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv420p"))

    def _encode(self, frame) -> None:
        frame.pts = self._count
        self._count += 1
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    @property
    def frames(self) -> int:
        return self._count

    def close(self) -> Path:
        """Flush the encoder, close the file and move it into place; returns the final path."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except BaseException:
            self.abort()
            raise
        return self._file.commit()

    def abort(self) -> None:
        """Drop the unfinished file (a cancel or an error while writing)."""
        with contextlib.suppress(Exception):
            self._container.close()
        self._file.discard()
