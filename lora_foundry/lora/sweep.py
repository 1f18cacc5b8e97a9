"""Weight sweeps and on/off ablations: many stacks from one, each with a label for the grid.

Finding the strength where a pose LoRA holds without bending the character's face takes a grid of
samples. A sweep spec names rows (1-based index, LoRA file name or type) and the values to try;
the sweep is the Cartesian product of those values, capped so a typo cannot queue a thousand
samples. An ablation gives the full stack plus the stack with each LoRA switched off in turn.

Spec lines: ``1: 0.4:1.0:0.2`` (start:stop:step, stop included), ``pose: 0.5, 0.7, 0.9``,
``bg.safetensors: 0.6:0.9:0.1``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .stack import StackEntry

MAX_STEPS_PER_RANGE = 64


class SweepError(ValueError):
    """A sweep spec that cannot be read or would produce too many stacks."""


@dataclass(frozen=True)
class Axis:
    """One swept row: its position in the stack, a short name, and the values tried."""

    row: int
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Variant:
    stack: tuple[StackEntry, ...]
    label: str
    coords: tuple[float, ...]


def short_name(entry: StackEntry) -> str:
    """``chars/alice_v2.safetensors`` → ``alice_v2``."""
    return Path(entry.lora_name.replace("\\", "/")).stem


def parse_values(text: str) -> tuple[float, ...]:
    """``0.4:1.0:0.2`` → (0.4, 0.6, 0.8, 1.0); ``0.5, 0.7`` → (0.5, 0.7)."""
    text = text.strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0 or stop < start:
                raise SweepError(f"range {text!r} needs start <= stop and a positive step")
            count = int(round((stop - start) / step)) + 1
            if count > MAX_STEPS_PER_RANGE:
                raise SweepError(f"range {text!r} has {count} steps (max {MAX_STEPS_PER_RANGE})")
            return tuple(round(start + i * step, 6) for i in range(count))
        values = tuple(float(x) for x in text.replace(";", ",").split(",") if x.strip())
    except ValueError as exc:
        if isinstance(exc, SweepError):
            raise
        raise SweepError(f"cannot read weights {text!r}: use start:stop:step or a comma list") from exc
    if not values:
        raise SweepError("a sweep line has no weights")
    return values


def _find_row(selector: str, stack: Sequence[StackEntry]) -> int:
    selector = selector.strip()
    if selector.isdigit():
        index = int(selector) - 1
        if not 0 <= index < len(stack):
            raise SweepError(f"sweep row {selector} does not exist: the stack has {len(stack)} LoRAs")
        return index
    for index, entry in enumerate(stack):
        if selector in (entry.lora_name, short_name(entry), getattr(entry, "lora_type", None)):
            return index
    names = ", ".join(f"{i + 1}={short_name(e)}" for i, e in enumerate(stack))
    raise SweepError(f"sweep row {selector!r} matches no LoRA in the stack ({names})")


def parse_spec(spec: str, stack: Sequence[StackEntry]) -> list[Axis]:
    """Each non-empty, non-comment line ``selector: values`` as an ``Axis``."""
    axes: list[Axis] = []
    for line in spec.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        selector, sep, values = line.partition(":")
        if not sep:
            raise SweepError(f"sweep line {line!r} needs 'row: weights'")
        row = _find_row(selector, stack)
        if any(a.row == row for a in axes):
            raise SweepError(f"row {row + 1} is swept twice")
        axes.append(Axis(row, short_name(stack[row]), parse_values(values)))
    if not axes:
        raise SweepError("the sweep spec names no rows")
    return axes


def _with_strength(entry: StackEntry, value: float, scale_clip: bool) -> StackEntry:
    clip = value if scale_clip else entry.clip_strength
    return StackEntry(entry.lora_name, value, clip, getattr(entry, "lora_type", "other"))


def weight_sweep(stack: Sequence[StackEntry], axes: Sequence[Axis], max_stacks: int = 16,
                 sweep_clip: bool = True) -> list[Variant]:
    """The Cartesian product of the axes' values; first axis varies slowest (rows of the grid)."""
    total = 1
    for axis in axes:
        total *= len(axis.values)
    if total > max_stacks:
        raise SweepError(f"the sweep makes {total} stacks; max_stacks is {max_stacks}")
    variants = []
    for coords in itertools.product(*(a.values for a in axes)):
        entries = list(stack)
        for axis, value in zip(axes, coords, strict=True):
            entries[axis.row] = _with_strength(stack[axis.row], value, sweep_clip)
        label = " ".join(f"{a.name}={v:g}" for a, v in zip(axes, coords, strict=True))
        variants.append(Variant(tuple(entries), label, tuple(coords)))
    return variants


def ablation(stack: Sequence[StackEntry]) -> list[Variant]:
    """The full stack, then the stack without each LoRA in turn."""
    variants = [Variant(tuple(stack), "all on", ())]
    for index, entry in enumerate(stack):
        rest = tuple(e for i, e in enumerate(stack) if i != index)
        variants.append(Variant(rest, f"without {short_name(entry)}", ()))
    return variants


def grid_axes(axes: Sequence[Axis]) -> dict[str, dict[str, object]]:
    """Axis description for the grid: the last axis runs across columns, the first down rows."""
    if not axes:
        return {}
    out: dict[str, dict[str, object]] = {"x": {"name": axes[-1].name, "values": list(axes[-1].values)}}
    if len(axes) >= 2:
        out["y"] = {"name": axes[0].name, "values": list(axes[0].values)}
    return out
