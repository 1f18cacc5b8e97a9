"""Closed choices: a name a workflow or a config gives, checked against a fixed set and refused with
the set listed, always in one wording (``<what> 'x' is not one of a, b, c``), so a user who mistypes
a preset, a model or a format reads the same kind of answer everywhere. ``error`` keeps a caller's own
ValueError subclass (a preflight or merge refusal its callers catch) with the same wording."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

Entry = TypeVar("Entry")
Choice = TypeVar("Choice", str, int)


def one_of(name: Choice, choices: Iterable[Choice], what: str, error: type[ValueError] = ValueError) -> Choice:
    """``name`` when it is one of ``choices``, else ``error`` naming ``what`` and every choice."""
    options = tuple(choices)
    if name not in options:
        raise error(f"{what} {name!r} is not one of {', '.join(map(str, options))}")
    return name


def pick(table: Mapping[str, Entry], name: str, what: str, error: type[ValueError] = ValueError) -> Entry:
    """``table[name]``, or ``one_of``'s refusal listing the table's names."""
    return table[one_of(name, table, what, error)]
