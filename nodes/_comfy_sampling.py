"""Rendering evaluation cells with ComfyUI's own sampler: the one place that knows how ComfyUI
encodes a prompt, samples a latent and decodes it (the steps of its CLIPTextEncode, EmptyLatentImage,
KSampler and VAEDecode nodes), so an evaluated image is what a user's KSampler graph would make.

Like ``_comfy.py`` it imports ComfyUI lazily; nodes import it, the engine never does.

A LoRA (or every LoRA of a ``LORA_STACK``) is applied with ``comfy.sd.load_lora_for_models`` at
the cell's strength times its own model/clip strengths. Strength 0 means the base model itself
(no patch at all), which is what makes strength-0 cells the base images bit for bit and lets every
LoRA share them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..lora_foundry.evaluate.matrix import RenderSettings
from ..lora_foundry.lora.files import load_state_dict
from ._tensors import tensor_to_images


def _comfy(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise RuntimeError(f"rendering needs ComfyUI ({name} is not importable)") from exc


@dataclass(frozen=True)
class LoraPart:
    """One LoRA file and its own strengths (1.0/1.0 for a single LoRA; a stack's rows otherwise)."""

    path: Path
    strength_model: float = 1.0
    strength_clip: float = 1.0


def encode(clip: Any, text: str) -> Any:
    """Conditioning for ``text``, as ComfyUI's CLIPTextEncode makes it."""
    import torch

    with torch.inference_mode():
        return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def sample_image(model: Any, positive: Any, negative: Any, vae: Any, settings: RenderSettings, seed: int) -> np.ndarray:
    """One image as KSampler (``nodes.common_ksampler``) then VAEDecode make it: RGB uint8."""
    import torch

    sample = _comfy("comfy.sample")
    mm = _comfy("comfy.model_management")
    with torch.inference_mode():  # as ComfyUI runs nodes; also when called from a script
        latent = torch.zeros([1, 4, settings.height // 8, settings.width // 8], device=mm.intermediate_device())
        latent = sample.fix_empty_latent_channels(model, latent)
        noise = sample.prepare_noise(latent, seed, None)
        samples = sample.sample(model, noise, settings.steps, settings.cfg, settings.sampler, settings.scheduler,
                                positive, negative, latent, denoise=1.0, disable_pbar=True, seed=seed)
        pixels = vae.decode(samples)
        while pixels.ndim > 4:  # video VAEs add a time axis
            pixels = pixels.reshape(-1, *pixels.shape[-3:])
        return tensor_to_images(pixels[:1])[0]


class ComfyRenderer:
    """The ``Renderer`` (lora_foundry/evaluate/evaluation.py) for ComfyUI objects.

    Holds the patched model/clip of the last strength and the encoded prompts of that strength:
    cells are rendered grouped by strength, so each LoRA patch is built once per strength.
    """

    def __init__(self, model: Any, clip: Any, vae: Any, loras: Sequence[LoraPart], settings: RenderSettings,
                 model_identity: str, lora_identity: str) -> None:
        self.model, self.clip, self.vae = model, clip, vae
        self.loras = list(loras)
        self.settings = settings
        self.model_identity = model_identity
        self.lora_identity = lora_identity
        self._states: list[dict[str, Any]] | None = None
        self._patched: tuple[float, Any, Any] | None = None
        self._conds: dict[str, Any] = {}

    def _lora_states(self) -> list[dict[str, Any]]:
        if self._states is None:
            self._states = [load_state_dict(part.path) for part in self.loras]
        return self._states

    def _models(self, strength: float) -> tuple[Any, Any]:
        if strength == 0 or not self.loras:
            return self.model, self.clip
        if self._patched is None or self._patched[0] != strength:
            sd = _comfy("comfy.sd")
            model, clip = self.model, self.clip
            for part, state in zip(self.loras, self._lora_states(), strict=True):
                model, clip = sd.load_lora_for_models(model, clip, state, part.strength_model * strength,
                                                      part.strength_clip * strength)
            self._patched, self._conds = (strength, model, clip), {}
        return self._patched[1], self._patched[2]

    def _cond(self, clip: Any, strength: float, text: str) -> Any:
        key = f"{0 if strength == 0 or not self.loras else strength}|{text}"
        if key not in self._conds:
            self._conds[key] = encode(clip, text)
        return self._conds[key]

    def render(self, prompt: str, strength: float, seed: int) -> np.ndarray:
        model, clip = self._models(strength)
        positive = self._cond(clip, strength, prompt)
        negative = self._cond(clip, strength, self.settings.negative)
        return sample_image(model, positive, negative, self.vae, self.settings, seed)


def samplers() -> tuple[list[str], list[str]]:
    """ComfyUI's sampler and scheduler names (for the node's combos); defaults outside ComfyUI."""
    try:
        samplers_module = importlib.import_module("comfy.samplers")
    except ImportError:
        return ["euler"], ["normal"]
    return list(samplers_module.KSampler.SAMPLERS), list(samplers_module.KSampler.SCHEDULERS)
