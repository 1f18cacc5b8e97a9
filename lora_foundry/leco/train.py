"""The LECO training loop, on any model that predicts noise and any LoRA with a multiplier.

One step (sd-scripts' ``train_leco.py``, in k-diffusion's sigma terms so ComfyUI's samplers fit):
pick a setting; denoise fresh noise for ``k ~ U[1, max_denoising_steps)`` of ``max_denoising_steps``
steps with the LoRA at the setting's multiplier and CFG ``denoise_guidance`` on ``target``; at that
sigma predict ``positive``, ``neutral`` and ``unconditional`` with the LoRA off; the target is
``neutral ∓ g·(positive − unconditional)`` (erase / enhance); the loss is ``weight`` × the MSE
between it and the LoRA-on prediction for ``target`` (× the min-SNR weight when ``min_snr_gamma``).

The partial denoise is where the two LECOs differ, so it is a choice (``denoise_gradients``): off,
as in the original LECO (p1atdev/LECO), it runs without gradients and only the last prediction
keeps a graph (memory of one model pass); on, as in sd-scripts' ``train_leco.py`` (063ef100), the
loss also backpropagates through every denoising step the LoRA took part in (more memory, slower,
a slightly different gradient). ``noise_offset`` adds ``offset × N(0,1)`` per latent channel to the
starting noise, as sd-scripts does. ``min_snr_gamma`` weights the loss by ``min(SNR, γ)/SNR`` of
the sigma the loss is taken at (SNR = 1/σ²); sd-scripts 063ef100 passes the index ``k·1000/N`` to
its SNR table instead of the timestep ``999 − k·1000/N`` it predicts at, so its weights differ.

Everything random in step ``n`` comes from a generator seeded with ``(seed, n)``, so a run resumed
from a checkpoint continues exactly as the uninterrupted run would have (checked by a test).
``Backend.run`` exists because ComfyUI's model is patched only while its sampler runs: the whole
step, backward included, happens inside it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar

from ..progress import Progress, ensure_progress
from .network import LoraNetwork
from .prompts import PromptSetting

T = TypeVar("T")
DDPM_BETA_START, DDPM_BETA_END, DDPM_STEPS = 0.00085, 0.012, 1000


class Predictor(Protocol):
    def initial_latents(self, noise: Any, sigma: Any) -> Any:
        """Fresh noise scaled to the first sigma of the schedule."""

    def predict_noise(self, latents: Any, sigma: Any, prompt: str) -> Any:
        """The model's noise (epsilon) prediction for ``prompt`` at ``sigma``."""

    def denoise(self, latents: Any, sigmas: Any, prompt: str, negative: str, guidance: float) -> Any:
        """``latents`` sampled along ``sigmas`` with CFG ``guidance`` (with gradients only when
        ``denoise_gradients`` is on: then it must not switch them off itself)."""


class Backend(Protocol):
    latent_channels: int
    downscale: int

    def sigmas(self, steps: int) -> Any:
        """``steps + 1`` descending sigmas ending at 0."""

    def run(self, shape: tuple[int, ...], work: Callable[[Predictor], T]) -> T:
        """Call ``work`` with a predictor valid for latents of ``shape``."""


class CheckpointStore(Protocol):
    def resume(self, fingerprint: str, network: LoraNetwork, optimizer: Any) -> tuple[int, list[float]]:
        """(step, losses) of the last checkpoint of this run, weights and optimizer restored; (0, [])."""

    def save_checkpoint(self, step: int, network: LoraNetwork, optimizer: Any, losses: list[float],
                        fingerprint: str) -> Any:
        """Write a loadable LoRA for ``step`` and the state to resume from."""


