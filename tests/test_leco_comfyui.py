"""LECO through the real ComfyUI: the glue trains on the tiny SD1.5-detected model, the file loads with
ComfyUI's LoraLoader with no "lora key not loaded", LF LoRA Info shows the LECO metadata, cancel and
resume work, and both example workflows queue and succeed; a short erase on a tiny SDXL-detected
checkpoint saves kohya SDXL names that LoraLoader loads whole; gradient checkpointing lowers peak
memory. Skipped unless ``COMFYUI_DIR`` names a ComfyUI checkout (its Python: ``$COMFYUI_PYTHON`` or ``COMFYUI_DIR/venv/bin/python``).

The server gets its own ``--base-directory`` (custom_nodes/lora_foundry → this checkout, the tiny
checkpoint in models/checkpoints), so the checkout is never written to. The tiny checkpoint is
``$LF_TINY_SD15_CKPT`` or built by tests/comfy_checkpoints.py. CPU-bound and slow
(minutes): the model is tiny, but SD1.5's width and a full-size CLIP-L are not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_checkpoints import CKPT_NAME, SD15_SCRIPT, SDXL_SCRIPT, build, comfy_python

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to run against a real ComfyUI")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    given = os.environ.get("LF_TINY_SD15_CKPT")
    if given:
        return Path(given).resolve()
    return build(SD15_SCRIPT, tmp_path_factory.mktemp("ckpt") / CKPT_NAME, COMFYUI_DIR)


def test_glue_trains_and_comfyui_loads_the_result(tiny_checkpoint, tmp_path):
    done = subprocess.run([comfy_python(COMFYUI_DIR), str(REPO / "tests" / "leco_in_comfyui.py"), str(COMFYUI_DIR), str(REPO),
                           str(tiny_checkpoint), str(tmp_path)], capture_output=True, text=True, timeout=5400)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    erase, slider, cancel = result["erase"], result["slider"], result["cancel"]
    first, last = (float(x) for x in re.search(r"first-5 mean ([\d.e+-]+), last-5 mean ([\d.e+-]+)",
                                               erase["report"]).groups())
    ratio = sum(erase["ratios"]) / len(erase["ratios"])
    print(f"\nreal ComfyUI erase: loss {first:.3g} -> {last:.3g}, MSE ratio (strength 1 / 0) {ratio:.3f} "
          f"{erase['ratios']}; slider projections +1 {slider['plus']} -1 {slider['minus']}; "
          f"cancel returned after {cancel['returned_after_s']:.2f} s")
    assert last < first
    assert ratio < 0.9 and all(r < 1 for r in erase["ratios"])
    assert erase["key_not_loaded"] == 0 and slider["key_not_loaded"] == 0
    assert "LECO: 1 settings from erase_red_car.toml" in erase["info"] and "type: leco" in erase["info"]
    assert all(p > 0 for p in slider["plus"]) and all(m < 0 for m in slider["minus"])
    assert "cancel_me-step000005.safetensors" in cancel["kept"]
    assert "resumed at step 5" in cancel["resume_report"] or "resumed at step 10" in cancel["resume_report"]


@pytest.fixture(scope="module")
def tiny_sdxl_checkpoint(tmp_path_factory) -> Path:
    given = os.environ.get("LF_TINY_SDXL_CKPT")
    if given:
        return Path(given).resolve()
    return build(SDXL_SCRIPT, tmp_path_factory.mktemp("ckpt") / "lf_tiny_sdxl.safetensors", COMFYUI_DIR,
                 timeout=1800)


def _in_comfyui(checkpoint: Path, work: Path, *mode: str) -> dict:
    done = subprocess.run([comfy_python(COMFYUI_DIR), str(REPO / "tests" / "leco_in_comfyui.py"), str(COMFYUI_DIR), str(REPO),
                           str(checkpoint), str(work), *mode], capture_output=True, text=True, timeout=5400)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sdxl_erase_trains_with_kohya_sdxl_names_and_loads(tiny_sdxl_checkpoint, tmp_path):
    result = _in_comfyui(tiny_sdxl_checkpoint, tmp_path, "sdxl")["sdxl"]
    first, last = (float(x) for x in re.search(r"first-5 mean ([\d.e+-]+), last-5 mean ([\d.e+-]+)",
                                               result["report"]).groups())
    modules = {k.split(".")[0] for k in result["keys"]}
    print(f"\nreal ComfyUI SDXL erase: detected {result['detected']}, loss {first:.3g} -> {last:.3g}, "
          f"{len(modules)} LoRA modules, {result['seconds']:.0f} s, lora key not loaded: {result['key_not_loaded']}")
    assert result["detected"] == "SDXL"
    assert last < first
    assert result["key_not_loaded"] == 0
    assert modules and all(m.startswith(("lora_unet_input_blocks_", "lora_unet_middle_block_",
                                         "lora_unet_output_blocks_")) for m in modules)
    assert "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k" in modules  # context 2048 -> 320
    assert "lora_unet_output_blocks_2_1_transformer_blocks_9_ff_net_2" in modules


def test_gradient_checkpointing_lowers_peak_memory(tiny_checkpoint, tmp_path):
    """3 steps at 256² on the tiny SD1.5 model, each setting in its own process (at 64² the activations
    are too small next to the optimizer and adapters to tell apart)."""
    on = _in_comfyui(tiny_checkpoint, tmp_path / "on", "memory", "on", "256")["memory"]
    off = _in_comfyui(tiny_checkpoint, tmp_path / "off", "memory", "off", "256")["memory"]
    print(f"\npeak RSS growth of 3 LECO steps at 256²: checkpointing on {on['peak_growth_mb']:.0f} MB "
          f"({on['seconds']:.1f} s), off {off['peak_growth_mb']:.0f} MB ({off['seconds']:.1f} s)")
    assert "gradient checkpointing: on" in on["report"] and "gradient checkpointing: off" in off["report"]
    assert on["blocks_left_patched"] == 0  # the graph's shared model gets its own forwards back
    assert on["peak_growth_mb"] < off["peak_growth_mb"]


@pytest.fixture(scope="module")
def server(tiny_checkpoint, tmp_path_factory):
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from comfy_api import ComfyServer

    server = ComfyServer.for_pack(Path(COMFYUI_DIR), tmp_path_factory.mktemp("leco_server"), REPO)
    (server.base / "models" / "checkpoints").mkdir(parents=True)
    (server.base / "models" / "checkpoints" / CKPT_NAME).symlink_to(tiny_checkpoint)
    with server as running:
        yield running, server.base


def _shrunk(graph: dict, name: str) -> dict:
    """Tiny model, tiny images, few steps: the graph itself is unchanged."""
    for node in graph.values():
        inputs, kind = node["inputs"], node["class_type"]
        if kind == "CheckpointLoaderSimple":
            inputs["ckpt_name"] = CKPT_NAME
        elif kind == "EmptyLatentImage":
            inputs.update(width=64, height=64)
        elif kind == "KSampler":
            inputs["steps"] = 2
        elif kind == "LF_LECOPrompts":
            inputs["resolution"] = 64
        elif kind == "LF_TrainLECO":
            inputs.update(steps=4, max_denoising_steps=4, save_every=2, name=f"{name}_test")
    return graph


@pytest.mark.parametrize("name", ["leco_erase_concept", "concept_slider"])
def test_example_workflow_queues_and_succeeds(server, name):
    from test_compose_comfyui import ui_to_api

    running, base = server
    workflow = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
    graph = _shrunk(ui_to_api(workflow, running.client.object_info()), name)
    entry = running.client.run(graph, timeout=3600)
    status = entry["status"]
    assert status["status_str"] == "success", json.dumps(status.get("messages"))[-3000:]
    # the examples open on the quick preset, which saves as <name>_quick (nodes/leco.py)
    assert (base / "models" / "loras" / "lora_foundry" / f"{name}_test_quick.safetensors").is_file()
    saved = [i for out in entry["outputs"].values() for i in out.get("images", []) if i["type"] == "output"]
    assert saved, "the composition grid was saved"


def test_upstream_docs_neutral_file_slider_trains_in_comfyui_with_both_gradient_settings(tiny_checkpoint, tmp_path):
    result = _in_comfyui(tiny_checkpoint, tmp_path, "parity")["parity"]
    for gradients in ("False", "True"):
        run = result[gradients]
        print(f"\nreal ComfyUI, upstream docs slider, denoise_gradients={gradients}: {run['report']}")
        assert "trained 3 steps on 8 settings" in run["report"] and run["key_not_loaded"] == 0
        assert f"partial denoise: {'with' if gradients == 'True' else 'without'} gradients" in run["report"]
    assert "dynamic_crops = true is not supported by LF Train LECO" in result["dynamic_crops"]
