"""Pose tags from keypoints: action, view and framing, by rules on COCO-17 body geometry.

Why rules: a pose LoRA needs frames of one action and captions that say it; a trained action
classifier would be one more set of weights. These rules read the geometry any RTMPose/DWPose/RTMO
model gives (the first 17 keypoints are COCO body in all of them), are cheap and explainable,
and docs/understanding.md lists them. Walking and running also use motion across the frames of a
shot (hip speed in torso lengths per second) when the caller gives it; camera motion confounds
it, so the stride rule must agree for running.

Keypoints are pixels ``[K, 2]`` with scores ``[K]``; a point counts when its score >= min_score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

NOSE, L_EYE, R_EYE, L_EAR, R_EAR = 0, 1, 2, 3, 4
L_SHO, R_SHO, L_ELB, R_ELB, L_WRI, R_WRI = 5, 6, 7, 8, 9, 10
L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANK, R_ANK = 11, 12, 13, 14, 15, 16
ACTIONS = ("standing", "walking", "running", "jumping", "sitting", "lying")
VIEWS = ("front view", "three-quarter view", "side view", "back view")
FRAMINGS = ("close-up", "upper body", "full body")


@dataclass(frozen=True)
class Body:
    """One instance's keypoints with visibility, plus the image size they live in."""

    points: np.ndarray  # [K, 2]
    visible: np.ndarray  # [K] bool: score >= min_score and inside the image
    width: int
    height: int

    def seen(self, *indices: int) -> bool:
        return all(bool(self.visible[i]) for i in indices)

    def any_seen(self, *indices: int) -> bool:
        return any(bool(self.visible[i]) for i in indices)

    def mid(self, *indices: int) -> np.ndarray | None:
        idx = [i for i in indices if self.visible[i]]
        return self.points[idx].mean(axis=0) if idx else None

    def torso_length(self) -> float | None:
        shoulders, hips = self.mid(L_SHO, R_SHO), self.mid(L_HIP, R_HIP)
        if shoulders is None or hips is None:
            return None
        return float(np.linalg.norm(shoulders - hips)) or None


def make_body(keypoints: np.ndarray, scores: np.ndarray, width: int, height: int, min_score: float = 0.3
              ) -> Body:
    kp = np.asarray(keypoints, np.float32)[:17]
    sc = np.asarray(scores, np.float32)[:17]
    inside = (kp[:, 0] >= 0) & (kp[:, 0] < width) & (kp[:, 1] >= 0) & (kp[:, 1] < height)
    return Body(kp, (sc >= min_score) & inside, int(width), int(height))


def framing(body: Body) -> str | None:
    """full body when an ankle is in frame; close-up when the head fills it or no shoulders show;
    upper body otherwise (shoulders seen)."""
    if body.any_seen(L_ANK, R_ANK) and body.any_seen(L_HIP, R_HIP, L_KNEE, R_KNEE):
        return "full body"
    head = body.any_seen(NOSE, L_EYE, R_EYE)
    if body.seen(L_EYE, R_EYE):
        eye_gap = float(np.linalg.norm(body.points[L_EYE] - body.points[R_EYE]))
        if eye_gap >= 0.12 * body.width:
            return "close-up"
    if head and not body.any_seen(L_SHO, R_SHO):
        return "close-up"
    if body.any_seen(L_SHO, R_SHO):
        return "upper body"
    return None


def view(body: Body) -> str | None:
    """front / three-quarter / side / back from face points and shoulder geometry.

    COCO "left" is the person's left: facing the camera, the left shoulder is on the image's
    right. Shoulder width is compared with the torso length (a side view has narrow shoulders).
    """
    face = [i for i in (NOSE, L_EYE, R_EYE) if body.visible[i]]
    torso = body.torso_length()
    ratio = None
    facing_camera = None
    if body.seen(L_SHO, R_SHO):
        dx = float(body.points[L_SHO, 0] - body.points[R_SHO, 0])
        facing_camera = dx > 0
        if torso:
            ratio = abs(dx) / torso
    if not face:
        if body.any_seen(L_SHO, R_SHO, L_EAR, R_EAR):
            return "back view" if ratio is None or ratio >= 0.35 else "side view"
        return None
    if ratio is not None and ratio < 0.35:
        return "side view"
    if ratio is not None and facing_camera is False and len(face) <= 1:
        return "back view"
    if not body.seen(L_EYE, R_EYE):
        return "side view" if len(face) <= 1 or ratio is None else "three-quarter view"
    eyes_mid = (body.points[L_EYE] + body.points[R_EYE]) / 2
    eye_gap = float(np.linalg.norm(body.points[L_EYE] - body.points[R_EYE])) or 1.0
    offset = abs(float(body.points[NOSE, 0] - eyes_mid[0])) / eye_gap if body.visible[NOSE] else 0.0
    if offset > 0.3 or (ratio is not None and ratio < 0.6):
        return "three-quarter view"
    return "front view"


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> float:
    """Angle at ``b`` in degrees (180 = straight)."""
    u, v = a - b, c - b
    cos = float(u @ v) / max(float(np.linalg.norm(u) * np.linalg.norm(v)), 1e-6)
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


