"""Pose tagging as a workspace stage.

One unit per item (keypoints for the item's subject box: the alpha box of a cut-out (its ``box``
annotation is in frame coordinates, the cut-out is a crop), else a ``box`` annotation of a whole
frame, else the whole image), then one final unit that groups items into tracks (same source,
shot and cluster, one item per frame) for the motion cues and writes the tags.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from ... import names
from ...media import images
from ...models.handle import all_on_device
from ...progress import Progress
from ...workspace import Handle, Workspace
from . import pose
from .tags import merged, subject_box

FINAL_UNIT = "tags"


def _keypoints_unit(pose_model: Any, item: Any, boxes: dict[int, Any]) -> dict[str, Any]:
    from ...models.pose_model import estimate

    rgba = images.load_image(item.path)
    has_alpha = images.has_alpha(rgba)
    box = subject_box(rgba) if has_alpha else (boxes.get(item.id) or subject_box(rgba))
    bgr = np.ascontiguousarray(images.flatten(rgba, images.GREY)[..., ::-1])
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
            track = item.meta.get(names.META_TRACK)
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
    bodies = {item.id: pose.make_body(poses[item.id]["points"], poses[item.id]["scores"],
                                   poses[item.id]["width"], poses[item.id]["height"], min_score)
              for item in items}
    motion: dict[int, tuple[float | None, float | None]] = {}
    for track in _tracks(items, ws.annotations(handle, names.CLUSTER)):
        cues = pose.motion_cues([m.time_s for m in track], [bodies[m.id] for m in track])
        motion.update({m.id: cue for m, cue in zip(track, cues, strict=True)})
    inherited = ws.tags(handle)
    out = {}
    for item in items:
        speed, lift = motion.get(item.id, (None, None))
        tags = pose.tags_for(bodies[item.id], speed, lift)
        out[item.id] = {names.POSE_TAGS: tags,
                        names.TAGS: merged(inherited, item.id, [t for t in tags.values() if t])}
    return out


def pose_stage(ws: Workspace, handle: Handle, pose_model: Any, min_score: float = 0.3,
               progress: Progress | None = None) -> Handle:
    """Keypoints (annotation ``pose_keypoints``) and tags (``pose_tags``, ``tags``) per item; the
    pose model visits its compute device for the run."""
    items = ws.items(handle)
    boxes = ws.annotations(handle, names.BOX)
    units = [str(item.id) for item in items] + [FINAL_UNIT]
    with ws.stage("pose", 1, {"min_score": float(min_score)}, [handle], pose_model.identity,
                  label=f"{handle.label or 'frames'} · pose") as st:
        if not st.complete:
            with all_on_device(pose_model):
                for position, unit in st.pending_units(units, progress):
                    if unit == FINAL_UNIT:
                        poses = ws.annotations(st.handle, names.POSE_KEYPOINTS)
                        st.emit(FINAL_UNIT, len(items), (), pose_tag_annotations(ws, st.handle, poses, min_score))
                        continue
                    item = items[position]
                    st.emit(unit, position, [item.id],
                            {item.id: {names.POSE_KEYPOINTS: _keypoints_unit(pose_model, item, boxes)}})
        return st.handle
