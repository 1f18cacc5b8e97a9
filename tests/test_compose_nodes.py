"""The compose nodes as ComfyUI calls them (pack imported by path), without ComfyUI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from lora_foundry.lora.stack import LORA_TYPES
from lora_foundry.lora.synthetic import SD15_MODULES, SD15_TE_MODULES, write_kohya_lora

REPO = Path(__file__).resolve().parents[1]
NODE_KEYS = ["LF_LoRAStack", "LF_ApplyLoRAStack", "LF_LoRAPreset", "LF_SaveLoRAPreset", "LF_ComposePrompt",
             "LF_LoRAWeightSweep", "LF_CompositionGrid", "LF_MergeLoRAStack", "LF_LoRAInfo"]


@pytest.fixture()
def compose(pack, tmp_path, monkeypatch, output_root):
    """The node module with ComfyUI's folders pointed at a temporary models/loras and user dir."""
    loras = tmp_path / "models" / "loras"
    write_kohya_lora(loras / "alice.safetensors", {**SD15_MODULES, **SD15_TE_MODULES}, seed=1,
                     metadata={"lora_foundry.trigger": "alice_lf", "ss_base_model_version": "sd_v1"})
    write_kohya_lora(loras / "chars" / "pose.safetensors", SD15_MODULES, rank=8, alpha=4, seed=2,
                     tags={"5_pose": {"pose_lf": 10, "standing": 9, "arms up": 2}})
    comfy = pack.nodes._comfy
    monkeypatch.setattr(comfy, "model_folder_paths", lambda folder: [loras] if folder == "loras" else [])
    monkeypatch.setattr(comfy, "list_models", lambda folder: ["alice.safetensors", "chars/pose.safetensors"])
    monkeypatch.setattr(comfy, "user_root", lambda: tmp_path / "user")
    monkeypatch.setattr(comfy, "temp_root", lambda: tmp_path / "temp")
    module = pack.nodes.compose
    module.CACHES.infos = type(module.CACHES.infos)(16)
    return module


def stack_inputs(**rows):
    values = {}
    for i in range(1, 7):
        values.update({f"lora_{i}": "None", f"type_{i}": "character", f"model_strength_{i}": -1.0,
                       f"clip_strength_{i}": -1.0, f"enabled_{i}": True})
    values.update(rows)
    return values


def test_nodes_are_registered_with_tooltips_and_categories(pack):
    for key in NODE_KEYS:
        cls = pack.NODE_CLASS_MAPPINGS[key]
        assert pack.NODE_DISPLAY_NAME_MAPPINGS[key].startswith("LF ")
        assert cls.CATEGORY == "LoRA Foundry/compose" and cls.DESCRIPTION
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, declaration in spec.get(section, {}).items():
                assert declaration[1].get("tooltip"), f"{key}.{name} has no tooltip"


def test_js_recommended_strengths_match_python():
    js = (REPO / "js" / "lora_stack.js").read_text()
    table = dict(re.findall(r"^\s+(\w+): ([\d.]+),$", js, re.MULTILINE))
    assert {k: float(v) for k, v in table.items()} == {t.name: t.recommended for t in LORA_TYPES.values()}
    assert "hidden" not in js.replace("never added, hidden", "")


def test_stack_node_auto_strengths_triggers_warnings_and_chain(compose):
    node = compose.LoRAStack()
    incoming = [("style.safetensors", 0.9, 0.9)]  # from another pack, file not present here
    stack, triggers, warnings = node.stack(lora_stack=incoming, **stack_inputs(
        lora_1="alice.safetensors", lora_2="chars/pose.safetensors", type_2="pose",
        model_strength_2=0.8, lora_3="alice.safetensors", enabled_3=False))
    assert stack == [("style.safetensors", 0.9, 0.9), ("alice.safetensors", 1.0, 1.0),
                     ("chars/pose.safetensors", 0.8, 0.7)]
    assert triggers == "alice_lf, pose_lf, standing"
    assert "style.safetensors' not found" in warnings
    assert "compete for the body" in warnings and "from 0.80 to 0.60" in warnings
    assert compose.LoRAStack.IS_CHANGED(**stack_inputs(lora_1="alice.safetensors")) != "[]"


