"""Keys matched out of total, per LoRA: the check that catches a LoRA doing nothing.

ComfyUI only logs "lora key not loaded" when a LoRA's keys fit nothing in the model (an SDXL LoRA
on SD1.5) and then samples as if no LoRA were there. The node layer builds ComfyUI's own key map
(``comfy.lora.model_lora_keys_unet/clip``) and runs ``comfy.lora.load_lora`` on it; this module
turns the result into counts per part (UNet / text encoder), a verdict and readable lines. It is
plain Python over key names so it is tested without ComfyUI.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .metadata import module_prefix

MAX_EXAMPLES = 3


class NoKeysMatchedError(RuntimeError):
    """A LoRA none of whose modules fit the model: the wrong base model, almost always."""


@dataclass(frozen=True)
class MatchReport:
    name: str
    unet_total: int
    unet_matched: int
    te_total: int
    te_matched: int
    te_skipped: bool
    unmatched_examples: tuple[str, ...]
    base_model: str = "unknown"

    @property
    def total(self) -> int:
        return self.unet_total + (0 if self.te_skipped else self.te_total)

    @property
    def matched(self) -> int:
        return self.unet_matched + (0 if self.te_skipped else self.te_matched)

    @property
    def verdict(self) -> str:
        if self.total and self.matched == 0:
            return "none"
        return "all" if self.matched == self.total else "partial"

    def line(self, model_strength: float, clip_strength: float) -> str:
        te = ("text encoder skipped (no CLIP)" if self.te_skipped
              else f"text encoder {self.te_matched}/{self.te_total}")
        text = (f"{self.name} [{self.base_model}] @ model {model_strength:.2f} / clip {clip_strength:.2f}: "
                f"{self.matched}/{self.total} modules matched (UNet {self.unet_matched}/{self.unet_total}, {te})")
        if self.verdict == "partial":
            text += "; WARNING partial match, unmatched e.g. " + ", ".join(self.unmatched_examples)
        return text


def _is_te(prefix: str) -> bool:
    return prefix.startswith(("lora_te", "text_encoder", "text_encoders."))


def lora_modules(keys: Iterable[str]) -> set[str]:
    """Module prefixes of a LoRA state dict (unknown-suffix keys count as their own module)."""
    return {module_prefix(k) or k.rsplit(".", 1)[0] for k in keys}


def match_modules(name: str, lora_keys: Iterable[str], key_map: Mapping[str, Any],
                  patched_targets: Collection[Any], clip_present: bool,
                  base_model: str = "unknown") -> MatchReport:
    """Which of the LoRA's modules ComfyUI turned into patches on this model."""
    modules = lora_modules(lora_keys)
    matched = {m for m in modules if m in key_map and _hashable(key_map[m]) in patched_targets}
    unet = {m for m in modules if not _is_te(m)}
    te = modules - unet
    unmatched = sorted((unet | (te if clip_present else set())) - matched)
    return MatchReport(
        name=name, unet_total=len(unet), unet_matched=len(unet & matched), te_total=len(te),
        te_matched=len(te & matched), te_skipped=not clip_present and bool(te),
        unmatched_examples=tuple(unmatched[:MAX_EXAMPLES]), base_model=base_model,
    )


def _hashable(value: Any) -> Any:
    return tuple(_hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


def raise_if_unmatched(report: MatchReport, model_hint: str = "") -> None:
    """Stop with a message that says what is wrong when a LoRA fits nothing in the model."""
    if report.verdict != "none":
        return
    hint = f" (the model looks like {model_hint})" if model_hint else ""
    raise NoKeysMatchedError(
        f"LoRA {report.name} matched 0 of {report.total} modules in this model{hint}: it was trained "
        f"for a different base model (file says: {report.base_model}). Use a LoRA made for this "
        f"checkpoint, or remove it from the stack. Unmatched e.g. {', '.join(report.unmatched_examples)}"
    )
