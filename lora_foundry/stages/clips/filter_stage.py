"""Drop clips a video LoRA should not learn from, saying why for each: static (nothing moves), too
dark, blurred (much less sharp than the other clips), or a near-duplicate of an earlier clip.

The numbers were measured while the clips were cut (``cutter``: mean frame-to-frame difference,
the middle frame's brightness, sharpness and perceptual hash), so deciding reads no video and
runs again at once when a threshold changes. The decisions are the frame filter's owners
(``media/blur.blurry`` per set, ``media/dedup.near_duplicates``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ... import names
from ...media import blur, dedup
from ...workspace import Handle, Workspace


@dataclass(frozen=True)
class ClipFilterOptions:
    min_motion: float = 0.4  # mean grey-level change per frame (0-255) below which a clip is static
    dark: bool = True
    blur: bool = True
    blur_relative: float = 0.35
    dedup: bool = True
    hash_threshold: int = 6


def decide(stats: list[dict], options: ClipFilterOptions) -> dict[int, str]:
    """``{position: reason}`` of the clips to drop, from their cut-time measures."""
    reasons: dict[int, str] = {}
    if options.blur or options.dark:  # first: a dark clip also looks static and soft
        judged = blur.blurry([s["sharpness"] for s in stats], [0] * len(stats), relative_threshold=options.blur_relative,
                             brightness=[s["brightness"] for s in stats] if options.dark else None)
        reasons = {p: reason for p, reason in judged.items() if options.blur or reason.startswith("too dark")}
    for position, stat in enumerate(stats):
        if stat["motion"] < options.min_motion:
            reasons.setdefault(position, f"static (motion {stat['motion']:.2f} < {options.min_motion:g})")
    if options.dedup:
        kept = [p for p in range(len(stats)) if p not in reasons]
        found = dedup.near_duplicates([int(stats[p]["phash"]) for p in kept], options.hash_threshold)
        for dropped, (twin, distance) in found.items():
            reasons[kept[dropped]] = f"near-duplicate of clip {kept[twin]} (distance {distance})"
    return dict(sorted(reasons.items()))


def filter_clips(ws: Workspace, clips: Handle, options: ClipFilterOptions) -> Handle:
    """The clips worth training on; the dropped ones are annotated with their reason."""
    with ws.stage("filter_clips", 1, asdict(options), [clips], label=f"filtered {clips.label}") as st:
        if st.complete:
            return st.handle
        items = [item for item in ws.items(clips) if item.kind == names.KIND_CLIP]
        measures = ws.annotations(clips, names.CLIP_STATS)
        reasons = decide([measures[item.id] for item in items], options)
        kept = [item.id for position, item in enumerate(items) if position not in reasons]
        st.set_info(**{names.INFO_REPORT: {"kept": len(kept), "dropped": {
            items[p].relpath: reason for p, reason in reasons.items()}}})
        st.emit_all(kept, {items[p].id: {names.DROPPED: reason} for p, reason in reasons.items()})
    return st.handle