def test_presets_through_nodes(compose, tmp_path):
    stack, _, _ = compose.LoRAStack().stack(**stack_inputs(lora_1="alice.safetensors",
                                                           lora_2="chars/pose.safetensors", type_2="pose"))
    saved = compose.SaveLoRAPreset().save(stack, "host_face", False, "talk show host")
    assert Path(saved["result"][0]) == tmp_path / "user" / "lora_foundry" / "presets" / "host_face.json"
    assert compose.LoRAPreset.INPUT_TYPES()["required"]["preset"][0] == ["host_face"]
    loaded, triggers, _ = compose.LoRAPreset().load("host_face")
    assert loaded == stack and [e.lora_type for e in loaded] == ["character", "pose"]
    assert triggers == "alice_lf, pose_lf, standing"
    with pytest.raises(ValueError, match="already exists"):
        compose.SaveLoRAPreset().save(stack, "host_face", False, "")


def test_compose_prompt_node_reads_triggers_from_the_stack(compose):
    text, warnings, tokens = compose.ComposePrompt().compose(
        "standing, sitting, smiling", lora_stack=[("alice.safetensors", 1.0, 1.0)], triggers="extra_lf")
    assert text == "extra_lf, alice_lf, standing, sitting, smiling"
    assert "two actions" in warnings and "tokens" in tokens


def test_sweep_node_outputs_lists_for_the_grid(compose):
    node = compose.LoRAWeightSweep()
    assert node.OUTPUT_IS_LIST == (True, True, False)
    stack = [("alice.safetensors", 1.0, 1.0), ("chars/pose.safetensors", 0.7, 0.7)]
    stacks, labels, axes = node.sweep(stack, "weights", "pose: 0.5:0.9:0.2\n1: 0.8, 1.0", 16, True)
    assert len(stacks) == 6 and labels[0] == "pose=0.5 alice=0.8"
    assert stacks[5] == [("alice.safetensors", 1.0, 1.0), ("chars/pose.safetensors", 0.9, 0.9)]
    assert json.loads(axes)["x"] == {"name": "alice", "values": [0.8, 1.0]}
    stacks, labels, _ = node.sweep(stack, "ablation", "", 16, True)
    assert labels == ["all on", "without alice", "without pose"] and stacks[2] == [stack[0]]


def test_grid_node_lays_out_cells_with_axes(compose, pack):
    grid_nodes = pack.nodes.compose_grid
    images = [torch.full((1, 32, 48, 3), v / 6) for v in range(6)]
    labels = [f"pose={p} alice={a}" for p in (0.5, 0.7, 0.9) for a in (0.8, 1.0)]
    axes = json.dumps({"x": {"name": "alice", "values": [0.8, 1.0]}, "y": {"name": "pose", "values": [0.5, 0.7, 0.9]}})
    out = grid_nodes.CompositionGrid().grid(images, labels, [axes], [0])
    grid = out["result"][0]
    assert grid.shape[0] == 1 and grid.shape[3] == 3
    assert grid.shape[2] > 2 * 48 and grid.shape[1] > 3 * 32
    assert out["ui"]["images"][0]["type"] == "temp"
    values = sorted({round(float(v), 3) for v in grid[0].reshape(-1, 3)[:, 0]})
    for v in range(6):
        assert round(v / 6, 3) in values or round(round(v / 6 * 255) / 255, 3) in values
    plain = grid_nodes.CompositionGrid().grid(images[:3], labels[:3], None, [3])["result"][0]
    assert plain.shape[2] > 3 * 48 and plain.shape[1] < 2 * 32 + 60


