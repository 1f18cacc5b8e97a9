"""Lighting tagging as a workspace stage: one unit per item; CLIP zero-shot setting and time of day
when a CLIP model is given (see ``lighting`` for the pixel rules)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ... import names
from ...media import images
from ...models.handle import all_on_device
from ...progress import Progress
from ...workspace import Handle, Workspace
from . import lighting
from .tags import merged


def _clip_setting(clip: Any, rgb: np.ndarray, min_probability: float) -> str | None:
    from ...models.clip_model import zero_shot

    labels = list(lighting.CLIP_PROMPTS)
    prompts = [lighting.CLIP_PROMPTS[label] for label in labels]
    (best, probability), = zero_shot(clip, [images.to_pil(rgb[..., :3])], prompts)
    return labels[prompts.index(best)] if probability >= min_probability else None


def _lighting_unit(item: Any, clip: Any | None, min_probability: float, inherited: dict[int, Any]
                   ) -> dict[str, Any]:
    image = images.load_image(item.path)
    stats = lighting.measure(image)
    tags = lighting.tags_of(stats)
    setting = _clip_setting(clip, image, min_probability) if clip is not None else None
    if setting and setting not in tags:
        tags.append(setting)
    return {names.LIGHTING: stats.as_dict(), names.LIGHTING_TAGS: tags, names.TAGS: merged(inherited, item.id, tags)}


def lighting_stage(ws: Workspace, handle: Handle, clip: Any | None = None, min_probability: float = 0.5,
                   progress: Progress | None = None) -> Handle:
    """Lighting statistics (``lighting``) and tags (``lighting_tags``, ``tags``) per item; a CLIP
    model visits its compute device for the run."""
    items = ws.items(handle)
    inherited = ws.tags(handle)
    params = {"rules": 1, "clip_min_probability": float(min_probability) if clip is not None else None}
    model = clip.identity if clip is not None else ""
    with ws.stage("lighting", 1, params, [handle], model, label=f"{handle.label or 'frames'} · lighting") as st:
        if not st.complete:
            with all_on_device(clip):
                for position, item in st.pending(items, progress):
                    st.emit(str(item.id), position, [item.id],
                            {item.id: _lighting_unit(item, clip, min_probability, inherited)})
        return st.handle