@dataclass(frozen=True)
class LecoConfig:
    """How long and how hard to train, in the graph (``train_leco``) or through kohya's
    ``train_leco.py`` (``kohya.leco_route.LecoRequest.training``); the defaults are sd-scripts' LECO
    defaults where it has them. ``save_every`` 0 (only the final LoRA) is sd-scripts' and the
    command line's default; the LF Train LECO node's widget still defaults to 50."""

    steps: int = 500
    learning_rate: float = 1e-4
    max_denoising_steps: int = 40
    denoise_guidance: float = 3.0
    seed: int = 0
    save_every: int = 0
    max_grad_norm: float = 1.0
    resume: bool = True
    denoise_gradients: bool = False  # False: the original LECO; True: sd-scripts' train_leco.py
    min_snr_gamma: float = 0.0  # 0 = off
    noise_offset: float = 0.0  # 0 = off


# Options added after checkpoints existed: left out of the fingerprint at their defaults, so a run
# saved before they existed still resumes.
_LATER_OPTIONS = {"denoise_gradients": False, "min_snr_gamma": 0.0, "noise_offset": 0.0}


@dataclass
class LecoResult:
    """What a run did: where it started (a resume), the loss per step, and the last step saved."""

    start_step: int
    steps_done: int
    losses: list[float] = field(default_factory=list)
    saved_steps: list[int] = field(default_factory=list)


def build_target(setting: PromptSetting, positive: Any, neutral: Any, unconditional: Any) -> Any:
    """``neutral − g·(positive − unconditional)`` to erase, ``+`` to enhance."""
    offset = setting.guidance_scale * (positive - unconditional)
    return neutral - offset if setting.action == "erase" else neutral + offset


def ddpm_sigmas(steps: int) -> Any:
    """``steps + 1`` sigmas of the SD DDPM scaled-linear schedule (0.00085–0.012), evenly spaced in
    timesteps from 999 down, then 0: ComfyUI's "normal" scheduler on an SD1.x/SDXL model."""
    import torch

    betas = torch.linspace(DDPM_BETA_START ** 0.5, DDPM_BETA_END ** 0.5, DDPM_STEPS, dtype=torch.float64) ** 2
    alphas = torch.cumprod(1.0 - betas, dim=0)
    all_sigmas = ((1 - alphas) / alphas) ** 0.5
    timesteps = torch.linspace(DDPM_STEPS - 1, 0, steps + 1)[:-1]
    chosen = [float(all_sigmas[int(round(float(t)))]) for t in timesteps]
    return torch.tensor(chosen + [0.0], dtype=torch.float32)


def euler_denoise(predict: Callable[[Any, Any], Any], latents: Any, sigmas: Any) -> Any:
    """Euler steps along ``sigmas`` with a noise predictor (k-diffusion's ``sample_euler`` for eps)."""
    for i in range(len(sigmas) - 1):
        latents = latents + predict(latents, sigmas[i]) * (sigmas[i + 1] - sigmas[i])
    return latents


def fingerprint(settings: Sequence[PromptSetting], config: LecoConfig, network: LoraNetwork) -> str:
    """What must match for a checkpoint to be resumed (not ``steps``: a run can be extended)."""
    options = {k: v for k, v in asdict(config).items()
               if k not in ("steps", "save_every", "resume") and not (k in _LATER_OPTIONS and _LATER_OPTIONS[k] == v)}
    data = {"settings": [asdict(s) for s in settings], "rank": network.rank, "alpha": network.alpha, **options}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _step_draws(settings: Sequence[PromptSetting], config: LecoConfig, step: int) -> tuple[Any, int, tuple[int, int], Any]:
    """The setting, depth, size and generator of step ``step`` (reproducible across resumes)."""
    import torch

    generator = torch.Generator().manual_seed(int(config.seed) * 1_000_003 + step)
    setting = settings[int(torch.randint(0, len(settings), (1,), generator=generator))]
    depth = int(torch.randint(1, config.max_denoising_steps, (1,), generator=generator))
    height, width = setting.resolution
    if setting.dynamic_resolution and height == width:
        low, high = height // 2 // 64, height // 64
        height, width = (int(torch.randint(low, high + 1, (1,), generator=generator)) * 64 for _ in range(2))
    return setting, depth, (height, width), generator


