"""LoRA stacks: typed rows, recommended strengths, and the ``LORA_STACK`` interop shape.

Other packs (Efficiency Nodes, Comfyroll, LoRA-Manager, rgthree) pass a ``LORA_STACK`` as a plain
list of ``(lora_name, model_strength, clip_strength)`` tuples; Comfyroll and LoRA-Manager unpack
each entry into exactly three names, Efficiency filters on ``entry[0] != "None"``. We produce that
shape exactly. Each entry is a ``StackEntry``: a real 3-tuple (equal to, and unpacking like, a
plain tuple) that also remembers the LoRA *type* as an attribute, so our downstream nodes (conflict
warnings, presets) still know which LoRA is the character and which the background after the stack
went through another pack's node that kept the entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

NONE_NAME = "None"
AUTO_STRENGTH = -1.0
"""A strength of -1 means "the recommended strength for the row's type" (API callers use it)."""


@dataclass(frozen=True)
class LoraType:
    """What a kind of LoRA controls and the strength range that usually keeps it from bleeding."""

    name: str
    recommended: float
    low: float
    high: float
    controls: str


LORA_TYPES: MappingProxyType[str, LoraType] = MappingProxyType({
    t.name: t
    for t in (
        LoraType("character", 1.0, 1.0, 1.0, "identity (face, body, outfit)"),
        LoraType("background", 0.8, 0.7, 0.9, "setting and palette"),
        LoraType("pose", 0.7, 0.6, 0.8, "body position"),
        LoraType("expression", 0.6, 0.5, 0.7, "face expression"),
        LoraType("style", 0.9, 0.8, 1.0, "rendering style and palette"),
        LoraType("lighting", 0.7, 0.6, 0.8, "light direction and colour"),
        LoraType("slider", 1.0, -1.0, 1.0, "one concept both ways (a negative strength reverses it)"),
    )
})
TYPE_NAMES: tuple[str, ...] = tuple(LORA_TYPES)
NEGATIVE_STRENGTH_TYPES = frozenset({"slider"})
"""Types whose negative strengths are real values (the -1 "auto" marker does not apply)."""
OTHER_TYPE = "other"
"""Type of entries that came from another pack or a file without our type metadata."""


def recommended_strength(lora_type: str) -> float:
    """The strength a user should start from for ``lora_type`` (1.0 for unknown types)."""
    known = LORA_TYPES.get(lora_type)
    return known.recommended if known else 1.0


def resolve_strength(value: float, lora_type: str) -> float:
    """``value``, or the type's recommended strength when ``value`` is the -1 "auto" marker; a
    slider (LECO) row takes every value as given, since -1 is its other direction."""
    if abs(float(value) - AUTO_STRENGTH) < 1e-6 and lora_type not in NEGATIVE_STRENGTH_TYPES:
        return recommended_strength(lora_type)
    return float(value)


class StackEntry(tuple):
    """``(lora_name, model_strength, clip_strength)`` that also carries ``lora_type``.

    It *is* a 3-tuple: equal to a plain tuple with the same values, unpacks into three names,
    indexes and slices like one. The type rides along as an attribute for our own nodes.
    """

    lora_type: str

    def __new__(cls, lora_name: str, model_strength: float, clip_strength: float,
                lora_type: str = OTHER_TYPE) -> StackEntry:
        entry = super().__new__(cls, (str(lora_name), float(model_strength), float(clip_strength)))
        entry.lora_type = lora_type
        return entry

    def __getnewargs__(self) -> tuple[str, float, float, str]:
        """Copies (``copy.deepcopy``, ComfyUI's caches) keep the type."""
        return (self[0], self[1], self[2], self.lora_type)

    @property
    def lora_name(self) -> str:
        return self[0]

    @property
    def model_strength(self) -> float:
        return self[1]

    @property
    def clip_strength(self) -> float:
        return self[2]


@dataclass(frozen=True)
class StackRow:
    """One row of the stack widget: which LoRA, what it is, how strong, and whether it is on."""

    lora: str
    lora_type: str = "character"
    model_strength: float = AUTO_STRENGTH
    clip_strength: float = AUTO_STRENGTH
    enabled: bool = True

    @property
    def is_active(self) -> bool:
        return self.enabled and bool(self.lora) and self.lora != NONE_NAME

    def resolved(self) -> StackRow:
        """The row with "auto" strengths replaced by the type's recommended strength."""
        return replace(
            self,
            model_strength=resolve_strength(self.model_strength, self.lora_type),
            clip_strength=resolve_strength(self.clip_strength, self.lora_type),
        )

    def to_entry(self) -> StackEntry:
        row = self.resolved()
        return StackEntry(row.lora, row.model_strength, row.clip_strength, row.lora_type)

    def to_dict(self) -> dict[str, Any]:
        return {"lora": self.lora, "type": self.lora_type, "model_strength": self.model_strength,
                "clip_strength": self.clip_strength, "enabled": self.enabled}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StackRow:
        return cls(
            lora=str(data["lora"]),
            lora_type=str(data.get("type", OTHER_TYPE)),
            model_strength=float(data.get("model_strength", AUTO_STRENGTH)),
            clip_strength=float(data.get("clip_strength", AUTO_STRENGTH)),
            enabled=bool(data.get("enabled", True)),
        )


def normalize_entry(entry: Any, position: int) -> StackEntry | None:
    """One incoming stack entry as a ``StackEntry``; None for a "None" placeholder.

    Accepts any sequence whose first three items are (name, model strength, clip strength); a
    longer entry (LoRA-Manager can append trigger words) keeps its first three items.
    """
    if isinstance(entry, StackEntry):
        return None if entry.lora_name == NONE_NAME else entry
    if not isinstance(entry, (tuple, list)) or len(entry) < 3:
        raise ValueError(
            f"LORA_STACK entry {position} is {entry!r}; expected (lora_name, model_strength, clip_strength)"
        )
    name, model_strength, clip_strength = entry[0], entry[1], entry[2]
    if not isinstance(name, str):
        raise ValueError(f"LORA_STACK entry {position} has a non-text LoRA name {name!r}")
    if name == NONE_NAME or not name.strip():
        return None
    try:
        return StackEntry(name, float(model_strength), float(clip_strength), OTHER_TYPE)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"LORA_STACK entry {position} ({name}) has a non-numeric strength") from exc


