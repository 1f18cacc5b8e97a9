"""Glue the stack nodes share: file look-ups, trigger words and warnings for a whole stack.

Kept out of the node module so it is plain Python (tested without ComfyUI): the node layer only
passes the LoRA folders ComfyUI knows and the caches it owns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..clip_tokens import ClipTokenCounter
from .conflicts import conflict_messages
from .files import LoraNotFoundError, resolve_lora
from .metadata import LoraInfo, LoraInfoCache
from .stack import StackEntry, duplicate_warnings, with_types

TENSOR_CACHE_BYTES = 2 * 1024**3


@dataclass
class ComposeCaches:
    """The bounded caches the compose nodes share: headers and the CLIP tokenizer (LoRA tensors are
    cached by the node that applies them, where ComfyUI's "free memory" reaches them)."""

    infos: LoraInfoCache = field(default_factory=lambda: LoraInfoCache(256))
    tokens: ClipTokenCounter = field(default_factory=ClipTokenCounter)


@dataclass(frozen=True)
class StackSummary:
    stack: list[StackEntry]
    infos: dict[str, LoraInfo]
    triggers: list[str]
    warnings: list[str]

    def trigger_text(self) -> str:
        return ", ".join(self.triggers)

    def warning_text(self) -> str:
        return "\n".join(f"- {w}" for w in self.warnings) if self.warnings else "no warnings"


def read_infos(stack: Sequence[StackEntry], lora_dirs: Sequence[Path],
               cache: LoraInfoCache) -> tuple[dict[str, LoraInfo], list[str]]:
    """Header info per LoRA name, plus a warning for each file that cannot be found or read."""
    infos: dict[str, LoraInfo] = {}
    warnings: list[str] = []
    for entry in stack:
        if entry.lora_name in infos:
            continue
        try:
            infos[entry.lora_name] = cache.get(resolve_lora(entry.lora_name, lora_dirs))
        except LoraNotFoundError as exc:
            warnings.append(str(exc))
        except (OSError, ValueError) as exc:
            warnings.append(f"cannot read {entry.lora_name}: {exc}")
    return infos, warnings


def base_model_warnings(infos: dict[str, LoraInfo]) -> list[str]:
    """LoRAs for different base models in one stack: at least one of them will do nothing."""
    families = {}
    for name, info in infos.items():
        if info.base_model != "unknown":
            families.setdefault(info.base_model, []).append(name)
    if len(families) < 2:
        return []
    parts = "; ".join(f"{base}: {', '.join(names)}" for base, names in sorted(families.items()))
    return [f"the stack mixes base models ({parts}); LoRAs for another base model match nothing"]


def collect_triggers(stack: Sequence[StackEntry], infos: dict[str, LoraInfo]) -> list[str]:
    """Trigger words of the stack's LoRAs in stack order, each once."""
    seen: dict[str, str] = {}
    for entry in stack:
        info = infos.get(entry.lora_name)
        for word in info.triggers if info else ():
            seen.setdefault(word.lower(), word)
    return list(seen.values())


def summarize(stack: Sequence[StackEntry], lora_dirs: Sequence[Path], caches: ComposeCaches) -> StackSummary:
    """Types (from metadata when rows do not say), triggers and every warning for ``stack``."""
    infos, warnings = read_infos(stack, lora_dirs, caches.infos)
    typed = with_types(stack, {n: i.lora_type for n, i in infos.items() if i.lora_type})
    warnings += duplicate_warnings(typed) + base_model_warnings(infos) + conflict_messages(typed)
    return StackSummary(typed, infos, collect_triggers(typed, infos), warnings)
