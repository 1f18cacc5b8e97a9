"""The LECO network that wraps a host model's weights (leco/weight_network.py), without ComfyUI.

Inside ComfyUI the host is nodes/_comfy_leco.py (checked against the real ComfyUI by
tests/test_leco_comfyui.py, gated); here a plain torch model plays the host, so what the engine
decides is checked on every run: which weights train, the adapter off at multiplier 0, the kohya
file layout sd-scripts writes and reads back, gradients through inference-mode weights, and the
model's blocks restored after gradient checkpointing, even when training fails.
"""

from __future__ import annotations

import pytest
import torch

from lora_foundry.leco import weight_network as wn
from lora_foundry.leco.network import TorchLoraNetwork


class Adapter(torch.nn.Module):
    """Shaped like ComfyUI's trainable LoRAAdapter: ``lora_down``/``lora_up``, maps w → w + (α/r)·up·down."""

    def __init__(self, weight: torch.Tensor, rank: int, alpha: float) -> None:
        super().__init__()
        flat_in = weight[0].numel()
        self.lora_down = torch.nn.Linear(flat_in, rank, bias=False)
        self.lora_up = torch.nn.Linear(rank, weight.shape[0], bias=False)
        torch.nn.init.normal_(self.lora_up.weight)
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        delta = self.lora_up.weight @ self.lora_down.weight
        return weight + self.scale * delta.reshape(weight.shape)


class Blocks(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.transformer_blocks = torch.nn.ModuleList([torch.nn.Linear(6, 6), torch.nn.Linear(6, 6)])
        self.proj_in = torch.nn.Conv2d(6, 6, 1)
        self.proj_out = torch.nn.Conv2d(6, 6, 3)  # named like a target, but 3×3: not trained


class Host:
    """A torch model whose weights go through attached wrappers, as ComfyUI's ModelPatcher does."""

    def __init__(self) -> None:
        torch.manual_seed(1)
        self.model = torch.nn.Module()
        self.model.diffusion_model = Blocks()
        self.diffusion_model = self.model.diffusion_model
        self.wrappers: dict[str, torch.nn.Module] = {}

    def kohya_names(self) -> dict[str, str]:
        return {f"diffusion_model.{k}": "lora_unet_" + k[:-len(".weight")].replace(".", "_")
                for k, v in self.diffusion_model.state_dict().items() if k.endswith(".weight")}

    def weight(self, key: str) -> torch.Tensor:
        return self.model.get_parameter(key)

    def new_adapter(self, weight: torch.Tensor, rank: int, alpha: float) -> torch.nn.Module:
        return Adapter(weight, rank, alpha)

    def attach(self, key: str, wrapper: torch.nn.Module) -> None:
        self.wrappers[key] = wrapper

    def effective(self, key: str) -> torch.Tensor:
        weight = self.weight(key)
        return self.wrappers[key](weight) if key in self.wrappers else weight


def test_only_attention_and_projection_weights_train_and_multiplier_zero_is_the_base_model():
    host = Host()
    network = wn.WeightLoraNetwork(host, rank=2, alpha=1.0, seed=0)
    assert sorted(network.adapters) == ["lora_unet_proj_in", "lora_unet_transformer_blocks_0",
                                        "lora_unet_transformer_blocks_1"]
    key = "diffusion_model.transformer_blocks.0.weight"
    assert torch.equal(host.effective(key), host.weight(key))  # a new network starts off
    network.set_multiplier(1.0)
    assert not torch.allclose(host.effective(key), host.weight(key))
    network.set_multiplier(0.0)
    assert torch.equal(host.effective(key), host.weight(key))
    assert not any(p.requires_grad for p in host.model.parameters())
    assert network.parameter_count() == sum(p.numel() for p in network.parameters()) > 0


def test_kohya_state_has_the_layout_sd_scripts_writes_and_resumes_exactly():
    network = wn.WeightLoraNetwork(Host(), rank=2, alpha=4.0, seed=0)
    state = network.kohya_state()
    assert state["lora_unet_transformer_blocks_0.lora_down.weight"].shape == (2, 6)
    assert state["lora_unet_transformer_blocks_0.lora_up.weight"].shape == (6, 2)
    assert state["lora_unet_proj_in.lora_down.weight"].shape == (2, 6, 1, 1)
    assert state["lora_unet_proj_in.lora_up.weight"].shape == (6, 2, 1, 1)
    assert float(state["lora_unet_proj_in.alpha"]) == 4.0
    # the pure-torch network writes the same keys and shapes for the same layers: one kohya format
    torch_net = TorchLoraNetwork(Blocks(), ["transformer_blocks.0", "proj_in"], rank=2, alpha=4.0)
    torch_state = torch_net.kohya_state()
    assert {k: v.shape for k, v in torch_state.items()} == {k: state[k].shape for k in torch_state}
    other = wn.WeightLoraNetwork(Host(), rank=2, alpha=4.0, seed=7)
    assert not torch.equal(other.kohya_state()["lora_unet_proj_in.lora_down.weight"],
                           state["lora_unet_proj_in.lora_down.weight"])
    other.load_kohya_state(state)
    assert all(torch.equal(other.kohya_state()[k], v) for k, v in state.items())


def test_names_keep_one_layout_per_weight():
    """ComfyUI's LoRA key map names each SD1.x weight twice (diffusers and original layout)."""
    key_map = {"lora_unet_down_blocks_0_attentions_0_proj_in": "diffusion_model.input_blocks.1.1.proj_in.weight",
               "lora_unet_input_blocks_1_1_proj_in": "diffusion_model.input_blocks.1.1.proj_in.weight",
               "lora_unet_gone": "diffusion_model.gone.weight", "lora_te_x": "diffusion_model.x.weight"}
    present = {"diffusion_model.input_blocks.1.1.proj_in.weight", "diffusion_model.x.weight"}
    assert wn.select_kohya_names(key_map, present, ldm_layout=False) == {
        "diffusion_model.input_blocks.1.1.proj_in.weight": "lora_unet_down_blocks_0_attentions_0_proj_in"}
    assert wn.select_kohya_names(key_map, present, ldm_layout=True) == {
        "diffusion_model.input_blocks.1.1.proj_in.weight": "lora_unet_input_blocks_1_1_proj_in"}


def test_gradients_flow_through_inference_mode_weights():
    with torch.inference_mode():
        layer = torch.nn.Linear(3, 3)
    wrapper = torch.nn.Module()
    wrapper.layer = layer
    with wn.training_mode():
        wn.trainable_through(wrapper)
        assert not layer.weight.is_inference()
        x = torch.ones(1, 3, requires_grad=True)
        layer(x).sum().backward()
    assert x.grad is not None


def test_gradient_checkpointing_restores_the_blocks_even_when_training_fails():
    model, patched = Blocks(), []
    helpers = (lambda m: list(m.transformer_blocks), patched.append, patched.remove)
    with pytest.raises(RuntimeError), wn.gradient_checkpointing(model, helpers, enabled=True) as state:
        assert state == "on" and len(patched) == 2
        raise RuntimeError("a step failed")
    assert patched == []
    with wn.gradient_checkpointing(model, helpers, enabled=False) as state:
        assert state == "off" and patched == []
    with wn.gradient_checkpointing(model, None, enabled=True) as state:
        assert state == "not available in this ComfyUI"
