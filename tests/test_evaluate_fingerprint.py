"""The cell cache's model identity covers what upstream nodes change (issue: a LoRA re-loaded at
another strength, a sampling patch or CLIP Set Last Layer upstream reused stale images). The
objects are shaped like ComfyUI's ModelPatcher / CLIP (the attributes comfy/model_patcher.py and
comfy/sd.py set); the real ComfyUI check is in tests/test_evaluate_comfyui.py."""

from __future__ import annotations

import copy
import uuid

import pytest

torch = pytest.importorskip("torch")

from lora_foundry.evaluate.fingerprint import fingerprint  # noqa: E402


class Adapter:  # comfy.weight_adapter.lora.LoRAAdapter: loaded_keys and weights
    def __init__(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.loaded_keys = {"lora_unet_x.lora_up.weight", "lora_unet_x.lora_down.weight"}
        self.weights = (torch.randn(8, 4, generator=generator), torch.randn(4, 8, generator=generator), 4.0, None)


class Sampling(torch.nn.Module):  # ModelSamplingDiscrete keeps sigmas as a buffer
    def __init__(self, shift: float) -> None:
        super().__init__()
        self.register_buffer("sigmas", torch.linspace(0.03, 14.6, 50) * shift)


class Patcher:
    def __init__(self) -> None:
        self.model = torch.nn.Linear(8, 8)
        torch.nn.init.constant_(self.model.weight, 0.5)
        torch.nn.init.constant_(self.model.bias, 0.0)
        self.patches: dict = {}
        self.object_patches: dict = {}
        self.model_options: dict = {"transformer_options": {}}
        self.patches_uuid = uuid.uuid4()

    def add_patches(self, patches: dict, strength_patch: float = 1.0, strength_model: float = 1.0) -> None:
        for key, value in patches.items():
            self.patches.setdefault(key, []).append((strength_patch, value, strength_model, None, None))
        self.patches_uuid = uuid.uuid4()


class Clip:
    def __init__(self) -> None:
        self.patcher = Patcher()
        self.layer_idx = None


def with_lora(patcher: Patcher, strength: float, seed: int = 1) -> Patcher:
    clone = copy.deepcopy(patcher)
    clone.add_patches({"diffusion_model.x.weight": Adapter(seed)}, strength)
    return clone


def cfg_rescale(multiplier: float):
    def rescale(args):
        return args["cond"] * multiplier
    return rescale


def test_same_graph_same_identity_even_after_a_reload():
    model, clip = with_lora(Patcher(), 0.8), Clip()
    again = with_lora(Patcher(), 0.8)  # a new load: new patches_uuid, same everything else
    assert again.patches_uuid != model.patches_uuid
    assert fingerprint(model, clip) == fingerprint(again, Clip())


@pytest.mark.parametrize("change", ["lora strength", "lora weights", "second lora", "sampling patch",
                                    "cfg function value", "clip last layer", "base weights"])
def test_every_upstream_change_changes_the_identity(change):
    model, clip = with_lora(Patcher(), 0.8), Clip()
    before = fingerprint(model, clip)
    if change == "lora strength":
        model = with_lora(Patcher(), 0.5)
    elif change == "lora weights":
        model = with_lora(Patcher(), 0.8, seed=2)
    elif change == "second lora":
        model = with_lora(model, 0.3, seed=3)
    elif change == "sampling patch":
        model.object_patches["model_sampling"] = Sampling(1.0)
        before = fingerprint(model, clip)
        model.object_patches["model_sampling"] = Sampling(1.5)
    elif change == "cfg function value":
        model.model_options["sampler_cfg_function"] = cfg_rescale(0.7)
        before = fingerprint(model, clip)
        model.model_options["sampler_cfg_function"] = cfg_rescale(0.5)
    elif change == "clip last layer":
        clip.layer_idx = -2
    elif change == "base weights":
        torch.nn.init.constant_(model.model.weight, 0.25)
    assert fingerprint(model, clip) != before, change
