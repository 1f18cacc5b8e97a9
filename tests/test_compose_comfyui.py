"""The compose nodes in a real ComfyUI: wrong-base-model LoRA stops, the apply report, and both
example workflows load and queue. Skipped unless ``COMFYUI_DIR`` names a ComfyUI checkout with this
pack in ``custom_nodes``.

The test starts its own server (``$COMFYUI_PYTHON`` or ``COMFYUI_DIR/venv/bin/python``) on a free
port with temporary output/user folders and an extra_model_paths.yaml pointing at LoRAs it writes.
It needs a tiny SD1.5 checkpoint: ``$LF_TINY_SD15_CKPT`` (a file), else it builds one (random tiny
UNet, random full-size CLIP-L, random TAESD as VAE) with ComfyUI's own classes. UI-format workflows
are converted with the integration suite's ``ui_to_api`` (tests/integration/ui_to_api.py, checked
against the front end's own conversion there).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from comfy_checkpoints import CKPT_NAME, SD15_SCRIPT, build, comfy_python

from lora_foundry.lora.synthetic import SD15_MODULES, SD15_TE_MODULES, SDXL_MODULES, write_kohya_lora

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to run against a real ComfyUI")
REPO = Path(__file__).resolve().parents[1]


WEIGHTS_AFTER_LORAS = r'''
import json, os, sys
sys.path.insert(0, os.environ["COMFYUI_DIR"]); os.chdir(os.environ["COMFYUI_DIR"])
from comfy.cli_args import args; args.cpu = True
import torch, comfy.sd, comfy.utils
ckpt, plan = sys.argv[1], json.loads(sys.argv[2])
model, clip, _, _ = comfy.sd.load_checkpoint_guess_config(ckpt, output_vae=False, output_clip=True)
def weights(loras):
    m, c = model, clip
    for path, s in loras:
        m, c = comfy.sd.load_lora_for_models(m, c, comfy.utils.load_torch_file(path, safe_load=True), s, s)
    out = {}
    for name, patcher in (("unet", m), ("clip", c.patcher)):
        patcher.patch_model(force_patch_weights=True)
        out.update({f"{name}.{k}": v.detach().float().clone() for k, v in patcher.model.state_dict().items()})
        patcher.unpatch_model()
    return out
base, stacked, merged = (weights(p) for p in plan)
print(json.dumps({"changed": sum(not torch.equal(base[k], stacked[k]) for k in base),
                  "diff": max(float((stacked[k] - merged[k]).abs().max()) for k in base),
                  "effect": max(float((stacked[k] - base[k]).abs().max()) for k in base)}))
'''


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    sys.path.insert(0, str(REPO / "tests" / "integration"))
    from ui_to_api import ui_to_api as convert

    return convert(workflow, object_info)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("comfy_models")
    loras, ckpts = root / "loras", root / "checkpoints"
    both = {**SD15_MODULES, **SD15_TE_MODULES}
    write_kohya_lora(loras / "lf_character.safetensors", both, seed=1, metadata={
        "lora_foundry.trigger": "alice_lf", "ss_base_model_version": "sd_v1"})
    write_kohya_lora(loras / "lf_background.safetensors", SD15_MODULES, seed=2,
                     metadata={"lora_foundry.trigger": "park_bg"})
    write_kohya_lora(loras / "lf_pose.safetensors", SD15_MODULES, rank=8, alpha=4, seed=3,
                     tags={"5_pose": {"arms_up_pose": 10, "standing": 10}})
    write_kohya_lora(loras / "lf_sdxl_only.safetensors", SDXL_MODULES, seed=4,
                     metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    write_kohya_lora(loras / "lf_partial.safetensors",
                     {**SD15_MODULES, "lora_unet_down_blocks_3_attentions_0_proj_in": (320, 320, 1)}, seed=5)
    ckpts.mkdir()
    given = os.environ.get("LF_TINY_SD15_CKPT")
    if given:
        (ckpts / CKPT_NAME).symlink_to(Path(given).resolve())
    else:
        build(SD15_SCRIPT, ckpts / CKPT_NAME, COMFYUI_DIR)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    work = tmp_path_factory.mktemp("comfy_server")
    config = work / "extra_model_paths.yaml"
    config.write_text(f"lf_test:\n  base_path: {models}\n  loras: loras\n  checkpoints: checkpoints\n")
    for folder in ("output", "temp", "user"):
        (work / folder).mkdir()
    port = free_port()
    log = open(work / "server.log", "wb")
    process = subprocess.Popen(
        [comfy_python(COMFYUI_DIR), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
         "--output-directory", str(work / "output"), "--temp-directory", str(work / "temp"),
         "--user-directory", str(work / "user"), "--extra-model-paths-config", str(config)],
        cwd=COMFYUI_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(url + "/object_info/LF_ApplyLoRAStack", timeout=5)
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ComfyUI did not start; see {work / 'server.log'}")
                time.sleep(1)
        yield url, work
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        log.close()


def post(url: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def run(url: str, graph: dict, timeout: float = 600) -> dict:
    """Queue ``graph``; return its history entry (status and outputs) once it has finished."""
    prompt_id = post(url, "/prompt", {"prompt": graph})["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/history/{prompt_id}", timeout=30) as response:
            entry = json.loads(response.read()).get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            if entry["status"].get("status_str") in ("success", "error"):
                return entry
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} did not finish in {timeout}s")


def stack_graph(*rows: tuple[str, float]) -> dict:
    inputs = {}
    for i in range(1, 7):
        name, strength = rows[i - 1] if i <= len(rows) else ("None", 1.0)
        inputs.update({f"lora_{i}": name, f"type_{i}": "character", f"model_strength_{i}": strength,
                       f"clip_strength_{i}": strength, f"enabled_{i}": True})
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT_NAME}},
        "2": {"class_type": "LF_LoRAStack", "inputs": inputs},
        "3": {"class_type": "LF_ApplyLoRAStack", "inputs": {"model": ["1", 0], "clip": ["1", 1], "lora_stack": ["2", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 2]}},
    }


def error_message(entry: dict) -> str:
    for kind, data in entry["status"].get("messages", []):
        if kind == "execution_error":
            return f"{data['node_type']}: {data['exception_message']}"
    return ""


def test_lora_matching_nothing_stops_with_the_error(server):
    url, _ = server
    entry = run(url, stack_graph(("lf_sdxl_only.safetensors", 1.0)))
    assert entry["status"]["status_str"] == "error"
    message = error_message(entry)
    assert message.startswith("LF_ApplyLoRAStack") and "matched 0 of 3 modules" in message
    assert "different base model" in message and "SDXL" in message and "SD15" in message


def test_apply_report_counts_matched_modules(server):
    url, _ = server
    entry = run(url, stack_graph(("lf_character.safetensors", 1.0), ("lf_partial.safetensors", 0.5)))
    assert entry["status"]["status_str"] == "success", error_message(entry)
    report = entry["outputs"]["4"]["text"][0]
    lines = report.splitlines()
    assert "lf_character.safetensors [SD1.x] @ model 1.00 / clip 1.00: 10/10 modules matched " \
           "(UNet 8/8, text encoder 2/2)" in lines[0]
    assert "8/9 modules matched" in lines[1] and "WARNING partial match" in lines[1]
    assert "down_blocks_3" in lines[1]


def test_preset_saved_then_loaded_by_name(server):
    url, work = server
    graph = stack_graph(("lf_character.safetensors", -1.0), ("lf_pose.safetensors", 0.65))
    graph["2"]["inputs"]["type_2"] = "pose"
    graph = {"2": graph["2"], "5": {"class_type": "LF_SaveLoRAPreset", "inputs": {
        "lora_stack": ["2", 0], "name": "host_face", "overwrite": True, "description": "test"}}}
    assert run(url, graph)["status"]["status_str"] == "success"
    assert (work / "user" / "lora_foundry" / "presets" / "host_face.json").is_file()
    entry = run(url, {"1": {"class_type": "LF_LoRAPreset", "inputs": {"preset": "host_face"}},
                      "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}},
                      "3": {"class_type": "PreviewAny", "inputs": {"source": ["1", 2]}}})
    assert entry["status"]["status_str"] == "success", error_message(entry)
    assert entry["outputs"]["2"]["text"] == ["alice_lf, arms_up_pose, standing"]
    assert "compete for the body" in entry["outputs"]["3"]["text"][0]


def test_merged_lora_patches_comfyui_weights_like_the_stack(models, tmp_path):
    """ComfyUI's own patching: stack (1.0, 0.6) vs the concat merge at 1.0, on every weight."""
    from lora_foundry.lora import merge
    from lora_foundry.lora.metadata import read_lora_info

    loras = models / "loras"
    parts = [merge.MergePart("c", str(loras / "lf_character.safetensors"), 1.0, 1.0),
             merge.MergePart("p", str(loras / "lf_pose.safetensors"), 0.6, 0.6)]
    state, report = merge.merge_stack(parts, "concat")
    merged = merge.save_lora(state, merge.merged_metadata(report, [read_lora_info(p.path) for p in parts], "m"),
                             tmp_path, "merged", dtype="fp32")
    plan = [[], [[parts[0].path, 1.0], [parts[1].path, 0.6]], [[str(merged), 1.0]]]
    done = subprocess.run([comfy_python(COMFYUI_DIR), "-c", WEIGHTS_AFTER_LORAS, str(models / "checkpoints" / CKPT_NAME),
                           json.dumps(plan)], env={**os.environ, "COMFYUI_DIR": str(COMFYUI_DIR)},
                          capture_output=True, text=True, timeout=900, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["changed"] == 10 and result["effect"] > 1e-2
    assert result["diff"] <= 1e-3, result


@pytest.mark.parametrize("name", ["compose_character_background_pose", "lora_weight_sweep_grid"])
def test_example_workflows_load_and_queue(server, name):
    url, work = server
    workflow = json.loads((REPO / "example_workflows" / f"{name}.json").read_text())
    with urllib.request.urlopen(url + "/object_info", timeout=60) as response:
        info = json.loads(response.read())
    graph = ui_to_api(workflow, info)
    for node in graph.values():  # tiny model, tiny image: the graph itself is unchanged
        if node["class_type"] == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = CKPT_NAME
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"].update(width=64, height=64)
        if node["class_type"] == "KSampler":
            node["inputs"]["steps"] = 2
    entry = run(url, graph)
    assert entry["status"]["status_str"] == "success", error_message(entry)
    saved = [img for out in entry["outputs"].values() for img in out.get("images", []) if img["type"] == "output"]
    assert saved and all((work / "output" / img["subfolder"] / img["filename"]).is_file() for img in saved)
    if name == "lora_weight_sweep_grid":
        grid = [out for out in entry["outputs"].values() if out.get("images") and out["images"][0]["type"] == "temp"]
        assert grid, "the composition grid previews its image"
