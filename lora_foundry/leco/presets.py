"""First-run presets for LECO training: a quick run a CPU finishes in about a minute, labelled as
such, with the full setting one widget away.

LECO's usual 500 steps at 512 px take hours on a CPU (20-110 s a step measured here); a first-time
user should see the whole loop work (prompts → LoRA → sweep grid) before committing to that. The
quick preset caps the steps and the training size of every setting and saves under its own name,
so a quick LoRA is never mistaken for (or blocks the resume of) the real one.
"""

from __future__ import annotations

from dataclasses import replace

from ..choices import one_of
from .prompts import PromptSetting

QUICK_STEPS = 4
QUICK_SIZE = 64
QUICK = f"quick: {QUICK_STEPS} steps, {QUICK_SIZE} px"  # short: a combo's value sets the node's width
FULL = "full: as set"
PRESETS = (FULL, QUICK)
QUICK_SUFFIX = "_quick"


def apply_preset(preset: str, name: str, steps: int,
                 settings: list[PromptSetting]) -> tuple[str, int, list[PromptSetting]]:
    """The LoRA name, steps and settings a run with ``preset`` uses."""
    if one_of(preset, PRESETS, "preset") == FULL:
        return name, steps, settings
    small = [replace(s, resolution=(min(s.resolution[0], QUICK_SIZE), min(s.resolution[1], QUICK_SIZE)),
                     dynamic_resolution=False, batch_size=1) for s in settings]
    return f"{name}{QUICK_SUFFIX}", min(steps, QUICK_STEPS), small
