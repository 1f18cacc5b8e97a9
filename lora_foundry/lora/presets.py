"""Named LoRA stacks ("host_face", "studio_night") saved as JSON in ComfyUI's user directory.

A preset lets an API caller pick a whole stack with one field. Files live at
``<user>/lora_foundry/presets/<name>.json``; names go through ``paths.safe_name`` (a preset name
arrives over HTTP), paths through ``paths.confined``, writes are atomic and never replace an
existing preset unless asked to.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..bounded import parse_json
from ..fileio import atomic_write_text
from ..paths import confined, safe_name
from .stack import StackEntry, StackRow

PRESET_FORMAT = "lora_foundry.lora_preset"
PRESET_VERSION = 1
PRESET_SUBDIR = ("lora_foundry", "presets")


class PresetError(ValueError):
    """A preset that is missing, malformed, or would overwrite another."""


@dataclass(frozen=True)
class Preset:
    name: str
    rows: tuple[StackRow, ...]
    description: str = ""

    def to_json(self) -> str:
        return json.dumps({
            "format": PRESET_FORMAT, "version": PRESET_VERSION, "name": self.name,
            "description": self.description, "rows": [r.to_dict() for r in self.rows],
        }, indent=2)


def presets_dir(user_root: Path) -> Path:
    return confined(user_root, *PRESET_SUBDIR)


def preset_path(user_root: Path, name: str) -> Path:
    return confined(presets_dir(user_root), safe_name(name, "preset name") + ".json")


def list_presets(user_root: Path) -> list[str]:
    """Preset names found in the user directory, sorted."""
    folder = presets_dir(user_root)
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.is_file())


def rows_from_stack(stack: Sequence[StackEntry]) -> tuple[StackRow, ...]:
    """Stack entries as preset rows (types kept when the entries carry them)."""
    return tuple(StackRow(e.lora_name, getattr(e, "lora_type", "other"), e.model_strength,
                          e.clip_strength, True) for e in stack)


def save_preset(user_root: Path, preset: Preset, overwrite: bool = False) -> Path:
    """Write ``preset`` atomically; refuse to replace an existing file unless ``overwrite``."""
    path = preset_path(user_root, preset.name)
    if path.exists() and not overwrite:
        raise PresetError(f"preset {preset.name!r} already exists at {path}; set overwrite to replace it")
    return atomic_write_text(path, preset.to_json())


def load_preset(user_root: Path, name: str) -> Preset:
    """Read a preset by name; a missing or malformed file raises ``PresetError`` naming it."""
    path = preset_path(user_root, name)
    if not path.is_file():
        known = ", ".join(list_presets(user_root)) or "none saved yet"
        raise PresetError(f"no LoRA preset named {name!r} in {path.parent} (known: {known})")
    try:
        data = parse_json(path.read_text(encoding="utf-8"), f"preset {name!r}")
        if data.get("format") != PRESET_FORMAT:
            raise PresetError(f"{path} is not a LoRA Foundry preset (format {data.get('format')!r})")
        rows = tuple(StackRow.from_dict(r) for r in data["rows"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, PresetError):
            raise
        raise PresetError(f"preset {path} is malformed: {exc}") from exc
    return Preset(name=str(data.get("name", name)), rows=rows, description=str(data.get("description", "")))