def _knee_angles(body: Body) -> list[float]:
    legs = ((L_HIP, L_KNEE, L_ANK), (R_HIP, R_KNEE, R_ANK))
    return [_angle(*(body.points[i] for i in leg)) for leg in legs if body.seen(*leg)]


def _thigh_tilts(body: Body) -> list[float]:
    """Thigh angle from vertical, degrees (0 = hanging straight down, 90 = horizontal)."""
    tilts = []
    for hip, knee in ((L_HIP, L_KNEE), (R_HIP, R_KNEE)):
        if body.seen(hip, knee):
            d = body.points[knee] - body.points[hip]
            tilts.append(float(np.degrees(np.arctan2(abs(d[0]), max(d[1], 1e-6)))) if d[1] > 0 else 90.0)
    return tilts


def action(body: Body, speed: float | None = None, lift: float | None = None) -> str | None:
    """standing / walking / running / jumping / sitting / lying.

    ``speed``: hip speed in torso lengths per second within the shot; ``lift``: how far the hips
    are above their median height in the shot, in torso lengths (both optional).
    """
    shoulders, hips = body.mid(L_SHO, R_SHO), body.mid(L_HIP, R_HIP)
    torso = body.torso_length()
    if shoulders is None or hips is None or torso is None:
        return None
    axis = shoulders - hips
    torso_tilt = float(np.degrees(np.arctan2(abs(axis[0]), max(-axis[1], 1e-6)))) if axis[1] < 0 else 90.0
    if torso_tilt > 60:
        return "lying"
    if lift is not None and lift > 0.35:
        return "jumping"
    tilts, knees = _thigh_tilts(body), _knee_angles(body)
    if tilts and min(tilts) > 55 and (not knees or min(knees) < 140):
        return "sitting"
    stride = None
    if body.seen(L_ANK, R_ANK):
        stride = abs(float(body.points[L_ANK, 0] - body.points[R_ANK, 0])) / torso
    if speed is not None:
        if speed >= 1.5 and (stride is None or stride >= 0.5):
            return "running"
        if speed >= 0.25:
            return "walking"
    if stride is not None:
        bent = bool(knees) and min(knees) < 130
        if stride >= 0.9 and bent and torso_tilt > 8:
            return "running"
        if stride >= 0.45:
            return "walking"
    if knees and min(knees) >= 150 or (tilts and max(tilts) < 25):
        return "standing"
    return None


def motion_cues(times: Sequence[float], bodies: Sequence[Body]) -> list[tuple[float | None, float | None]]:
    """(speed, lift) per body of ONE track (one character in one shot, in time order)."""
    hips = [b.mid(L_HIP, R_HIP) for b in bodies]
    torsos = [b.torso_length() for b in bodies]
    valid = [i for i, (h, t) in enumerate(zip(hips, torsos, strict=True)) if h is not None and t]
    out: list[tuple[float | None, float | None]] = [(None, None)] * len(bodies)
    if len(valid) < 3:
        return out
    median_y = float(np.median([hips[i][1] for i in valid]))  # type: ignore[index]
    median_torso = float(np.median([torsos[i] for i in valid]))
    for pos, i in enumerate(valid):
        j = valid[pos - 1] if pos > 0 else valid[pos + 1]
        dt = abs(times[i] - times[j]) or 1.0
        dx = abs(float(hips[i][0] - hips[j][0]))  # type: ignore[index]
        speed = dx / median_torso / dt
        lift = (median_y - float(hips[i][1])) / median_torso  # type: ignore[index]
        out[i] = (speed, lift)
    return out


def tags_for(body: Body, speed: float | None = None, lift: float | None = None) -> dict[str, str | None]:
    return {"action": action(body, speed, lift), "view": view(body), "framing": framing(body)}
