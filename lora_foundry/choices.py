"""Closed choices: a name a workflow or a config gives, checked against a fixed set and refused with
the set listed, always in one wording (``<what> 'x' is not one of a, b, c``), so a user who mistypes
a preset, a model or a format reads the same kind of answer everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

Entry = TypeVar("Entry")


def one_of(name: str, choices: Iterable[str], what: str) -> str:
    """``name`` when it is one of ``choices``, else a ValueError naming ``what`` and every choice."""
    options = tuple(choices)
    if name not in options:
        raise ValueError(f"{what} {name!r} is not one of {', '.join(options)}")
    return name


def pick(table: Mapping[str, Entry], name: str, what: str) -> Entry:
    """``table[name]``, or ``one_of``'s refusal listing the table's names."""
    return table[one_of(name, table, what)]
