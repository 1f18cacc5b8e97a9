"""A LECO network on a host model's weights: the adapters wrap weights, not layers.

Inside ComfyUI the model is the graph's, shared with every other node, and ComfyUI owns how its
weights are computed (``ModelPatcher.add_weight_wrapper``). So the network never patches the model
itself: it asks a ``WeightHost`` (the bridge, nodes/_comfy_leco.py, implements it with ComfyUI's
calls) for the kohya names of the weights, the weights, a trainable adapter per weight and a place
to attach it. What to train, how an adapter applies at the multiplier, turning inference-mode
weights into trainable ones, the kohya state, and gradient checkpointing's order are decided here,
so they are tested without ComfyUI (tests/test_leco_weight_network.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from .network import adapter_kohya_state, load_adapter_kohya_state

SD_LAYER_WORDS = ("transformer_blocks", "proj_in", "proj_out")
DIT_LAYER_WORDS = ("attn", "mlp", "ff", "proj")
CheckpointHelpers = tuple[Callable[[Any], list], Callable[[Any], None], Callable[[Any], None]]


class WeightHost(Protocol):
    """What the network needs from the model it trains on (a clone: wrappers stay off the original)."""

    model: Any  # the whole torch module (frozen: only the adapters train)
    diffusion_model: Any  # the part the LECO steps run through (made trainable-through)

    def kohya_names(self) -> dict[str, str]:
        """{weight key: kohya module name} for every weight a LoRA loader maps back."""

    def weight(self, key: str) -> Any:
        """The weight tensor at ``key``."""

    def new_adapter(self, weight: Any, rank: int, alpha: float) -> Any:
        """A trainable module with ``lora_down``/``lora_up`` that maps a weight to the adapted one."""

    def attach(self, key: str, wrapper: Any) -> None:
        """Compute weight ``key`` through ``wrapper`` from now on."""


def select_kohya_names(key_map: Mapping[str, str], present: set[str], ldm_layout: bool) -> dict[str, str]:
    """{weight key: kohya name} from a loader's ``{kohya name: weight key}`` map, keeping one naming
    per weight: original-layout (ldm) names when ``ldm_layout`` (SDXL, DiTs), else the diffusers
    names sd-scripts writes for SD1.x/2.x."""
    names: dict[str, str] = {}
    for name, weight_key in key_map.items():
        if not name.startswith("lora_unet_") or weight_key not in present:
            continue
        is_ldm = name == "lora_unet_" + weight_key[len("diffusion_model."):-len(".weight")].replace(".", "_")
        if is_ldm == ldm_layout:
            names[weight_key] = name
    return names


def trainable(weight_key: str, weight: Any, dit: bool) -> bool:
    """Linear and 1×1 conv weights of attention/projection layers (kohya's default LoRA targets)."""
    linear = weight.dim() == 2
    pointwise = weight.dim() == 4 and tuple(weight.shape[2:]) == (1, 1)
    words = DIT_LAYER_WORDS if dit else SD_LAYER_WORDS
    return (linear or pointwise) and any(word in weight_key for word in words)


def trainable_through(model: Any) -> None:
    """Swap inference-mode weights for equal normal tensors, once, so gradients can flow through them.

    ComfyUI loads checkpoints inside ``torch.inference_mode``; such tensors cannot be saved for
    backward, yet the gradient of a LoRA in an early layer flows back through every later layer.
    (ComfyUI's own trainer puts a weight function on every layer, which copies every weight at every
    forward; one swap is cheaper: measured, a third of each forward went to those copies.) The values
    are identical, so every other user of the shared model sees no change."""
    import torch

    for module in model.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param.is_inference():
                setattr(module, name, torch.nn.Parameter(param.detach().clone(), requires_grad=False))


def _multiplier_wrapper() -> type:
    """The weight wrapper class (made on first use: torch is imported only when training): applies
    an adapter at its network's multiplier, w + m·(adapter(w) − w)."""
    import torch

    class AtMultiplier(torch.nn.Module):
        def __init__(self, adapter: torch.nn.Module, network: WeightLoraNetwork) -> None:
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

    return AtMultiplier


class WeightLoraNetwork:
    """The loop's ``LoraNetwork`` over one adapter per trainable weight of ``host``."""

    def __init__(self, host: WeightHost, rank: int, alpha: float, seed: int) -> None:
        import torch

        self.host = host
        self.rank, self.alpha, self.multiplier = int(rank), float(alpha), 0.0
        names = host.kohya_names()
        dit = not any(word in key for key in names for word in SD_LAYER_WORDS)
        self.adapters: dict[str, tuple[Any, tuple[int, ...]]] = {}
        wrapper = _multiplier_wrapper()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for weight_key, kohya_name in sorted(names.items()):
                weight = host.weight(weight_key)
                if not trainable(weight_key, weight, dit):
                    continue
                adapter = host.new_adapter(weight.float(), self.rank, self.alpha).to(torch.float32)
                host.attach(weight_key, wrapper(adapter, self))
                self.adapters[kohya_name] = (adapter, tuple(weight.shape))
        if not self.adapters:
            raise ValueError("this model has no attention or projection weights LECO can train")
        host.model.requires_grad_(False)
        trainable_through(host.diffusion_model)

    def set_multiplier(self, value: float) -> None:
        self.multiplier = float(value)

    def _factors(self) -> dict[str, tuple[Any, Any, tuple[int, ...]]]:
        return {name: (adapter.lora_down.weight, adapter.lora_up.weight, shape)
                for name, (adapter, shape) in self.adapters.items()}

    def parameters(self) -> list[Any]:
        return [p for down, up, _ in self._factors().values() for p in (down, up)]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def kohya_state(self) -> dict[str, Any]:
        return adapter_kohya_state(self._factors(), self.alpha)

    def load_kohya_state(self, state: Mapping[str, Any]) -> None:
        load_adapter_kohya_state(self._factors(), state)


@contextlib.contextmanager
def gradient_checkpointing(diffusion_model: Any, helpers: CheckpointHelpers | None,
                           enabled: bool) -> Iterator[str]:
    """Recompute each top-level block of the diffusion model in backward instead of keeping its
    activations, with the host's ``(find blocks, patch, unpatch)`` helpers; the blocks' forwards are
    restored on exit (the model is the graph's, shared). Yields the state for the report: "on",
    "off" or "not available in this ComfyUI" (no helpers)."""
    if not enabled:
        yield "off"
        return
    if helpers is None:
        yield "not available in this ComfyUI"
        return
    find, patch, unpatch = helpers
    blocks = find(diffusion_model)
    for block in blocks:
        patch(block)
    try:
        yield "on"
    finally:
        for block in blocks:
            unpatch(block)


@contextlib.contextmanager
def training_mode() -> Iterator[None]:
    """Gradients on and inference mode off: tensors made inside can be trained."""
    import torch

    with torch.inference_mode(False), torch.enable_grad():
        yield