def test_running_the_same_grid_again_rewrites_its_one_preview(compose, pack, tmp_path):
    """ComfyUI's temp folder is only emptied at start-up: a preview per run would pile up."""
    grid_nodes = pack.nodes.compose_grid
    images = [torch.full((1, 32, 48, 3), v / 4) for v in range(4)]
    labels = [f"w={v}" for v in range(4)]
    first = grid_nodes.CompositionGrid().grid(images, labels, None, [2])["ui"]["images"]
    again = grid_nodes.CompositionGrid().grid(images, labels, None, [2])["ui"]["images"]
    previews = tmp_path / "temp" / "lora_foundry_previews"
    assert first == again and [p.name for p in previews.iterdir()] == [first[0]["filename"]]
    other = grid_nodes.CompositionGrid().grid(images[::-1], labels, None, [2])["ui"]["images"]
    assert other != first and len(list(previews.iterdir())) == 2, "a different grid is a different preview"
    with pytest.raises(ValueError, match="axes is nested more than"):  # not a RecursionError
        grid_nodes.CompositionGrid().grid(images, labels, ["[" * 5000 + "]" * 5000], [2])


def test_merge_and_info_nodes(compose, tmp_path):
    stack = [("alice.safetensors", 1.0, 1.0), ("chars/pose.safetensors", 0.6, 0.6)]
    out = compose.MergeLoRAStack().merge(stack, "alice_pose", "svd", 8, "fp16", False)
    name, report = out["result"]
    assert name == "lora_foundry/alice_pose.safetensors"
    assert (tmp_path / "models" / "loras" / "lora_foundry" / "alice_pose.safetensors").is_file()
    assert "SVD relative error" in report
    info, triggers, base = compose.LoRAInfo().info(name)["result"]
    assert triggers == "alice_lf, pose_lf, standing" and base == "SD1.x"
    assert "rank: 8" in info and "SD1.x" in info
    # a merge publishes a LoRA: refused as every trainer refuses a taken name (kohya.publish)
    with pytest.raises(FileExistsError, match=r"^a LoRA named alice_pose.safetensors already exists in .*loras/"
                                              "lora_foundry; choose another output name or turn overwrite on$") as taken:
        compose.MergeLoRAStack().merge(stack, "alice_pose", "svd", 8, "fp16", False)
    assert type(taken.value).__name__ == "PublishedError" and isinstance(taken.value, ValueError)


class _Model:
    """A stand-in MODEL: the socket check wants ComfyUI's ``clone``."""

    def clone(self):
        return self


class _Clip(_Model):
    """A stand-in CLIP: ``clone`` and ``tokenize``."""

    def tokenize(self, text: str) -> list:
        return []


def test_applied_lora_tensors_go_when_comfyui_drops_the_node(compose, monkeypatch):
    """ComfyUI's "free memory" drops the node objects it keeps (``PromptExecutor.reset``): the LoRA
    tensors an Apply node read must go with them. They were once held by a module global (up to
    2 GiB) that nothing in ComfyUI could reach. While the node lives, a second run reads no file."""
    import gc
    import sys
    import weakref

    files = sys.modules[compose.FileCache.__module__]  # the pack's own engine (imported by path)
    comfy, reads, applied = compose._comfy, [], []
    modules = {**SD15_MODULES, **SD15_TE_MODULES}
    monkeypatch.setattr(files, "load_safetensors", lambda path, real=files.load_safetensors: reads.append(path)
                        or real(path))
    monkeypatch.setattr(comfy, "lora_key_map", lambda model, clip: {m: m for m in modules})
    monkeypatch.setattr(comfy, "convert_lora", lambda state: state)
    monkeypatch.setattr(comfy, "lora_patches", lambda converted, to_load: dict.fromkeys(to_load.values()))
    monkeypatch.setattr(comfy, "load_lora_for_models", lambda model, clip, state, *_: applied.append(state)
                        or (model, clip))
    node = compose.ApplyLoRAStack()
    for _ in range(2):
        _, _, report = node.apply(_Model(), [("alice.safetensors", 1.0, 1.0)], _Clip())
    assert len(reads) == 1 and "alice.safetensors" in report
    tensor = weakref.ref(next(iter(applied[0].values())))
    applied.clear()
    del node
    gc.collect()
    assert tensor() is None, "the LoRA's tensors outlived the node ComfyUI dropped"
