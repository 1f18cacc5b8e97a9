"""LECO decisions against upstream sd-scripts (063ef100): its prompt loader ported here (not our
code) expands upstream's own documentation TOMLs to the same settings as ours; unknown keys, float
resolutions, neutrals + a file, size lists; both gradient settings train; the sshs hashes equal
sd-scripts' own function's."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tomllib
from pathlib import Path

import pytest
import torch
from leco_standin import make_run
from safetensors import safe_open
from test_leco_train import _one_thread  # noqa: F401 - autouse: one torch thread on a shared CPU

from lora_foundry.leco import train
from lora_foundry.leco.prompts import PromptFileError, load_prompt_file, read_prompt_set
from lora_foundry.lora.files import lora_bytes

# ---- a port of kohya-ss/sd-scripts 063ef100 library/leco_train_util.py load_prompt_settings ----------
# (rewritten from its logic for this test: upstream's file reader, key sets, defaults, merge order,
# slider expansion, and the top-level / per-target neutral rules; returns plain tuples)
_P_KEYS = {"target", "positive", "unconditional", "neutral", "action", "guidance_scale", "resolution",
           "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier", "weight"}
_S_KEYS = (_P_KEYS - {"target", "unconditional", "action"}) | {"target_class", "negative", "resolutions"}
_DEFAULTS = {"guidance_scale": 1.0, "resolution": 512, "dynamic_resolution": False, "batch_size": 1,
             "dynamic_crops": False, "multiplier": 1.0, "weight": 1.0}


def _size(value):
    if isinstance(value, list):
        if len(value) == 2 and all(isinstance(v, int | float) for v in value):
            return (int(value[0]), int(value[1]))
        raise ValueError(f"resolution list must have 2 numeric items: {value}")
    return (int(value), int(value))


def _setting(target, positive=None, unconditional="", neutral=None, action="erase", guidance_scale=1.0,
             resolution=512, dynamic_resolution=False, batch_size=1, dynamic_crops=False, multiplier=1.0,
             weight=1.0):
    return (target, target if positive is None else positive, unconditional,
            unconditional if neutral is None else neutral, action, float(guidance_scale), _size(resolution),
            bool(dynamic_resolution), int(batch_size), bool(dynamic_crops), float(multiplier), float(weight))


def _slider(item, neutral):
    pos, neg = str(item.get("positive", "") or ""), str(item.get("negative", "") or "")
    m = item.get("multiplier", 1.0)
    raw = item.get("resolutions", item.get("resolution", 512))
    sizes = raw if isinstance(raw, list) and raw and isinstance(raw[0], list | tuple) else [raw]
    if pos.strip() and neg.strip():
        pairs = [(neg, pos, "erase", m), (pos, neg, "enhance", m), (pos, neg, "erase", -m), (neg, pos, "enhance", -m)]
    elif neg.strip():
        pairs = [(neg, "", "erase", m), (neg, "", "enhance", -m)]
    else:
        pairs = [(pos, "", "enhance", m), (pos, "", "erase", -m)]
    base = {k: item.get(k, d) for k, d in (("guidance_scale", 1.0), ("dynamic_resolution", False),
                                           ("batch_size", 1), ("dynamic_crops", False), ("weight", 1.0))}
    return [_setting(str(item.get("target_class", "")), p, u, neutral, a, resolution=size, multiplier=mm, **base)
            for size in sizes for p, u, a, mm in pairs]


def _lines(path):
    return [line.strip() for line in path.read_text("utf-8").splitlines() if line.strip()]


def upstream_load(path: Path) -> list[tuple]:
    data = tomllib.loads(path.read_text("utf-8"))
    out: list[tuple] = []

    def slider_item(item, defaults, neutrals):
        merged = {**{k: v for k, v in defaults.items() if k in _S_KEYS}, **item}
        for neutral in neutrals or [str(merged.get("neutral", "") or "")]:
            out.extend(_slider(merged, neutral))

    if "prompts" in data:
        defaults = {**_DEFAULTS, **{k: v for k, v in data.items() if k in _P_KEYS}}
        for item in data["prompts"]:
            if "target_class" in item:
                slider_item(item, defaults, [str(item.get("neutral", "") or "")])
            else:
                out.append(_setting(**{**{k: v for k, v in defaults.items() if k in _P_KEYS}, **item}))
        return out
    table = data.get("slider", data)
    targets = table.get("targets") or [table]
    if "target" in targets[0]:
        defaults = {**_DEFAULTS, **{k: v for k, v in table.items() if k in _P_KEYS}}
        return [_setting(**{**{k: v for k, v in defaults.items() if k in _P_KEYS}, **t}) for t in targets]
    defaults = {**_DEFAULTS, **{k: v for k, v in table.items() if k in _S_KEYS}}
    neutrals = [str(v) for v in table.get("neutrals", [])]
    for key in ("neutral_prompt_file", "prompt_file"):
        neutrals += _lines(path.parent / table[key]) if key in table else []
    neutrals = neutrals or [str(table.get("neutral", "") or "")]
    for item in targets:
        own = neutrals
        if "neutrals" in item:
            own = [str(v) for v in item["neutrals"]]
        elif "neutral_prompt_file" in item:
            own = _lines(path.parent / item["neutral_prompt_file"])
        elif "prompt_file" in item:
            own = _lines(path.parent / item["prompt_file"])
        elif "neutral" in item:
            own = [str(item["neutral"] or "")]
        slider_item(item, defaults, own)
    return out
# ---- end of the port ------------------------------------------------------------------------------


def ours(path: Path) -> list[tuple]:
    return [(s.target, s.positive, s.unconditional, s.neutral, s.action, s.guidance_scale, s.resolution,
             s.dynamic_resolution, s.batch_size, s.dynamic_crops, s.multiplier, s.weight)
            for s in load_prompt_file(path).settings]


# TOMLs from upstream's docs/train_leco.md (sd-scripts 9562588): sections 2.1, 2.2, 2.3 (both), 2.4, 5;
# then the cases the issue found: neutrals + a file on one target, 512.0, unknown keys.
DOC_TOMLS = {
    "2.1": '[[prompts]]\ntarget = "van gogh"\npositive = "van gogh"\nunconditional = ""\nneutral = ""\naction = "erase"\n'
           'guidance_scale = 1.0\nresolution = 512\nbatch_size = 1\nmultiplier = 1.0\nweight = 1.0\n',
    "2.2": 'guidance_scale = 1.0\nresolution = 1024\nneutral = ""\n\n[[targets]]\ntarget_class = "1girl"\n'
           'positive = "1girl, long hair"\nnegative = "1girl, short hair"\nmultiplier = 1.0\nweight = 1.0\n',
    "2.3a": 'guidance_scale = 1.5\nresolution = 1024\nneutrals = ["", "photo of a person", "cinematic portrait"]\n\n'
            '[[targets]]\ntarget_class = "person"\npositive = "smiling person"\nnegative = "expressionless person"\n',
    "2.3b": 'neutral_prompt_file = "neutrals.txt"\n\n[[targets]]\ntarget_class = ""\npositive = "high detail"\n'
            'negative = "low detail"\n',
    "2.4": 'guidance_scale = 1.0\nresolution = 512\n\n[[targets]]\ntarget_class = ""\npositive = "high detail"\n'
           'negative = "low detail"\nmultiplier = 1.0\n',
    "5": 'resolution = 1024\ndynamic_resolution = true\ndynamic_crops = true\n\n[[targets]]\ntarget_class = ""\n'
         'positive = "high detail"\nnegative = "low detail"\n',
    "neutrals+file": 'neutral_prompt_file = "neutrals.txt"\n[[targets]]\ntarget_class = "a"\npositive = "b"\n'
                     'neutrals = [""]\nneutral_prompt_file = "neutrals.txt"\n',
    "float size": '[[prompts]]\ntarget = "x"\nresolution = 512.0\n[[prompts]]\ntarget = "y"\nresolution = [768.0, 512]\n',
    "unknown keys": 'guidance_scal = 2.0\nmin_snr_gamma = 5\n[[targets]]\ntarget_class = "a"\npositive = "b"\ncolour = 1\n',
}


@pytest.mark.parametrize("name", list(DOC_TOMLS))
def test_upstream_loader_and_ours_give_the_same_settings(tmp_path, name):
    (tmp_path / "neutrals.txt").write_text("a photo\n\n  studio portrait  \n", encoding="utf-8")
    path = tmp_path / "prompts.toml"
    path.write_text(DOC_TOMLS[name], encoding="utf-8")
    assert ours(path) == upstream_load(path)


def test_neutrals_and_a_file_on_one_target_give_upstreams_two_settings(tmp_path):
    (tmp_path / "neutrals.txt").write_text("a photo\nstudio portrait\n", encoding="utf-8")
    path = tmp_path / "p.toml"
    path.write_text(DOC_TOMLS["neutrals+file"], encoding="utf-8")
    assert len(ours(path)) == 2 and {s[3] for s in ours(path)} == {""}


def test_unknown_keys_are_accepted_and_listed(tmp_path):
    found = read_prompt_set(DOC_TOMLS["unknown keys"], "p.toml")
    assert len(found.settings) == 2
    text = "\n".join(found.warnings)
    assert "'guidance_scal'" in text and "p.toml, line 1" in text and "'colour'" in text
    assert "'min_snr_gamma'" in text and "train_leco.py option" in text


@pytest.mark.parametrize("text, message", [
    ('[[prompts]]\ntarget = "x"\ncolour = 1\n', "'colour'.*stops on it too"),
    ('[[prompts]]\ntarget = "x"\nresolution = [[512, 512], [768, 768]]\n', "'resolution'.*one size"),
    ('[[prompts]]\ntarget = "x"\nresolution = 512.5\n', "'resolution'"),
])
def test_what_upstream_stops_on_is_refused_with_the_key(text, message):
    with pytest.raises(PromptFileError, match=message):
        read_prompt_set(text, "p.toml")


def test_upstream_docs_neutral_file_toml_trains_on_the_standin(tmp_path):
    (tmp_path / "neutrals.txt").write_text("a photo\nstudio portrait\n", encoding="utf-8")
    path = tmp_path / "slider.toml"
    path.write_text(DOC_TOMLS["2.3b"].replace("[[targets]]", "resolution = 64\n\n[[targets]]"), encoding="utf-8")
    settings = load_prompt_file(path).settings
    assert len(settings) == 2 * 4 and {s.neutral for s in settings} == {"a photo", "studio portrait"}
    backend, net, files = make_run(tmp_path / "out", settings)
    result = train.train_leco(backend, net, settings, train.LecoConfig(steps=2, save_every=0, max_denoising_steps=4),
                              files)
    assert result.steps_done == 2 and all(torch.isfinite(torch.tensor(result.losses)))


def _gradient(tmp_path: Path, denoise_gradients: bool) -> torch.Tensor:
    """The LoRA gradient of one LECO step (LoRA up weights made non-zero so the denoise depends on it)."""
    settings = read_prompt_set('[[prompts]]\ntarget = "red car"\nguidance_scale = 2.0\nresolution = 64\n').settings
    backend, net, _ = make_run(tmp_path, settings, seed=3)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    for p in net.parameters():
        p.grad = None
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(7))
    train.leco_step(backend.predictor, net, settings[0], train.ddpm_sigmas(8), 5, noise, 3.0,
                    denoise_gradients=denoise_gradients)
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def test_denoise_gradients_on_backpropagates_through_the_denoise(tmp_path):
    off, on = _gradient(tmp_path / "off", False), _gradient(tmp_path / "on", True)
    assert torch.isfinite(on).all() and not torch.allclose(off, on)
    cosine = float(off @ on / (off.norm() * on.norm()))
    print(f"gradient cosine, denoise without vs with gradients: {cosine:.3f}")
    assert cosine > 0.5  # the same direction roughly, not the same gradient


@pytest.mark.parametrize("denoise_gradients", [False, True])
def test_both_gradient_settings_train_on_the_standin(tmp_path, denoise_gradients):
    settings = read_prompt_set('[[prompts]]\ntarget = "red car"\nresolution = 64\n').settings
    backend, net, files = make_run(tmp_path, settings)
    config = train.LecoConfig(steps=12, save_every=0, learning_rate=5e-3, max_denoising_steps=4,
                              denoise_gradients=denoise_gradients, min_snr_gamma=5.0, noise_offset=0.05)
    losses = train.train_leco(backend, net, settings, config, files).losses
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    print(f"denoise_gradients={denoise_gradients}: loss first-4 mean {first:.5f}, last-4 mean {last:.5f}")
    assert last < first


def test_min_snr_weight_is_min_snr_gamma_over_snr():
    assert train.snr_weight(0.1, 5.0) == pytest.approx(5.0 / 100.0)  # SNR 100 capped at 5
    assert train.snr_weight(2.0, 5.0) == 1.0 and train.snr_weight(0.1, 0.0) == 1.0


def _sd_scripts_hashes(tensors_file: Path, metadata: dict[str, str]) -> dict[str, str] | None:
    """sd-scripts' own precalculate_safetensors_hashes, run in its venv (KOHYA_SD_SCRIPTS, KOHYA_PYTHON)."""
    folder, python = os.environ.get("KOHYA_SD_SCRIPTS"), os.environ.get("KOHYA_PYTHON")
    if not folder or not python:
        return None
    code = ("import json, sys\nfrom safetensors.torch import load_file\nfrom library import train_util\n"
            "m, l = train_util.precalculate_safetensors_hashes(load_file(sys.argv[1]), json.loads(sys.argv[2]))\n"
            "print(json.dumps({'sshs_model_hash': m, 'sshs_legacy_hash': l}))\n")
    done = subprocess.run([python, "-c", code, str(tensors_file), json.dumps(metadata)], cwd=folder, timeout=300,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _quoted_sshs(tensors, metadata) -> dict[str, str]:
    """sd-scripts' algorithm, quoted: save with the ss_* metadata only, then hash from a BytesIO."""
    from safetensors.torch import save

    data = io.BytesIO(save(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")}))
    n = int.from_bytes(data.read(8), "little")
    data.seek(n + 8)
    model = hashlib.sha256(data.read()).hexdigest()
    data.seek(0x100000)
    legacy = hashlib.sha256(data.read(0x10000)).hexdigest()[0:8]
    return {"sshs_model_hash": model, "sshs_legacy_hash": legacy}


def _header(data: bytes) -> dict[str, str]:
    return json.loads(data[8:8 + int.from_bytes(data[:8], "little")])["__metadata__"]


def test_sshs_hashes_are_sd_scripts(tmp_path):
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    tensors = {f"lora_unet_b{i}.lora_down.weight": torch.randn((64, 640), generator=generator).half()
               for i in range(16)}  # > 1 MiB, so the legacy hash reads real bytes
    metadata = {"ss_network_dim": "4", "ss_leco_prompt_count": "2", "lora_foundry.type": "leco"}
    written = _header(lora_bytes(tensors, metadata, "fp16"))
    got = {k: written[k] for k in ("sshs_model_hash", "sshs_legacy_hash")}
    assert got == _quoted_sshs(tensors, metadata)
    save_file(tensors, str(tmp_path / "t.safetensors"))
    theirs = _sd_scripts_hashes(tmp_path / "t.safetensors", metadata)
    if theirs is None:
        pytest.skip("sd-scripts' own function: set KOHYA_SD_SCRIPTS and KOHYA_PYTHON (its venv)")
    assert got == theirs


def test_saved_leco_lora_carries_the_hashes(tmp_path):
    settings = read_prompt_set('[[prompts]]\ntarget = "x"\nresolution = 64\n').settings
    backend, net, files = make_run(tmp_path, settings)
    path = files.save_final(net, 0)
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    assert {k: meta[k] for k in ("sshs_model_hash", "sshs_legacy_hash")} == _quoted_sshs(tensors, meta)
