"""Camera motion of a clip, measured from its frames: static, pan, tilt, zoom or handheld.

Corners are tracked between consecutive frames (OpenCV ``goodFeaturesToTrack`` + pyramidal
Lucas-Kanade) and a similarity transform is fitted to them with RANSAC
(``estimateAffinePartial2D``), so people moving in front of the camera are outliers, not camera
motion. Summed over the clip: translation as a fraction of the frame (the picture moving left
means the camera pans right), scale as a log ratio (growing means zoom in). Handheld is shake
with no direction: the frame-to-frame jitter around a smoothed path. The thresholds are the
fractions a viewer notices in a 2-5 s clip; tests check them on planted pans, tilts, zooms,
shake and stills (``tests/test_clip_motion.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

ANALYSIS_WIDTH = 320
PAN_FRACTION = 0.12  # total shift, in frame widths (heights for tilt)
ZOOM_LOG = 0.10  # total log scale change (~10 %)
SHAKE_FRACTION = 0.004  # rms frame-to-frame jitter, in frame widths


@dataclass(frozen=True)
class CameraMotion:
    label: str  # "static", "pan left", "pan right", "tilt up", "tilt down", "zoom in", "zoom out", "handheld"
    shift_x: float  # total picture shift in frame widths (positive: content moves right)
    shift_y: float  # total picture shift in frame heights (positive: content moves down)
    log_scale: float
    jitter: float
    tracked: int  # frame pairs where a transform was found

    @property
    def phrase(self) -> str:
        """The caption words: "static camera", "camera pans left", "handheld camera", ..."""
        if self.label in ("static", "handheld"):
            return f"{self.label} camera"
        verb, direction = self.label.split(" ")
        return f"camera {verb}s {direction}"


def _step(previous: np.ndarray, current: np.ndarray) -> tuple[float, float, float] | None:
    """(dx, dy, log scale) of the similarity mapping ``previous`` onto ``current``, or None."""
    import cv2

    corners = cv2.goodFeaturesToTrack(previous, maxCorners=300, qualityLevel=0.01, minDistance=6)
    if corners is None or len(corners) < 8:
        return None
    moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, corners, None, winSize=(21, 21), maxLevel=3)
    good = status.reshape(-1) == 1
    if good.sum() < 8:
        return None
    matrix, _ = cv2.estimateAffinePartial2D(corners[good], moved[good], method=cv2.RANSAC,
                                            ransacReprojThreshold=1.5)
    if matrix is None:
        return None
    scale = math.hypot(matrix[0, 0], matrix[1, 0])
    height, width = previous.shape
    # translation of the frame centre, independent of the zoom's fixed point
    centre = matrix @ np.array([width / 2, height / 2, 1.0])
    return float(centre[0] - width / 2), float(centre[1] - height / 2), math.log(max(scale, 1e-6))


def _grey(rgb: np.ndarray) -> np.ndarray:
    import cv2

    height, width = rgb.shape[:2]
    size = (ANALYSIS_WIDTH, max(8, round(height * ANALYSIS_WIDTH / width)))
    return cv2.resize(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA)


def camera_motion(frames: Iterable[np.ndarray]) -> CameraMotion:
    """Measure the camera motion over ``frames`` (RGB uint8, in order); one frame pair in memory."""
    steps, previous, size = [], None, (1, 1)
    for rgb in frames:
        grey = _grey(rgb)
        size = grey.shape[::-1]
        if previous is not None:
            found = _step(previous, grey)
            if found is not None:
                steps.append(found)
        previous = grey
    if not steps:
        return CameraMotion("static", 0.0, 0.0, 0.0, 0.0, 0)
    moves = np.array(steps)
    width, height = size
    shift_x, shift_y = moves[:, 0].sum() / width, moves[:, 1].sum() / height
    log_scale = float(moves[:, 2].sum())
    jitter = _jitter(moves[:, :2] / width)
    return CameraMotion(_label(shift_x, shift_y, log_scale, jitter), float(shift_x), float(shift_y), log_scale,
                        jitter, len(steps))


def _jitter(steps: np.ndarray) -> float:
    """RMS of the frame-to-frame shifts around their running mean (5 frames): shake, not travel."""
    if len(steps) < 3:
        return 0.0
    kernel = np.ones(5) / 5
    smooth = np.stack([np.convolve(steps[:, i], kernel, mode="same") for i in range(2)], axis=1)
    return float(np.sqrt(((steps - smooth) ** 2).sum(axis=1).mean()))


def _label(shift_x: float, shift_y: float, log_scale: float, jitter: float) -> str:
    if abs(log_scale) >= ZOOM_LOG and abs(log_scale) >= max(abs(shift_x), abs(shift_y)):
        return "zoom in" if log_scale > 0 else "zoom out"
    if max(abs(shift_x), abs(shift_y)) >= PAN_FRACTION:
        if abs(shift_x) >= abs(shift_y):
            return "pan right" if shift_x < 0 else "pan left"
        return "tilt down" if shift_y < 0 else "tilt up"
    return "handheld" if jitter >= SHAKE_FRACTION else "static"
