"""Writing LECO prompt TOML from a few widgets (erase / enhance / slider), with ``tomli-w``.

What we write is always the ``[[prompts]]`` layout of sd-scripts' ``--prompts_file``, and it is
read back with our own reader before it leaves (``build_prompt_toml``), so a file we hand to
``train_leco.py`` is one its loader accepts. Items chain: a builder appends to an incoming TOML.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

import tomli_w

from ..choices import one_of
from .prompts import PromptFileError, PromptSetting, parse_prompt_text

MODES = ("erase", "enhance", "slider")


@dataclass(frozen=True)
class PromptItem:
    """The widgets of one builder: what to train and how strongly."""

    mode: str
    target: str
    positive: str = ""
    negative: str = ""
    neutral: str = ""
    guidance_scale: float = 1.0
    resolution: int = 512
    batch_size: int = 1
    multiplier: float = 1.0
    weight: float = 1.0

    def to_table(self) -> dict[str, Any]:
        """The ``[[prompts]]`` table sd-scripts reads; empty optional prompts are left out."""
        one_of(self.mode, MODES, "mode", PromptFileError)
        common = {"guidance_scale": float(self.guidance_scale), "resolution": int(self.resolution),
                  "batch_size": int(self.batch_size), "multiplier": float(self.multiplier),
                  "weight": float(self.weight)}
        if self.mode == "slider":
            table: dict[str, Any] = {"target_class": self.target}
            table.update({k: v for k, v in (("positive", self.positive), ("negative", self.negative),
                                            ("neutral", self.neutral)) if v.strip()})
            return {**table, **common}
        table = {"target": self.target, "action": self.mode}
        table.update({k: v for k, v in (("positive", self.positive), ("neutral", self.neutral)) if v.strip()})
        return {**table, **common}


def dump_prompt_tables(tables: list[dict[str, Any]], defaults: dict[str, Any] | None = None) -> str:
    """``[[prompts]]`` TOML text for ``tables`` (and top-level defaults)."""
    return tomli_w.dumps({**(defaults or {}), "prompts": tables})


def build_prompt_toml(item: PromptItem, incoming: str = "") -> tuple[str, list[PromptSetting]]:
    """``incoming`` TOML (may be empty) with ``item`` appended, and the settings it expands into."""
    data: dict[str, Any] = {}
    if incoming.strip():
        parse_prompt_text(incoming, "incoming prompt TOML")
        data = tomllib.loads(incoming)
        if "prompts" not in data:
            raise PromptFileError("incoming prompt TOML uses the [slider] layout; chain builders on [[prompts]] files")
    tables = list(data.pop("prompts", [])) + [item.to_table()]
    text = dump_prompt_tables(tables, data)
    return text, parse_prompt_text(text, "built prompt TOML")
