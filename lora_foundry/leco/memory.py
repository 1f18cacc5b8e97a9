"""Refuse a LECO batch and resolution that cannot fit, before the first step, and say what would.

A deliberately simple estimate (an upper-bound rule of thumb, not a profiler):
``model weights + LoRA (weights, gradients, two AdamW moments: 4 copies in float32)
+ batch × latent pixels × ACTIVATION_FACTOR × width × bytes per value``.
Only the LoRA-on prediction keeps activations for backward (the partial denoise and the three
LoRA-off predictions run without gradients), so one forward+backward of the model sets the peak.
``width`` is the model's base channel count (SD1.5/SDXL UNets: 320) or its hidden size (DiTs).
ACTIVATION_FACTOR = 1700 matches SD1.5 at 512×512 batch 1 in fp16 needing about 4.5 GB of
activations without gradient checkpointing (4096 latent pixels × 1700 × 320 × 2 bytes ≈ 4.5 GB);
it overestimates smaller models, which is the safe side for a refusal.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATION_FACTOR = 1700
LORA_COPIES = 4
HEADROOM = 0.9  # leave a tenth of the free memory to the allocator and everything else
GIB = 1024 ** 3


class LecoMemoryError(MemoryError):
    """The requested batch and resolution would not fit in the memory that is free."""


@dataclass(frozen=True)
class MemoryModel:
    """What the estimate needs to know about the model being trained."""

    model_bytes: int
    lora_parameters: int
    width: int
    value_bytes: int = 2
    downscale: int = 8

    def estimate(self, batch: int, height: int, width: int) -> int:
        pixels = (height // self.downscale) * (width // self.downscale)
        activations = batch * pixels * ACTIVATION_FACTOR * self.width * self.value_bytes
        return int(self.model_bytes + self.lora_parameters * 4 * LORA_COPIES + activations)


def _suggestion(model: MemoryModel, batch: int, height: int, width: int, budget: float) -> str:
    fitting_batch = max((b for b in range(batch - 1, 0, -1) if model.estimate(b, height, width) <= budget), default=0)
    if fitting_batch:
        return f"batch_size {fitting_batch} at {width}×{height} would fit"
    for side in range(min(height, width) - 64, 63, -64):
        if model.estimate(1, side, side) <= budget:
            return f"batch_size 1 at {side}×{side} would fit"
    return "nothing fits: free memory (close other models) or use a smaller model"


def check_fits(model: MemoryModel, batch: int, height: int, width: int, free_bytes: int) -> int:
    """The estimate in bytes; ``LecoMemoryError`` naming a batch/resolution that fits when it does not."""
    need = model.estimate(batch, height, width)
    budget = free_bytes * HEADROOM
    if need > budget:
        raise LecoMemoryError(
            f"LECO at batch_size {batch}, {width}×{height} needs about {need / GIB:.1f} GB but "
            f"{free_bytes / GIB:.1f} GB is free; {_suggestion(model, batch, height, width, budget)} "
            "(see lora_foundry/leco/memory.py for the estimate)")
    return need