def snr_weight(sigma: Any, gamma: float) -> float:
    """Min-SNR-γ weight of an epsilon loss at ``sigma``: ``min(SNR, γ) / SNR`` with SNR = 1/σ²."""
    snr = 1.0 / max(float(sigma), 1e-12) ** 2
    return min(snr, gamma) / snr if gamma > 0 else 1.0


def leco_step(predictor: Predictor, network: LoraNetwork, setting: PromptSetting, sigmas: Any, depth: int,
              noise: Any, denoise_guidance: float, denoise_gradients: bool = False, min_snr_gamma: float = 0.0) -> float:
    """One LECO step: partial denoise, the three LoRA-off predictions, the loss, backward."""
    import torch

    with torch.set_grad_enabled(denoise_gradients):
        network.set_multiplier(setting.multiplier)
        latents = predictor.initial_latents(noise, sigmas[0])
        latents = predictor.denoise(latents, sigmas[: depth + 1], setting.target, setting.unconditional,
                                    denoise_guidance)
    with torch.no_grad():
        network.set_multiplier(0.0)
        sigma = sigmas[depth]
        positive = predictor.predict_noise(latents, sigma, setting.positive)
        neutral = predictor.predict_noise(latents, sigma, setting.neutral)
        unconditional = predictor.predict_noise(latents, sigma, setting.unconditional)
        target = build_target(setting, positive, neutral, unconditional)
    network.set_multiplier(setting.multiplier)
    try:
        prediction = predictor.predict_noise(latents if denoise_gradients else latents.detach(), sigma, setting.target)
        loss = torch.nn.functional.mse_loss(prediction.float(), target.float()) * setting.weight
        loss = loss * snr_weight(sigma, min_snr_gamma)
        loss.backward()
    finally:
        network.set_multiplier(0.0)
    return float(loss.detach())


def _step_work(predictor: Predictor, **step: Any) -> float:
    """``leco_step`` with the predictor first, as ``Backend.run`` calls it."""
    return leco_step(predictor, **step)


def train_leco(backend: Backend, network: LoraNetwork, settings: Sequence[PromptSetting], config: LecoConfig,
               store: CheckpointStore, progress: Progress | None = None,
               on_loss: Callable[[int, float], None] | None = None) -> LecoResult:
    """Train ``network`` for ``config.steps``; checkpoints every ``save_every`` steps through
    ``store``. Cancel is whatever ``progress.update`` raises: it is called after each step's
    checkpoint, so the last saved step is always on disk when it raises."""
    import torch

    if not settings:
        raise ValueError("no LECO settings to train on")
    progress = ensure_progress(progress)
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.learning_rate)
    key = fingerprint(settings, config, network)
    start, losses = store.resume(key, network, optimizer) if config.resume else (0, [])
    result = LecoResult(start_step=start, steps_done=start, losses=list(losses))
    sigmas = backend.sigmas(config.max_denoising_steps)
    progress.update(start, config.steps)
    for step in range(start, config.steps):
        setting, depth, (height, width), generator = _step_draws(settings, config, step)
        shape = (setting.batch_size, backend.latent_channels, height // backend.downscale, width // backend.downscale)
        noise = torch.randn(shape, generator=generator)
        if config.noise_offset:
            noise = noise + config.noise_offset * torch.randn((*shape[:2], 1, 1), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        work = functools.partial(_step_work, network=network, setting=setting, sigmas=sigmas, depth=depth,
                                 noise=noise, denoise_guidance=config.denoise_guidance,
                                 denoise_gradients=config.denoise_gradients, min_snr_gamma=config.min_snr_gamma)
        loss = backend.run(shape, work)
        if not math.isfinite(loss):
            raise FloatingPointError(f"LECO loss became {loss} at step {step + 1}; lower the learning rate")
        if config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)
        optimizer.step()
        result.losses.append(loss)
        result.steps_done = step + 1
        if on_loss is not None:
            on_loss(step + 1, loss)
        if config.save_every and result.steps_done % config.save_every == 0 and result.steps_done < config.steps:
            store.save_checkpoint(result.steps_done, network, optimizer, result.losses, key)
            result.saved_steps.append(result.steps_done)
        progress.update(result.steps_done, config.steps)
    return result
