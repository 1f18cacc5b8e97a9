"""LECO on the graph's own MODEL and CLIP, with ComfyUI's LoRA weight adapters and sampling code.

The engine loop (lora_foundry/leco/train.py) asks for a ``Backend`` and a ``LoraNetwork``; here
both are built from ComfyUI, not copied from it:

- the network: one ``comfy.weight_adapter.lora.LoRAAdapter.create_train`` adapter (ComfyUI's own
  trainable LoRA, the one its "Train LoRA" node uses) per attention/projection weight, attached
  with ``ModelPatcher.add_weight_wrapper`` on a clone of the model, behind a wrapper that applies it
  at the current multiplier (0 skips it: LECO predicts with the LoRA off and on within a step).
  Kohya names come from ``comfy.lora.model_lora_keys_unet`` (diffusers-style names for SD1.x/2.x as
  sd-scripts writes them, original-layout names for SDXL and DiTs), so the saved file is the one
  ``LoraLoader`` maps back to the same weights.
- the backend: each step runs inside ``comfy.samplers.CFGGuider.sample`` with a ``Sampler`` whose
  ``sample`` is the step, as ComfyUI's trainer does, so the model is loaded and patched by
  ComfyUI and the prompts' conditioning is processed by ``process_conds`` (SDXL size conds
  included); predictions go through ``calc_cond_batch``, the partial denoise is k-diffusion's
  ``sample_euler`` on ``sampling_function`` (ComfyUI's CFG), sigmas come from ``calculate_sigmas``.
- gradient checkpointing: ComfyUI's trainer helpers (``comfy_extras.nodes_train``) wrap the diffusion
  model's top-level blocks for the run and unwrap them after.

Only modules named ``nodes/_comfy*.py`` may import ComfyUI (tests/test_code_rules.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import comfy.k_diffusion.sampling
import comfy.lora
import comfy.model_base
import comfy.model_management
import comfy.samplers
import comfy.utils
import comfy.weight_adapter.lora
import torch

from ..lora_foundry.leco.memory import MemoryModel
from ..lora_foundry.leco.network import kohya_shapes

SD_LAYER_WORDS = ("transformer_blocks", "proj_in", "proj_out")
DIT_LAYER_WORDS = ("attn", "mlp", "ff", "proj")
_BASE_VERSIONS = {"SD15": "sd_v1", "SD20": "sd_v2", "SDXL": "sdxl_base_v1-0"}


class _AtMultiplier(torch.nn.Module):
    """A ComfyUI train adapter applied at the network's multiplier: w + m·(adapter(w) − w)."""

    def __init__(self, adapter: torch.nn.Module, network: ComfyLoraNetwork) -> None:
        super().__init__()
        self.adapter = adapter
        self._network = [network]  # a list: not registered as a submodule

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        multiplier = self._network[0].multiplier
        if multiplier == 0.0:
            return weight
        return weight + multiplier * (self.adapter(weight) - weight)

    def move_to(self, device: Any) -> int:
        return self.adapter.move_to(device)


def _kohya_names(model: Any) -> dict[str, str]:
    """{model weight key: kohya module name} for every diffusion-model weight LoraLoader maps."""
    key_map = comfy.lora.model_lora_keys_unet(model, {})
    present = set(model.state_dict())
    ldm_style = isinstance(model, comfy.model_base.SDXL) or not any(
        k.startswith("lora_unet_down_blocks_") for k in key_map)
    names: dict[str, str] = {}
    for name, weight_key in key_map.items():
        if not name.startswith("lora_unet_") or weight_key not in present:
            continue
        is_ldm = name == "lora_unet_" + weight_key[len("diffusion_model."):-len(".weight")].replace(".", "_")
        if is_ldm == ldm_style:
            names[weight_key] = name
    return names


def _trainable(weight_key: str, weight: torch.Tensor, dit: bool) -> bool:
    linear = weight.dim() == 2
    pointwise = weight.dim() == 4 and tuple(weight.shape[2:]) == (1, 1)
    words = DIT_LAYER_WORDS if dit else SD_LAYER_WORDS
    return (linear or pointwise) and any(word in weight_key for word in words)


