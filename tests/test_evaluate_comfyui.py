"""LF Evaluate LoRA's renderer through ComfyUI's real sampler, with the tiny SD1.5-detected model.
Skipped unless ``COMFYUI_DIR`` names a ComfyUI checkout (its Python: ``$COMFYUI_PYTHON`` or
``COMFYUI_DIR/venv/bin/python``); the checkpoint is ``$LF_TINY_SD15_CKPT`` or built by
tests/comfy_checkpoints.py.

The script runs in ComfyUI's Python, imports this checkout as a package the way ComfyUI does, and
evaluates a random kohya LoRA on a real clip's frames: strength-0 cells must equal the base model's
images bit for bit (also when the LoRA is patched in at strength 0 by ComfyUI itself), strength-1
cells must differ, and a re-run with one more strength renders only the new cells.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from comfy_checkpoints import CKPT_NAME, SD15_SCRIPT, build, comfy_python

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to run against a real ComfyUI")
REPO = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import importlib.util, json, os, sys
from pathlib import Path
repo, ckpt, work, media = map(Path, sys.argv[1:5])
sys.path.insert(0, os.environ["COMFYUI_DIR"]); os.chdir(os.environ["COMFYUI_DIR"])
from comfy.cli_args import args; args.cpu = True
import numpy as np, comfy.sd, comfy.utils
spec = importlib.util.spec_from_file_location("lf_pack", repo / "__init__.py", submodule_search_locations=[str(repo)])
pack = importlib.util.module_from_spec(spec); sys.modules["lf_pack"] = pack; spec.loader.exec_module(pack)
from lf_pack.nodes import _comfy_sampling as cs
from lf_pack.lora_foundry.evaluate import evaluation, matrix
from lf_pack.lora_foundry.lora.synthetic import SD15_MODULES, SD15_TE_MODULES, write_kohya_lora
from lf_pack.lora_foundry.media.images import load_rgb
from lf_pack.lora_foundry.stages.clusters.embedders import pixel_features
from lf_pack.lora_foundry.workspace import Workspace
import av, cv2

class Pixels:
    identity = "pixels"
    def images(self, pixels): return np.stack([pixel_features(p) for p in pixels])
    def texts(self, texts): return None

frames = []
with av.open(str(media / "signer_book.mkv")) as container:
    for i, frame in enumerate(container.decode(video=0)):
        if i % 15 == 0: frames.append(cv2.resize(frame.to_ndarray(format="rgb24"), (64, 64)))
        if len(frames) == 3: break
model, clip, vae = comfy.sd.load_checkpoint_guess_config(str(ckpt), output_vae=True, output_clip=True)[:3]
lora = write_kohya_lora(work / "lora.safetensors", {**SD15_MODULES, **SD15_TE_MODULES}, seed=1, alpha=16.0)
settings = matrix.RenderSettings(width=64, height=64, steps=2, cfg=5.0)
renderer = cs.ComfyRenderer(model, clip, vae, [cs.LoraPart(lora)], settings, "tiny-sd15", "lora-1")
base = cs.ComfyRenderer(model, clip, vae, [], settings, "tiny-sd15", "")
preset = matrix.load_preset("character", {"strengths": [0, 1], "seeds": [1], "held_out": ["in a snowy forest", "on the moon"]})
ws = Workspace.open(work / "ws")
train = Pixels().images(frames)
first = evaluation.evaluate(ws, renderer, Pixels(), train, "ohwx", preset, name="tiny")
zero = [(c, p) for c, p in zip(first.cells, first.paths) if c.strength == 0]
equal_base = all(np.array_equal(load_rgb(p), base.render(c.prompt, 0.0, c.seed)) for c, p in zero)
state = comfy.utils.load_torch_file(str(lora), safe_load=True)
m0, c0 = comfy.sd.load_lora_for_models(model, clip, state, 0.0, 0.0)
c = zero[0][0]
patched_zero = cs.sample_image(m0, cs.encode(c0, c.prompt), cs.encode(c0, ""), vae, settings, c.seed)
full = [(c, p) for c, p in zip(first.cells, first.paths) if c.strength == 1 and c.group == "curve"]
differs = sum(not np.array_equal(load_rgb(p), base.render(c.prompt, 0.0, c.seed)) for c, p in full)
second = evaluation.evaluate(ws, renderer, Pixels(), train, "ohwx",
                             matrix.load_preset("character", {"strengths": [0, 0.5, 1], "seeds": [1],
                                                              "held_out": ["in a snowy forest", "on the moon"]}))
print(json.dumps({"cells": len(first.cells), "rendered_first": first.rendered, "rendered_second": second.rendered,
                  "equal_base": equal_base, "zero_cells": len(zero),
                  "patched_zero_equal": bool(np.array_equal(patched_zero, load_rgb(zero[0][1]))),
                  "full_differs": differs, "full_cells": len(full),
                  "verdict": first.report["overall"]["verdict"], "sheet": str(first.report_path.parent / "sheet.png")}))
'''


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    given = os.environ.get("LF_TINY_SD15_CKPT")
    if given:
        return Path(given)
    return build(SD15_SCRIPT, tmp_path_factory.mktemp("ckpt") / CKPT_NAME, COMFYUI_DIR)


def test_real_sampler_strength_zero_is_the_base_and_reruns_render_only_new_cells(checkpoint, tmp_path, media_dir):
    done = subprocess.run([comfy_python(COMFYUI_DIR), "-c", SCRIPT, str(REPO), str(checkpoint), str(tmp_path), str(media_dir)],
                          env={**os.environ, "COMFYUI_DIR": str(COMFYUI_DIR)}, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rendered_first"] == result["cells"]
    assert result["equal_base"] and result["zero_cells"] > 0
    assert result["patched_zero_equal"], "ComfyUI's own patch at strength 0 changed the image"
    assert result["full_differs"] == result["full_cells"], "the LoRA at strength 1 left some images unchanged"
    assert result["rendered_second"] == 3  # three invocation prompts x one seed at 0.5
    assert Path(result["sheet"]).is_file()
