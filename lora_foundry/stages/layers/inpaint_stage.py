"""Inpainting as a workspace stage: every background's hole filled, one ``clean_background`` per
background, resumable per frame. The filling itself is ``inpaint`` (LaMa or OpenCV)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from ... import names
from ...media import images
from ...models.handle import ModelHandle, all_on_device
from ...progress import Progress
from ...workspace import Handle, Item, NewItem, Workspace
from .inpaint import Filler, InpaintSettings, inpaint
from .split import hole_of

INPAINT_VERSION = 1

def inpaint_backgrounds(ws: Workspace, backgrounds: Handle, filler: Filler, method: str, identity: str,
                        settings: InpaintSettings | None = None,
                        progress: Progress | None = None, model: ModelHandle | None = None) -> Handle:
    """Fill every background's hole; returns the handle of the ``clean_background`` items.

    Items of other kinds are passed over (counted in the stage info as ``skipped``). ``model`` is
    the handle ``filler`` runs (LaMa): it visits its compute device for the run, and only when
    there is work.
    """
    settings = settings or InpaintSettings()
    params = {"method": method, **asdict(settings)}
    with ws.stage("inpaint", INPAINT_VERSION, params, inputs=[backgrounds], model=identity,
                  label="clean backgrounds") as st:
        if not st.complete:
            items = ws.items(backgrounds)
            st.set_info(**{names.INFO_SKIPPED: sum(1 for item in items if item.kind != names.KIND_BACKGROUND)})
            with all_on_device(model):
                for position, item in st.pending(items, progress):
                    outputs = [_clean_item(st, item, filler, method, settings)] if item.kind == names.KIND_BACKGROUND else []
                    st.emit(unit=str(item.id), order=position, outputs=outputs)
        return st.handle

def _clean_item(st: Any, item: Item, filler: Filler, method: str, settings: InpaintSettings) -> NewItem:
    background = images.load_rgba(item.path)
    hole = hole_of(background)
    if hole.any():
        clean, grown = inpaint(background[..., :3], hole, filler, settings)
    else:
        clean, grown = background[..., :3].copy(), hole
    rel = st.write_image(clean, f"{item.id:08d}_clean.png")
    facts = {names.INPAINT_METHOD: method, names.FILLED_AREA: int(grown.sum()), names.DILATE_PX: settings.dilate_px}
    return NewItem(kind=names.KIND_CLEAN_BACKGROUND, relpath=rel, width=clean.shape[1], height=clean.shape[0],
                   parent=item.id, source=item.source, frame_index=item.frame_index, time_s=item.time_s,
                   shot=item.shot, meta=facts, annotations=facts)