def normalize_stack(stack: Iterable[Any] | None) -> list[StackEntry]:
    """Any pack's ``LORA_STACK`` (or None) as a list of ``StackEntry``, "None" rows dropped."""
    if not stack:
        return []
    entries = (normalize_entry(item, i) for i, item in enumerate(stack))
    return [entry for entry in entries if entry is not None]


def rows_to_stack(rows: Sequence[StackRow]) -> list[StackEntry]:
    """Active rows as stack entries, in row order, auto strengths resolved."""
    return [row.to_entry() for row in rows if row.is_active]


def chain(incoming: Iterable[Any] | None, rows: Sequence[StackRow]) -> list[StackEntry]:
    """A new stack: the incoming stack's entries first, then this node's active rows.

    The incoming list is never modified (Efficiency's stacker extends lists in place; we do not).
    """
    return normalize_stack(incoming) + rows_to_stack(rows)


def with_types(stack: Iterable[Any] | None, types_by_name: dict[str, str]) -> list[StackEntry]:
    """Entries whose type is unknown get one from ``types_by_name`` (e.g. read from file metadata)."""
    typed = []
    for entry in normalize_stack(stack):
        if entry.lora_type == OTHER_TYPE and entry.lora_name in types_by_name:
            entry = StackEntry(*entry, lora_type=types_by_name[entry.lora_name])
        typed.append(entry)
    return typed


def duplicate_warnings(stack: Sequence[StackEntry]) -> list[str]:
    """The same file twice adds its effect twice: almost always a wiring mistake."""
    seen: dict[str, int] = {}
    for entry in stack:
        seen[entry.lora_name] = seen.get(entry.lora_name, 0) + 1
    return [f"{name} is in the stack {count} times; its strengths add up" for name, count in seen.items()
            if count > 1]


def describe_entry(entry: StackEntry) -> str:
    """``name (type) model 0.80 / clip 0.80`` for reports and labels."""
    return (f"{entry.lora_name} ({entry.lora_type}) model {entry.model_strength:.2f} / "
            f"clip {entry.clip_strength:.2f}")
