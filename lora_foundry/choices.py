"""Closed choices: a name a workflow or a config gives, checked against a fixed set and refused with
the set listed, always in one wording (``<what> 'x' is not one of a, b, c``), so a user who mistypes
a preset, a model or a format reads the same kind of answer everywhere. ``error`` keeps a caller's own
ValueError subclass (a preflight or merge refusal its callers catch) with the same wording."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

Entry = TypeVar("Entry")
Choice = TypeVar("Choice", str, int)
MAX_SHOWN = 120  # characters of a refused value quoted back


def quoted(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as a refusal quotes it back: its ``repr``, cut to ``limit`` characters and marked
    "..." when longer. The one place that cuts, so a pasted 300 KB value reads the same in every
    refusal (each module once cut its own way: before or after ``repr``, at 80, 120 or 200)."""
    shown = repr(value)
    return shown if len(shown) <= limit else f"{shown[:limit]}..."


def choice_refusal(name: Choice, choices: Iterable[Choice], what: str) -> str | None:
    """The one wording of a refused choice, or None when ``name`` is one of ``choices``: for checks
    that collect problems (a node's validation, a TOML file's) instead of raising the first. A
    pasted 300 KB value is quoted back cut to ``MAX_SHOWN`` characters."""
    options = tuple(choices)
    if name in options:
        return None
    return f"{what} {quoted(name)} is not one of {', '.join(map(str, options))}"


def one_of(name: Choice, choices: Iterable[Choice], what: str, error: type[ValueError] = ValueError) -> Choice:
    """``name`` when it is one of ``choices``, else ``error`` naming ``what`` and every choice."""
    problem = choice_refusal(name, choices, what)
    if problem is not None:
        raise error(problem)
    return name


def pick(table: Mapping[str, Entry], name: str, what: str, error: type[ValueError] = ValueError) -> Entry:
    """``table[name]``, or ``one_of``'s refusal listing the table's names."""
    return table[one_of(name, table, what, error)]
