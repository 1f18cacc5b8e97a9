"""LECO training on a pure-torch stand-in denoiser (runs in CI): the loss falls, the LoRA moves the
prediction toward the LECO target, a slider moves it both ways, cancel keeps the last checkpoint,
a killed run resumes from it, and the saved file is a kohya LoRA with LECO metadata.

The same checks run through the real ComfyUI glue in tests/test_leco_comfyui.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from leco_standin import ERASE_TOML, make_run
from safetensors import safe_open

from lora_foundry.kohya.preflight import PreflightError
from lora_foundry.leco import train
from lora_foundry.leco.prompts import parse_prompt_text
from lora_foundry.lora.metadata import format_info, read_lora_info
from lora_foundry.progress import CallbackProgress, Cancelled

REPO = Path(__file__).resolve().parents[1]
FAST = dict(learning_rate=5e-3, max_denoising_steps=8)
SLIDER_TOML = '[[prompts]]\ntarget_class = "person"\npositive = "old wrinkled"\nnegative = "young smooth"\n' \
              'guidance_scale = 2.0\nresolution = 64\n'


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _latents_at(backend, net, setting, seed: int, depth: int = 4):
    """A fixed partially denoised latent (LoRA off) and its sigma, for evaluation."""
    sigmas = backend.sigmas(8)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(seed))
    net.set_multiplier(0.0)
    with torch.no_grad():
        p = backend.predictor
        x = p.denoise(p.initial_latents(noise, sigmas[0]), sigmas[: depth + 1], setting.target, "", 3.0)
    return x, sigmas[depth]


def _predict(backend, net, x, sigma, prompt, strength):
    net.set_multiplier(strength)
    with torch.no_grad():
        out = backend.predictor.predict_noise(x, sigma, prompt)
    net.set_multiplier(0.0)
    return out


def test_erase_lowers_the_loss_and_moves_the_prediction_to_the_target(tmp_path):
    settings = parse_prompt_text(ERASE_TOML)
    backend, net, files = make_run(tmp_path, settings)
    result = train.train_leco(backend, net, settings, train.LecoConfig(steps=30, save_every=0, **FAST), files)
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < 0.8 * first, f"loss first-5 mean {first:.5f}, last-5 mean {last:.5f}"
    (setting,) = settings
    ratios = []
    for seed in range(6):
        x, sigma = _latents_at(backend, net, setting, 1000 + seed)
        lora_off = {p: _predict(backend, net, x, sigma, p, 0.0) for p in set(setting.prompts())}
        target = train.build_target(setting, lora_off[setting.positive], lora_off[setting.neutral],
                                    lora_off[setting.unconditional])
        at_one = _predict(backend, net, x, sigma, setting.target, 1.0)
        ratios.append(float(((at_one - target) ** 2).mean() / ((lora_off[setting.target] - target) ** 2).mean()))
    ratio = sum(ratios) / len(ratios)
    print(f"erase: loss {first:.5f} -> {last:.5f}; MSE to LECO target at strength 1 / strength 0 = {ratio:.3f}")
    assert ratio < 0.7, ratios


def test_slider_moves_the_prediction_in_opposite_directions(tmp_path):
    settings = parse_prompt_text(SLIDER_TOML)
    assert len(settings) == 4
    backend, net, files = make_run(tmp_path, settings)
    train.train_leco(backend, net, settings, train.LecoConfig(steps=40, save_every=0, **FAST), files)
    plus, minus = [], []
    for seed in range(6):
        x, sigma = _latents_at(backend, net, settings[0], 2000 + seed)
        direction = (_predict(backend, net, x, sigma, "old wrinkled", 0.0)
                     - _predict(backend, net, x, sigma, "young smooth", 0.0)).flatten()
        base = _predict(backend, net, x, sigma, "person", 0.0).flatten()
        unit = direction / direction.norm()
        plus.append(float((_predict(backend, net, x, sigma, "person", 1.0).flatten() - base) @ unit))
        minus.append(float((_predict(backend, net, x, sigma, "person", -1.0).flatten() - base) @ unit))
    print(f"slider: signed projection at +1 {sum(plus) / 6:+.4f}, at -1 {sum(minus) / 6:+.4f}")
    assert all(p > 0 for p in plus) and all(m < 0 for m in minus), (plus, minus)


def test_saved_file_is_a_kohya_lora_with_leco_metadata(tmp_path):
    settings = parse_prompt_text(SLIDER_TOML)
    backend, net, files = make_run(tmp_path, settings)
    result = train.train_leco(backend, net, settings, train.LecoConfig(steps=4, save_every=2, **FAST), files)
    path = files.save_final(net, result.steps_done)
    with safe_open(str(path), "pt") as handle:
        keys, meta = set(handle.keys()), handle.metadata()
    assert "lora_unet_attn2_to_k.lora_down.weight" in keys and "lora_unet_proj_in.alpha" in keys
    with safe_open(str(path), "pt") as handle:
        assert tuple(handle.get_tensor("lora_unet_proj_in.lora_down.weight").shape) == (4, 32, 1, 1)
    assert meta["ss_leco_prompt_count"] == "4" and meta["ss_network_dim"] == "4"
    assert len(json.loads(meta["ss_leco_preview"])) == 4
    text = format_info(read_lora_info(path))
    assert "LECO: 4 settings" in text and "slider" in text
    assert files.checkpoint_path(2).is_file()
    # the name published while this run trained: the trained weights are kept, and the refusal says where
    with pytest.raises(FileExistsError, match=r"this run's LoRA is kept at .*_checkpoints") as taken:
        files.save_final(net, 4)
    kept = Path(str(taken.value).split("kept at ")[1].split(": copy it")[0])
    assert kept.parent == files.folder and read_lora_info(kept).rank == 4
    # queued again: refused before training, the way every trainer refuses a published name
    with pytest.raises(PreflightError, match=rf"a LoRA named {path.name} already exists in .*; choose another "
                                             "output name or turn overwrite on"):
        files.check_can_start(resume=False)


def test_cancel_stops_at_the_next_step_and_keeps_the_last_checkpoint(tmp_path):
    settings = parse_prompt_text(ERASE_TOML)
    backend, net, files = make_run(tmp_path, settings)
    stop = threading.Event()
    steps_seen: list[int] = []

    def on_loss(step: int, loss: float) -> None:
        steps_seen.append(step)
        if step == 12:
            stop.set()

    progress = CallbackProgress(should_stop=stop.is_set)
    with pytest.raises(Cancelled):
        train.train_leco(backend, net, settings, train.LecoConfig(steps=200, save_every=5, **FAST), files,
                         progress, on_loss)
    assert files.checkpoint_path(10).is_file() and not files.checkpoint_path(15).exists()
    assert files.read_state()["step"] == 10
    assert max(steps_seen) == 12


def _run_child(folder: Path, steps: int, hold_after: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"}
    hold = [] if hold_after is None else [str(hold_after)]
    return subprocess.Popen([sys.executable, str(REPO / "tests" / "leco_standin.py"), str(folder), str(steps),
                             *hold], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_unbroken_run_ends(tmp_path):
    killed, unbroken = tmp_path / "killed", tmp_path / "unbroken"
    child = _run_child(killed, 20, hold_after=12)  # blocks after step 12 (checkpoint 10 saved) until killed
    deadline = time.monotonic() + 300  # only a broken child gets here: it bounds, never decides
    while not (killed / "held").exists():
        assert child.poll() is None and time.monotonic() < deadline, child.communicate()
        time.sleep(0.05)
    child.kill()
    child.wait()
    state = killed / "standin_checkpoints" / "resume_state.pt"
    saved_step = torch.load(state, weights_only=True)["step"]
    assert saved_step == 10
    assert not (killed / "standin.safetensors").exists()
    resumed = _run_child(killed, 20)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"start={saved_step} " in out, out
    whole = _run_child(unbroken, 20)
    assert whole.wait(timeout=300) == 0
    with safe_open(str(killed / "standin.safetensors"), "pt") as a, \
         safe_open(str(unbroken / "standin.safetensors"), "pt") as b:
        for key in a.keys():
            assert torch.allclose(a.get_tensor(key), b.get_tensor(key), atol=1e-6), key
