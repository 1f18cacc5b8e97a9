"""Starting values per (architecture, LoRA type), each of which a workflow may override.

The numbers are the middle of the ranges the community converged on (and the issue lists):
SD1.5 lr 1e-4, rank 4-16, 1500-3000 steps for a character and 3000-6000 for a style; SDXL
5e-5-1e-4, rank 8-32; Flux 1e-4-4e-4, rank 16-64; SD3 5e-5-1e-4, rank 16-32; cosine schedule with
a warmup of about 5 % of the steps. They are a place to start, not a promise: the node exposes
every one of them as an override.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

ARCHITECTURES = ("sd15", "sd2", "sdxl", "flux", "sd3")
LORA_TYPES = ("character", "style", "concept")


@dataclass(frozen=True)
class Preset:
    """Training hyper-parameters for one (architecture, LoRA type)."""

    learning_rate: float
    network_dim: int
    network_alpha: float
    max_train_steps: int
    resolution: int
    train_batch_size: int = 1
    lr_scheduler: str = "cosine"
    warmup_fraction: float = 0.05
    optimizer_type: str = "AdamW"
    mixed_precision: str = "bf16"

    @property
    def lr_warmup_steps(self) -> int:
        return int(round(self.max_train_steps * self.warmup_fraction))

    def with_overrides(self, **overrides: Any) -> Preset:
        """This preset with the given fields replaced; ``None`` and 0 mean "keep the preset's"."""
        chosen = {k: v for k, v in overrides.items() if v not in (None, 0, 0.0, "")}
        unknown = set(chosen) - set(self.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown preset fields: {sorted(unknown)}")
        return replace(self, **chosen)


_PRESETS: dict[tuple[str, str], Preset] = {
    ("sd15", "character"): Preset(1e-4, 16, 8, 2000, 512),
    ("sd15", "style"): Preset(1e-4, 16, 8, 4000, 512),
    ("sd15", "concept"): Preset(1e-4, 8, 4, 2000, 512),
    ("sd2", "character"): Preset(1e-4, 16, 8, 2000, 768),
    ("sd2", "style"): Preset(1e-4, 16, 8, 4000, 768),
    ("sd2", "concept"): Preset(1e-4, 8, 4, 2000, 768),
    ("sdxl", "character"): Preset(1e-4, 16, 8, 2000, 1024),
    ("sdxl", "style"): Preset(5e-5, 32, 16, 4000, 1024),
    ("sdxl", "concept"): Preset(8e-5, 16, 8, 2500, 1024),
    ("flux", "character"): Preset(2e-4, 32, 16, 1500, 1024),
    ("flux", "style"): Preset(1e-4, 32, 16, 3000, 1024),
    ("flux", "concept"): Preset(2e-4, 16, 8, 2000, 1024),
    ("sd3", "character"): Preset(1e-4, 16, 8, 2000, 1024),
    ("sd3", "style"): Preset(5e-5, 32, 16, 3000, 1024),
    ("sd3", "concept"): Preset(8e-5, 16, 8, 2000, 1024),
}


def get_preset(architecture: str, lora_type: str) -> Preset:
    """The preset for (architecture, LoRA type), or a ValueError listing the valid choices."""
    try:
        return _PRESETS[(architecture, lora_type)]
    except KeyError:
        raise ValueError(
            f"no preset for architecture {architecture!r} and LoRA type {lora_type!r}; "
            f"architectures: {list(ARCHITECTURES)}, LoRA types: {list(LORA_TYPES)}"
        ) from None


def preset_table() -> list[dict[str, Any]]:
    """All presets as rows (for docs and the node's description)."""
    return [
        {"architecture": a, "lora_type": t, "learning_rate": p.learning_rate, "rank": p.network_dim,
         "alpha": p.network_alpha, "steps": p.max_train_steps, "warmup": p.lr_warmup_steps,
         "resolution": p.resolution, "scheduler": p.lr_scheduler}
        for (a, t), p in _PRESETS.items()
    ]
