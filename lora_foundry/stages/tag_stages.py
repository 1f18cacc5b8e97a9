"""Workspace wrappers for the pose and lighting taggers.

Pose: one unit per item (keypoints for the item's subject box: the alpha box of a cut-out (its
``box`` annotation is in frame coordinates, the cut-out is a crop), else a ``box`` annotation of a
whole frame, else the whole image), then one final unit that groups items into tracks
(same source, shot and cluster, one item per frame) for the motion cues and writes the tags.
Lighting: one unit per item; CLIP zero-shot setting/time of day when a CLIP model is given.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ..progress import Progress
from ..workspace import Handle, Workspace
from . import lighting as L
from . import pose as P
from .annotate import box_of, inherited_tags, load_array, merged, on_grey, subject_box

FINAL_UNIT = "tags"


def _keypoints_unit(pose_model: Any, item: Any, boxes: dict[int, Any]) -> dict[str, Any]:
    from ..models.pose_model import estimate

    rgba = load_array(item.path, alpha=True)
    has_alpha = rgba.ndim == 3 and rgba.shape[2] == 4
    box = subject_box(rgba) if has_alpha else (boxes.get(item.id) or subject_box(rgba))
    bgr = np.ascontiguousarray(on_grey(rgba)[..., ::-1])
    points, scores = estimate(pose_model, bgr, [box])
    return {"points": np.round(points[0], 2).tolist(), "scores": np.round(scores[0], 4).tolist(),
            "box": [round(float(v), 1) for v in box], "width": int(rgba.shape[1]), "height": int(rgba.shape[0])}


def _tracks(items: list[Any], clusters: dict[int, Any]) -> list[list[Any]]:
    """Items grouped into one character per shot, in time order: by SAM 2's ``track`` number when
    the cut-outs were tracked through the shot, else by (source, shot, cluster); groups with two
    items on one frame are dropped (without tracking we cannot tell who is who)."""
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    for item in items:
        if item.time_s is not None:
            track = item.meta.get("track")
            who = ("track", track) if track is not None else ("cluster", clusters.get(item.id))
            groups[(item.source, item.shot, who)].append(item)
    tracks = []
    for members in groups.values():
        frames = [m.frame_index for m in members]
        if len(set(frames)) == len(frames):
            tracks.append(sorted(members, key=lambda m: m.time_s))
    return tracks


def pose_tag_annotations(ws: Workspace, handle: Handle, poses: dict[int, Any], min_score: float
                         ) -> dict[int, dict[str, Any]]:
    """pose_tags and merged tags for every item with keypoints."""
    items = [item for item in ws.items(handle) if item.id in poses]
    bodies = {item.id: P.make_body(poses[item.id]["points"], poses[item.id]["scores"],
                                   poses[item.id]["width"], poses[item.id]["height"], min_score)
              for item in items}
    motion: dict[int, tuple[float | None, float | None]] = {}
    for track in _tracks(items, ws.annotations(handle, "cluster")):
        cues = P.motion_cues([m.time_s for m in track], [bodies[m.id] for m in track])
        motion.update({m.id: cue for m, cue in zip(track, cues, strict=True)})
    inherited = inherited_tags(ws, handle)
    out = {}
    for item in items:
        speed, lift = motion.get(item.id, (None, None))
        tags = P.tags_for(bodies[item.id], speed, lift)
        out[item.id] = {"pose_tags": tags,
                        "tags": merged(inherited, item.id, [t for t in tags.values() if t])}
    return out


def pose_stage(ws: Workspace, handle: Handle, pose_model: Any, min_score: float = 0.3,
               progress: Progress | None = None) -> Handle:
    """Keypoints (annotation ``pose_keypoints``) and tags (``pose_tags``, ``tags``) per item."""
    items = ws.items(handle)
    boxes = box_of(ws, handle)
    units = [str(item.id) for item in items] + [FINAL_UNIT]
    with ws.stage("pose", 1, {"min_score": float(min_score)}, [handle], pose_model.identity,
                  label=f"{handle.label or 'frames'} · pose") as st:
        if not st.complete:
            for position, unit in st.pending_units(units, progress):
                if unit == FINAL_UNIT:
                    poses = ws.annotations(st.handle, "pose_keypoints")
                    st.emit(FINAL_UNIT, len(items), (), pose_tag_annotations(ws, st.handle, poses, min_score))
                    continue
                item = items[position]
                st.emit(unit, position, [item.id],
                        {item.id: {"pose_keypoints": _keypoints_unit(pose_model, item, boxes)}})
        return st.handle


def _clip_setting(clip: Any, rgb: np.ndarray, min_probability: float) -> str | None:
    from PIL import Image

    from ..models.clip_model import zero_shot

    labels = list(L.CLIP_PROMPTS)
    prompts = [L.CLIP_PROMPTS[label] for label in labels]
    (best, probability), = zero_shot(clip, [Image.fromarray(rgb[..., :3])], prompts)
    return labels[prompts.index(best)] if probability >= min_probability else None


def lighting_stage(ws: Workspace, handle: Handle, clip: Any | None = None, min_probability: float = 0.5,
                   progress: Progress | None = None) -> Handle:
    """Lighting statistics (``lighting``) and tags (``lighting_tags``, ``tags``) per item."""
    items = ws.items(handle)
    inherited = inherited_tags(ws, handle)
    params = {"rules": 1, "clip_min_probability": float(min_probability) if clip is not None else None}
    model = clip.identity if clip is not None else ""
    with ws.stage("lighting", 1, params, [handle], model, label=f"{handle.label or 'frames'} · lighting") as st:
        if not st.complete:
            for position, item in st.pending(items, progress):
                image = load_array(item.path, alpha=True)
                stats = L.measure(image)
                tags = L.tags_of(stats)
                setting = _clip_setting(clip, image, min_probability) if clip is not None else None
                if setting and setting not in tags:
                    tags.append(setting)
                st.emit(str(item.id), position, [item.id], {item.id: {
                    "lighting": stats.as_dict(), "lighting_tags": tags,
                    "tags": merged(inherited, item.id, tags)}})
        return st.handle
