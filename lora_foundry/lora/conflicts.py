"""Warnings for LoRAs that fight over the same part of the image, with the weight change to try.

Two LoRAs that both learned the body (a character and a pose) or both learned the palette (a
background and a style) pull the same weights in different directions: the stronger one wins and
the other bleeds. The rules below name the pair, what they compete for, and a concrete change:
bring the *secondary* LoRA of the pair down to the low end of its recommended range (the
character keeps 1.0: identity is what users notice first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .stack import LORA_TYPES, OTHER_TYPE, StackEntry


@dataclass(frozen=True)
class ConflictRule:
    """Types ``first`` and ``second`` compete for ``contested``; ``lower`` is the one to lower."""

    first: str
    second: str
    contested: str
    lower: str


CONFLICT_RULES: tuple[ConflictRule, ...] = (
    ConflictRule("character", "pose", "the body", "pose"),
    ConflictRule("background", "style", "the palette", "style"),
    ConflictRule("expression", "character", "the face", "expression"),
)
TOTAL_STRENGTH_WARNING = 3.0
"""Above this summed model strength, stacks usually burn (over-saturated, noisy images)."""


@dataclass(frozen=True)
class Conflict:
    """One warning: which entries, what they fight over, and the suggested strength change."""

    message: str
    lora_name: str
    suggested_strength: float | None


def _by_type(stack: Sequence[StackEntry]) -> dict[str, list[StackEntry]]:
    groups: dict[str, list[StackEntry]] = {}
    for entry in stack:
        groups.setdefault(getattr(entry, "lora_type", OTHER_TYPE), []).append(entry)
    return groups


def _pair_conflict(rule: ConflictRule, groups: dict[str, list[StackEntry]]) -> list[Conflict]:
    if not groups.get(rule.first) or not groups.get(rule.second):
        return []
    target = LORA_TYPES[rule.lower]
    conflicts = []
    for entry in groups[rule.lower]:
        if entry.model_strength <= target.low + 1e-6:
            continue
        other = groups[rule.second if rule.lower == rule.first else rule.first][0]
        message = (
            f"{rule.first} + {rule.second} compete for {rule.contested}: {other.lora_name} and "
            f"{entry.lora_name}. Lower {entry.lora_name} ({rule.lower}) from "
            f"{entry.model_strength:.2f} to {target.low:.2f}"
        )
        conflicts.append(Conflict(message, entry.lora_name, target.low))
    return conflicts


def _range_conflicts(stack: Sequence[StackEntry]) -> list[Conflict]:
    out = []
    for entry in stack:
        known = LORA_TYPES.get(getattr(entry, "lora_type", OTHER_TYPE))
        if known is None:
            continue
        if not known.low - 1e-6 <= entry.model_strength <= known.high + 1e-6:
            suggestion = min(max(entry.model_strength, known.low), known.high)
            out.append(Conflict(
                f"{entry.lora_name} ({known.name}) at {entry.model_strength:.2f} is outside the "
                f"{known.low:.1f}–{known.high:.1f} range for {known.controls}; try {suggestion:.2f}",
                entry.lora_name, suggestion))
    return out


def _same_type_conflicts(groups: dict[str, list[StackEntry]]) -> list[Conflict]:
    out = []
    for lora_type, entries in groups.items():
        if lora_type in LORA_TYPES and lora_type != "slider" and len({e.lora_name for e in entries}) > 1:
            names = ", ".join(e.lora_name for e in entries)
            out.append(Conflict(
                f"{len(entries)} {lora_type} LoRAs ({names}) compete for "
                f"{LORA_TYPES[lora_type].controls}; expect them to blend", entries[-1].lora_name, None))
    return out


def find_conflicts(stack: Sequence[StackEntry]) -> list[Conflict]:
    """Every conflict in ``stack``: type pairs, strengths out of range, same type twice, total."""
    groups = _by_type(stack)
    conflicts = [c for rule in CONFLICT_RULES for c in _pair_conflict(rule, groups)]
    conflicts += _range_conflicts(stack)
    conflicts += _same_type_conflicts(groups)
    total = sum(abs(e.model_strength) for e in stack)
    if total > TOTAL_STRENGTH_WARNING:
        conflicts.append(Conflict(
            f"summed model strength {total:.2f} is above {TOTAL_STRENGTH_WARNING:.1f}: images tend "
            f"to burn; lower the secondary LoRAs", "", None))
    return conflicts


def conflict_messages(stack: Sequence[StackEntry]) -> list[str]:
    return [c.message for c in find_conflicts(stack)]
