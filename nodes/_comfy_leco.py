"""LECO's ComfyUI calls: the graph's own MODEL and CLIP, ComfyUI's LoRA weight adapters and sampling code.

The training itself is the engine's (lora_foundry/leco/: the loop in ``train``, the network in
``weight_network``); this bridge implements the two interfaces it asks for with ComfyUI's calls:

- ``ComfyWeights``, the network's ``WeightHost``: one ``comfy.weight_adapter.lora.LoRAAdapter.create_train``
  adapter (ComfyUI's own trainable LoRA, the one its "Train LoRA" node uses) per weight the engine
  picks, attached with ``ModelPatcher.add_weight_wrapper`` on a clone of the model. Kohya names come
  from ``comfy.lora.model_lora_keys_unet`` (diffusers-style names for SD1.x/2.x as sd-scripts writes
  them, original-layout names for SDXL and DiTs), so the saved file is the one ``LoraLoader`` maps
  back to the same weights.
- the backend: each step runs inside ``comfy.samplers.CFGGuider.sample`` with a ``Sampler`` whose
  ``sample`` is the step, as ComfyUI's trainer does, so the model is loaded and patched by
  ComfyUI and the prompts' conditioning is processed by ``process_conds`` (SDXL size conds
  included); predictions go through ``calc_cond_batch``, the partial denoise is Euler steps
  (``leco.train.euler_denoise``, what k-diffusion's ``sample_euler`` does, but not under its
  ``torch.no_grad``: with ``denoise_gradients`` the loss backpropagates through it) on
  ``sampling_function`` (ComfyUI's CFG), sigmas come from ``calculate_sigmas``.
- gradient checkpointing: ComfyUI's trainer helpers (``comfy_extras.nodes_train``), handed to the
  engine's ``weight_network.gradient_checkpointing``.

One of the three modules allowed to import ComfyUI (the list in tests/test_code_rules.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import comfy.lora
import comfy.model_base
import comfy.model_management
import comfy.samplers
import comfy.utils
import comfy.weight_adapter.lora
import torch

from ..lora_foundry.leco.memory import MemoryModel
from ..lora_foundry.leco.train import euler_denoise
from ..lora_foundry.leco.weight_network import CheckpointHelpers, WeightLoraNetwork, select_kohya_names

_BASE_VERSIONS = {"SD15": "sd_v1", "SD20": "sd_v2", "SDXL": "sdxl_base_v1-0"}


class ComfyWeights:
    """The ``WeightHost`` of leco/weight_network.py on a clone of the graph's MODEL: names from
    ComfyUI's LoRA loader, ComfyUI's trainable ``LoRAAdapter``, ``add_weight_wrapper``."""

    def __init__(self, model: Any) -> None:
        self.patcher = model.clone()
        self.model = self.patcher.model
        self.diffusion_model = self.model.diffusion_model

    def kohya_names(self) -> dict[str, str]:
        key_map = comfy.lora.model_lora_keys_unet(self.model, {})
        ldm_layout = isinstance(self.model, comfy.model_base.SDXL) or not any(
            k.startswith("lora_unet_down_blocks_") for k in key_map)
        return select_kohya_names(key_map, set(self.model.state_dict()), ldm_layout)

    def weight(self, key: str) -> torch.Tensor:
        return comfy.utils.get_attr(self.model, key)

    def new_adapter(self, weight: torch.Tensor, rank: int, alpha: float) -> torch.nn.Module:
        return comfy.weight_adapter.lora.LoRAAdapter.create_train(weight, rank=rank, alpha=alpha)

    def attach(self, key: str, wrapper: Any) -> None:
        self.patcher.add_weight_wrapper(key, wrapper)


def lora_network(model: Any, rank: int, alpha: float, seed: int) -> WeightLoraNetwork:
    """The LECO network on a clone of ``model`` (``network.host.patcher`` is the patched clone)."""
    return WeightLoraNetwork(ComfyWeights(model), rank, alpha, seed)


class _StepSampler(comfy.samplers.Sampler):
    """A ComfyUI ``Sampler`` whose sampling is one LECO step (``work``) on the prepared model."""

    def __init__(self, work: Callable[[Any], Any], keys: Mapping[str, str],
                 interrupt: Callable[[], None]) -> None:
        self.work, self.keys, self.interrupt, self.result = work, keys, interrupt, None

    def sample(self, model_wrap: Any, sigmas: torch.Tensor, extra_args: dict, callback: Any, noise: torch.Tensor,
               latent_image: Any = None, denoise_mask: Any = None, disable_pbar: bool = False) -> torch.Tensor:
        predictor = _Predictor(model_wrap, extra_args.get("model_options", {}), self.keys, self.interrupt)
        with torch.inference_mode(False), torch.enable_grad():
            self.result = self.work(predictor)
        return torch.zeros_like(noise)


class _Predictor:
    """The engine's ``Predictor`` inside a running guider: conds already processed by ComfyUI."""

    def __init__(self, guider: Any, model_options: dict, keys: Mapping[str, str],
                 interrupt: Callable[[], None]) -> None:
        self.model = guider.inner_model
        self.conds = guider.conds
        self.model_options = model_options
        self.keys = keys
        self.interrupt = interrupt
        self.device = guider.model_patcher.load_device

    def _sigma(self, sigma: Any, batch: int) -> torch.Tensor:
        return torch.as_tensor(sigma, dtype=torch.float32).to(self.device).reshape(1).expand(batch)

    def initial_latents(self, noise: torch.Tensor, sigma: Any) -> torch.Tensor:
        noise = noise.to(self.device)
        return self.model.model_sampling.noise_scaling(self._sigma(sigma, noise.shape[0]), noise,
                                                       torch.zeros_like(noise))

    def predict_noise(self, latents: torch.Tensor, sigma: Any, prompt: str) -> torch.Tensor:
        sigmas = self._sigma(sigma, latents.shape[0])
        denoised = comfy.samplers.calc_cond_batch(self.model, [self.conds[self.keys[prompt]]], latents, sigmas,
                                                  self.model_options)[0]
        return (latents - denoised) / sigmas.reshape(-1, 1, 1, 1)

    def denoise(self, latents: torch.Tensor, sigmas: Any, prompt: str, negative: str, guidance: float) -> torch.Tensor:
        cond, uncond = self.conds[self.keys[prompt]], self.conds[self.keys[negative]]

        def eps(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            self.interrupt()
            batch = self._sigma(sigma, x.shape[0])
            denoised = comfy.samplers.sampling_function(self.model, x, batch, uncond, cond, guidance,
                                                        self.model_options)
            return (x - denoised) / batch.reshape(-1, 1, 1, 1)

        return euler_denoise(eps, latents, sigmas.to(self.device))


class ComfyBackend:
    """The engine's ``Backend`` on a ModelPatcher carrying the LECO network's wrappers."""

    def __init__(self, patcher: Any, conds: Mapping[str, list], interrupt: Callable[[], None]) -> None:
        self.patcher = patcher
        self.conds = dict(conds)
        self.keys = {prompt: f"leco_{i}" for i, prompt in enumerate(self.conds)}
        self.interrupt = interrupt
        latent_format = patcher.model.latent_format
        self.latent_channels = int(latent_format.latent_channels)
        self.downscale = int(getattr(latent_format, "spacial_downscale_ratio", 8))

    def sigmas(self, steps: int) -> torch.Tensor:
        sampling = self.patcher.get_model_object("model_sampling")
        return comfy.samplers.calculate_sigmas(sampling, "normal", steps).cpu().float()

    def run(self, shape: Sequence[int], work: Callable[[Any], Any]) -> Any:
        guider = comfy.samplers.CFGGuider(self.patcher)
        guider.inner_set_conds({self.keys[p]: c for p, c in self.conds.items()})
        sampler = _StepSampler(work, self.keys, self.interrupt)
        empty = torch.zeros(tuple(shape))
        guider.sample(empty, empty, sampler, torch.tensor([1.0, 0.0]), disable_pbar=True, seed=0)
        return sampler.result


def checkpoint_helpers() -> CheckpointHelpers | None:
    """ComfyUI's own gradient-checkpointing helpers (the ones its "Train LoRA" node uses), or None
    when this ComfyUI has none: its UNet and DiT blocks take no checkpoint flag of their own."""
    try:
        from comfy_extras import nodes_train
    except ImportError:
        return None
    names = ("find_all_highest_child_module_with_forward", "patch", "unpatch")
    if not all(callable(getattr(nodes_train, name, None)) for name in names):
        return None
    return tuple(getattr(nodes_train, name) for name in names)


def encode_prompts(clip: Any, prompts: Sequence[str]) -> dict[str, list]:
    """Each distinct prompt as ComfyUI conditioning, encoded once (CLIPTextEncode's calls)."""
    conds = {}
    with torch.inference_mode(False), torch.no_grad():
        for prompt in dict.fromkeys(prompts):
            encoded = clip.encode_from_tokens_scheduled(clip.tokenize(prompt), show_pbar=False)
            conds[prompt] = [[c.clone(), {k: (v.clone() if isinstance(v, torch.Tensor) else v)
                                          for k, v in extra.items()}] for c, extra in encoded]
    return conds


def base_model_version(model: Any) -> str:
    """sd-scripts' ``ss_base_model_version`` for the model ComfyUI detected ("" when unknown)."""
    return _BASE_VERSIONS.get(type(model.model.model_config).__name__, "")


def memory_model(model: Any, lora_parameters: int) -> MemoryModel:
    config = model.model.model_config.unet_config
    width = int(config.get("model_channels") or config.get("hidden_size") or 1024)
    value_bytes = torch.finfo(model.model_dtype()).bits // 8
    return MemoryModel(int(model.model_size()), lora_parameters, width, value_bytes)


def free_memory_for(model: Any, need: int) -> int:
    """Free bytes on the device the model computes on, after ComfyUI unloaded idle models to make
    room for ``need`` (its own policy: ``free_memory``)."""
    device = model.load_device
    comfy.model_management.free_memory(need, device)
    return int(comfy.model_management.get_free_memory(device))
