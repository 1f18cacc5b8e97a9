"""The LoRA network as the LECO loop sees it, and a pure-torch one for plain ``nn.Module`` models.

The loop needs four things from a network: switch it off and on at a multiplier (LECO predicts
with the LoRA at 0 and at the setting's multiplier within one step), its trainable parameters, and
its weights in kohya's key format to save and to resume from (``adapter_kohya_state``, the one
writer and reader of that state). Inside ComfyUI the network wraps the model's weights
(``weight_network``, with nodes/_comfy_leco.py as its host); ``TorchLoraNetwork`` here adds the same
``lora_down``/``lora_up``/``alpha`` update to ``nn.Linear`` and 1×1 ``nn.Conv2d`` layers of any
torch model through forward hooks, for CI stand-ins and the command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

KOHYA_UNET_PREFIX = "lora_unet_"


class LoraNetwork(Protocol):
    rank: int
    alpha: float

    def set_multiplier(self, value: float) -> None:
        """Scale of the LoRA update from now on; 0 switches it off."""

    def parameters(self) -> list[Any]:
        """The trainable tensors."""

    def kohya_state(self) -> dict[str, Any]:
        """``<module>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` on the CPU, float32."""

    def load_kohya_state(self, state: Mapping[str, Any]) -> None:
        """Copy weights saved by ``kohya_state`` back in (resume)."""


def kohya_module_name(path: str) -> str:
    """``down.0.attn.to_q`` → ``lora_unet_down_0_attn_to_q`` (kohya flattens module paths)."""
    return KOHYA_UNET_PREFIX + path.replace(".", "_")


def kohya_shapes(down: Any, up: Any, weight_shape: tuple[int, ...]) -> tuple[Any, Any]:
    """Low-rank factors in the shape kohya writes: [r, in] / [out, r] for linear layers,
    [r, in, 1, 1] / [out, r, 1, 1] for 1×1 convolutions."""
    if len(weight_shape) == 4:
        return down.reshape(down.shape[0], -1, 1, 1), up.reshape(up.shape[0], -1, 1, 1)
    return down.reshape(down.shape[0], -1), up.reshape(up.shape[0], -1)


def adapter_kohya_state(factors: Mapping[str, tuple[Any, Any, tuple[int, ...]]], alpha: float) -> dict[str, Any]:
    """The kohya state of ``{module name: (down, up, weight shape)}``: every network saves through
    this, so a LoRA from either network loads the same way (``LoraNetwork.kohya_state``)."""
    import torch

    state = {}
    for name, (down, up, shape) in factors.items():
        down, up = kohya_shapes(down.detach(), up.detach(), shape)
        state[f"{name}.lora_down.weight"] = down.float().cpu().contiguous()
        state[f"{name}.lora_up.weight"] = up.float().cpu().contiguous()
        state[f"{name}.alpha"] = torch.tensor(alpha)
    return state


def load_adapter_kohya_state(factors: Mapping[str, tuple[Any, Any, tuple[int, ...]]],
                             state: Mapping[str, Any]) -> None:
    """Copy a ``kohya_state`` back into the ``(down, up, shape)`` factors it was made from (resume)."""
    import torch

    with torch.no_grad():
        for name, (down, up, _) in factors.items():
            down.copy_(state[f"{name}.lora_down.weight"].reshape(down.shape))
            up.copy_(state[f"{name}.lora_up.weight"].reshape(up.shape))


class _Adapter:
    """One layer's low-rank update, applied by a forward hook: out + m·(α/r)·up(down(x))."""

    def __init__(self, module: Any, rank: int, alpha: float, generator: Any) -> None:
        import torch

        weight = module.weight
        out_features, in_features = weight.shape[0], weight.shape[1]
        self.conv = weight.dim() == 4
        self.weight_shape = tuple(weight.shape)
        self.down = torch.nn.Parameter(torch.empty(rank, in_features))
        torch.nn.init.normal_(self.down, std=1.0 / rank, generator=generator)
        self.up = torch.nn.Parameter(torch.zeros(out_features, rank))
        self.scale = alpha / rank
        self.network: TorchLoraNetwork | None = None

    def hook(self, module: Any, inputs: tuple[Any, ...], output: Any) -> Any:
        multiplier = self.network.multiplier if self.network is not None else 0.0
        if multiplier == 0.0:
            return output
        x = inputs[0]
        if self.conv:
            delta = (x.movedim(1, -1) @ self.down.t() @ self.up.t()).movedim(-1, 1)
        else:
            delta = x @ self.down.t() @ self.up.t()
        return output + (multiplier * self.scale) * delta


class TorchLoraNetwork:
    """LoRA on the named ``nn.Linear`` / 1×1 ``nn.Conv2d`` layers of a torch model (hooks, no copies)."""

    def __init__(self, model: Any, module_paths: Iterable[str], rank: int = 4, alpha: float = 1.0,
                 seed: int = 0) -> None:
        import torch

        self.rank, self.alpha, self.multiplier = int(rank), float(alpha), 0.0
        generator = torch.Generator().manual_seed(seed)
        modules = dict(model.named_modules())
        self.adapters: dict[str, _Adapter] = {}
        self._handles = []
        for path in module_paths:
            adapter = _Adapter(modules[path], self.rank, self.alpha, generator)
            adapter.network = self
            self.adapters[kohya_module_name(path)] = adapter
            self._handles.append(modules[path].register_forward_hook(adapter.hook))

    def set_multiplier(self, value: float) -> None:
        self.multiplier = float(value)

    def parameters(self) -> list[Any]:
        return [p for a in self.adapters.values() for p in (a.down, a.up)]

    def _factors(self) -> dict[str, tuple[Any, Any, tuple[int, ...]]]:
        return {name: (a.down, a.up, a.weight_shape) for name, a in self.adapters.items()}

    def kohya_state(self) -> dict[str, Any]:
        return adapter_kohya_state(self._factors(), self.alpha)

    def load_kohya_state(self, state: Mapping[str, Any]) -> None:
        load_adapter_kohya_state(self._factors(), state)

    def remove(self) -> None:
        """Take the hooks off the model."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def lora_layer_paths(model: Any, include: Iterable[str] = ("attn", "proj_in", "proj_out", "ff")) -> list[str]:
    """Paths of the ``nn.Linear`` and 1×1 ``nn.Conv2d`` layers whose path names one of ``include``
    (kohya's default SD LoRA trains the transformer blocks: attention, projections, feed-forward)."""
    import torch

    found = []
    for path, module in model.named_modules():
        linear = isinstance(module, torch.nn.Linear)
        pointwise = isinstance(module, torch.nn.Conv2d) and tuple(module.kernel_size) == (1, 1)
        if (linear or pointwise) and any(word in path for word in include):
            found.append(path)
    return found
