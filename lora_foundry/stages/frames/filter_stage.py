"""Drop near-duplicates (over the whole set) and blurry or dark frames, saying why for each.

Measuring is per item and resumable (hashes and sharpness are stored as annotations as they are
computed); deciding is whole-set and cheap, so it runs again whenever thresholds change without
re-reading a single image.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from ... import names
from ...media import blur, dedup, images
from ...progress import Progress, ensure_progress
from ...scale.pool import ordered_map
from ...workspace import Handle, Item, Workspace

MEASURE_LONG_SIDE = 512


@dataclass(frozen=True)
class FilterOptions:
    dedup: bool = True
    hash_threshold: int = 6
    blur: bool = True
    blur_relative: float = 0.35


def measure(ws: Workspace, handle: Handle, progress: Progress | None = None, workers: int = 0) -> Handle:
    """Perceptual hash, sharpness and brightness of every item (cached per input set), on
    ``workers`` threads (0 = one per core); committed in order, one unit per item."""
    with ws.stage("measure_frames", 1, {"long_side": MEASURE_LONG_SIDE}, inputs=[handle],
                  label="measured frames") as st:
        if st.complete:
            return st.handle
        items = ws.items(handle)
        pending = [(position, item) for position, item in enumerate(items) if not st.is_done(str(item.id))]
        report, done = ensure_progress(progress), len(items) - len(pending)
        report.update(done, len(items))
        for (position, item), values in ordered_map(_measure_one, pending, workers):
            st.emit(str(item.id), position, [item.id], {item.id: {names.MEASURE: values}})
            done += 1
            report.update(done, len(items))
    return st.handle


def _measure_one(entry: tuple[int, Item]) -> dict[str, Any]:
    pixels = images.resize_long_side(images.load_rgb(entry[1].path), MEASURE_LONG_SIDE)
    brightness, contrast = blur.brightness_contrast(pixels)
    return {"phash": format(dedup.perceptual_hash(pixels), "016x"), "sharpness": float(blur.sharpness(pixels)),
            "brightness": float(brightness), "contrast": float(contrast)}


def filter_frames(ws: Workspace, handle: Handle, options: FilterOptions,
                  progress: Progress | None = None) -> tuple[Handle, dict[str, Any]]:
    """Keep the frames that pass; returns the new handle and a report of what was dropped and why."""
    measured = measure(ws, handle, progress)
    with ws.stage("filter_frames", 1, asdict(options), inputs=[measured], label="filtered frames") as st:
        if st.complete:
            return st.handle, st.info[names.INFO_REPORT]
        items = ws.items(measured)
        values = ws.annotations(measured, names.MEASURE)
        reasons = _drop_reasons(items, values, options)
        kept = [item.id for item in items if item.id not in reasons]
        report = _report(items, reasons)
        st.emit_all(kept, {item_id: {names.DROPPED: reason} for item_id, reason in reasons.items()})
        st.set_info(**{names.INFO_REPORT: report})
    return st.handle, report


def _drop_reasons(items: list[Item], values: dict[int, dict[str, Any]], options: FilterOptions) -> dict[int, str]:
    reasons: dict[int, str] = {}
    if options.blur:
        scores = [values[item.id]["sharpness"] for item in items]
        groups = [item.shot if item.shot is not None else -1 for item in items]
        brightness = [values[item.id]["brightness"] for item in items]
        for index, reason in blur.blurry(scores, groups, relative_threshold=options.blur_relative,
                                         brightness=brightness).items():
            reasons[items[index].id] = f"blur: {reason}"
    if options.dedup:
        candidates = [item for item in items if item.id not in reasons]
        hashes = [int(values[item.id]["phash"], 16) for item in candidates]
        for index, (kept, distance) in dedup.near_duplicates(hashes, options.hash_threshold).items():
            reasons[candidates[index].id] = (
                f"near-duplicate of item {candidates[kept].id} (hash distance {distance})"
            )
    return reasons


def _report(items: list[Item], reasons: dict[int, str]) -> dict[str, Any]:
    kinds = Counter(reason.split(":")[0].split(" of ")[0] for reason in reasons.values())
    return {
        "input": len(items),
        "kept": len(items) - len(reasons),
        "dropped": len(reasons),
        "dropped_by_reason": dict(kinds),
        "dropped_items": [
            {"item": item.id, "frame_index": item.frame_index, "shot": item.shot, "reason": reasons[item.id]}
            for item in items if item.id in reasons
        ],
    }