def _trainable_through(model: torch.nn.Module) -> None:
    """Swap inference-mode weights for equal normal tensors, once, so gradients can flow through them.

    ComfyUI loads checkpoints inside ``torch.inference_mode``; such tensors cannot be saved for
    backward, yet the gradient of a LoRA in an early layer flows back through every later layer.
    (ComfyUI's own trainer puts a weight function on every layer, which copies every weight at every
    forward; one swap is cheaper: measured, a third of each forward went to those copies.) The values
    are identical, so every other user of the shared model sees no change."""
    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.is_inference():
                setattr(module, name, torch.nn.Parameter(param.detach().clone(), requires_grad=False))


class ComfyLoraNetwork:
    """The engine's ``LoraNetwork`` over ComfyUI train adapters on a clone of ``model``."""

    def __init__(self, model: Any, rank: int, alpha: float, seed: int) -> None:
        self.rank, self.alpha, self.multiplier = int(rank), float(alpha), 0.0
        self.patcher = model.clone()
        base = self.patcher.model
        names = _kohya_names(base)
        dit = not any(word in key for key in names for word in SD_LAYER_WORDS)
        self.adapters: dict[str, tuple[torch.nn.Module, tuple[int, ...]]] = {}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for weight_key, kohya_name in sorted(names.items()):
                weight = comfy.utils.get_attr(base, weight_key)
                if not _trainable(weight_key, weight, dit):
                    continue
                adapter = comfy.weight_adapter.lora.LoRAAdapter.create_train(
                    weight.float(), rank=self.rank, alpha=self.alpha).to(torch.float32)
                self.patcher.add_weight_wrapper(weight_key, _AtMultiplier(adapter, self))
                self.adapters[kohya_name] = (adapter, tuple(weight.shape))
        if not self.adapters:
            raise ValueError("this model has no attention or projection weights LECO can train")
        base.requires_grad_(False)
        _trainable_through(base.diffusion_model)

    def set_multiplier(self, value: float) -> None:
        self.multiplier = float(value)

    def parameters(self) -> list[torch.Tensor]:
        return [p for adapter, _ in self.adapters.values() for p in (adapter.lora_down.weight,
                                                                    adapter.lora_up.weight)]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def kohya_state(self) -> dict[str, torch.Tensor]:
        state = {}
        for name, (adapter, shape) in self.adapters.items():
            down, up = kohya_shapes(adapter.lora_down.weight.detach(), adapter.lora_up.weight.detach(), shape)
            state[f"{name}.lora_down.weight"] = down.float().cpu().contiguous()
            state[f"{name}.lora_up.weight"] = up.float().cpu().contiguous()
            state[f"{name}.alpha"] = torch.tensor(self.alpha)
        return state

    def load_kohya_state(self, state: Mapping[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, (adapter, _) in self.adapters.items():
                for part in ("lora_down", "lora_up"):
                    param = getattr(adapter, part).weight
                    param.copy_(state[f"{name}.{part}.weight"].reshape(param.shape))


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

        def model(x: torch.Tensor, sigma: torch.Tensor, **_: Any) -> torch.Tensor:
            return comfy.samplers.sampling_function(self.model, x, sigma, uncond, cond, guidance, self.model_options)

        return comfy.k_diffusion.sampling.sample_euler(model, latents, sigmas.to(self.device),
                                                       callback=lambda _: self.interrupt(), disable=True)


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


def _checkpoint_helpers() -> tuple[Callable, Callable, Callable] | None:
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


@contextlib.contextmanager
def gradient_checkpointing(patcher: Any, enabled: bool) -> Iterator[str]:
    """Recompute each top-level block of the diffusion model in backward instead of keeping its
    activations, as ComfyUI's trainer does; the blocks' forwards are restored on exit (the model is
    the graph's, shared). Yields the state for the report: "on", "off" or "not available"."""
    helpers = _checkpoint_helpers() if enabled else None
    if helpers is None:
        yield "not available in this ComfyUI" if enabled else "off"
        return
    find, patch, unpatch = helpers
    blocks = find(patcher.model.diffusion_model)
    for block in blocks:
        patch(block)
    try:
        yield "on"
    finally:
        for block in blocks:
            unpatch(block)


@contextlib.contextmanager
def training_mode() -> Iterator[None]:
    """Gradients on and ComfyUI's inference mode off: tensors made inside can be trained."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


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
