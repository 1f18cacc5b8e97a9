"""Natural-language captions for clips: who (trigger and class, bound as for images), what they do
(action and view from the pose tags of the frames inside the clip), how the camera moves (measured
from the clip itself) and the setting (the tag union of those frames).

The guide's video captions read ``ohwx woman, walking, turns to the camera, park, handheld camera``.
A template picks the order with ``{head}``, ``{action}``, ``{tags}`` and ``{camera}`` only (parsed
field by field in ``captions/template.py``, never ``str.format``); ``{head}`` is required, so the
trigger is always first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ... import names
from ...captions.strategies import head_text, strategy_for
from ...captions.template import fill_template, template_fields
from ...media import video
from ...paths import caption_line
from ...progress import Progress
from ...workspace import Handle, Item, Workspace
from ..tagging.pose import ACTIONS, VIEWS
from .motion import camera_motion

DEFAULT_TEMPLATE = "{head}, {action}, {tags}, {camera}"
FIELDS = ("head", "action", "tags", "camera")
MAX_TAGS = 6


def check_template(template: str) -> str:
    """The template if it uses only the known fields (``captions/template.py``) and has ``{head}``."""
    if "head" not in template_fields(template, FIELDS, "caption template"):
        raise ValueError(f"caption template {template!r} has no {{head}}: the trigger must start every caption")
    return template


def fill(template: str, values: dict[str, str]) -> str:
    text = fill_template(template, values, "caption template")
    return caption_line(", ".join(part.strip() for part in text.split(",") if part.strip()))


def action_phrase(frame_tags: Sequence[list[str]]) -> str:
    """The clip's action (the most common one) and a turn when the view changes towards or away
    from the camera, from the frames' tags in time order."""
    actions = Counter(tag for tags in frame_tags for tag in tags if tag in ACTIONS)
    views = [next((tag for tag in tags if tag in VIEWS), None) for tags in frame_tags]
    views = [view for view in views if view]
    words = [actions.most_common(1)[0][0]] if actions else []
    if len(views) >= 2 and views[0] != views[-1]:
        if views[-1] == "front view":
            words.append("turns to the camera")
        elif views[0] == "front view":
            words.append("turns away from the camera")
    elif views:
        words.append(views[0])
    return ", ".join(words)


def setting_tags(frame_tags: Sequence[list[str]], trigger: str, class_word: str) -> str:
    """Tags in at least half of the clip's frames, pose words and the head's words left out."""
    counts = Counter(tag for tags in frame_tags for tag in dict.fromkeys(tags))  # ties keep the tags' order
    skip = {*ACTIONS, *VIEWS, trigger, class_word}
    common = [tag for tag, n in counts.most_common() if 2 * n >= len(frame_tags) and tag not in skip]
    return ", ".join(common[:MAX_TAGS])


def _frames_in(clip: Item, frames: list[Item]) -> list[Item]:
    meta = clip.meta[names.META_CLIP]
    end = meta["start_s"] + meta["duration_s"]
    inside = [f for f in frames if f.source == clip.source and f.time_s is not None
              and meta["start_s"] <= f.time_s <= end]
    return sorted(inside, key=lambda f: f.time_s)


def caption_clips(ws: Workspace, clips: Handle, trigger: str, class_word: str = "", *, lora_type: str = "character",
                  tagged_frames: Handle | None = None, template: str = DEFAULT_TEMPLATE,
                  progress: Progress | None = None) -> Handle:
    """Caption every clip of ``clips``; returns a handle of the same clips with captions."""
    head = head_text(trigger, class_word, strategy_for(lora_type))
    check_template(template)
    params = {"trigger": trigger, "class_word": class_word, "lora_type": lora_type, "template": template}
    inputs = [clips] + ([tagged_frames] if tagged_frames is not None else [])
    with ws.stage("caption_clips", 1, params, inputs, label=f"captioned {clips.label}") as st:
        if st.complete:
            return st.handle
        items = [item for item in ws.items(clips) if item.kind == names.KIND_CLIP]
        frames = ws.items(tagged_frames) if tagged_frames is not None else []
        tags = ws.tags(tagged_frames) if tagged_frames is not None else {}
        for position, item in st.pending(items, progress):
            frame_tags = [tags.get(f.id, []) for f in _frames_in(item, frames)]
            motion = camera_motion(f.rgb for f in video.iter_frames(Path(item.path), long_side=480))
            caption = fill(template, {"head": head, "action": action_phrase(frame_tags), "camera": motion.phrase,
                                      "tags": setting_tags(frame_tags, trigger, class_word)})
            camera = {"label": motion.label, "shift_x": round(motion.shift_x, 4),
                      "shift_y": round(motion.shift_y, 4), "log_scale": round(motion.log_scale, 4),
                      "jitter": round(motion.jitter, 5)}
            st.emit(str(item.id), position, [item.id], {item.id: {names.CAPTION: caption, names.CAMERA: camera}})
    return st.handle
