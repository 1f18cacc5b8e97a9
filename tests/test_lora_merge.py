"""Merging a stack into one kohya LoRA: exact when concatenated, measured when SVD-reduced."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from lora_foundry.lora import merge
from lora_foundry.lora.metadata import read_lora_info
from lora_foundry.lora.synthetic import SD15_MODULES, SD15_TE_MODULES, write_kohya_lora
from lora_foundry.progress import CallbackProgress, Cancelled

SHAPES = {**SD15_MODULES, **SD15_TE_MODULES}
ONLY_IN_B = "lora_unet_down_blocks_0_attentions_0_proj_out"


def weight_shape(out_f: int, in_f: int, kernel: int) -> tuple[int, ...]:
    return (out_f, in_f, kernel, kernel) if kernel else (out_f, in_f)


def reference_apply(base: dict, lora: dict, model_s: float, clip_s: float) -> dict:
    """W + s * (up @ down) * alpha / rank for every module, the way ComfyUI and kohya apply it."""
    out = {k: v.clone() for k, v in base.items()}
    for key, w in out.items():
        if f"{key}.lora_up.weight" not in lora:
            continue
        up, down = lora[f"{key}.lora_up.weight"].double(), lora[f"{key}.lora_down.weight"].double()
        rank = down.shape[0]
        alpha = float(lora[f"{key}.alpha"]) if f"{key}.alpha" in lora else rank
        s = clip_s if key.startswith("lora_te") else model_s
        out[key] = w + s * (up.flatten(1) @ down.flatten(1)).reshape(w.shape) * alpha / rank
    return out


@pytest.fixture()
def two_loras(tmp_path):
    a = write_kohya_lora(tmp_path / "a.safetensors", SHAPES, rank=4, alpha=2.0, seed=1,
                         metadata={"lora_foundry.trigger": "alice_lf", "ss_base_model_version": "sd_v1"})
    b = write_kohya_lora(tmp_path / "b.safetensors", {**SHAPES, ONLY_IN_B: (320, 320, 1)}, rank=8,
                         alpha=1.0, seed=2, metadata={"lora_foundry.trigger": "park_bg",
                                                      "ss_base_model_version": "sd_v1"})
    # one module of b without an alpha tensor: scale must be 1.0 there, as in ComfyUI
    tensors = load_file(str(b))
    del tensors[f"{ONLY_IN_B}.alpha"]
    save_file(tensors, str(b), metadata=dict(safe_open(str(b), "pt").metadata()))
    return a, b


def base_weights(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    shapes = {**SHAPES, ONLY_IN_B: (320, 320, 1)}
    return {k: torch.randn(weight_shape(*s), generator=g, dtype=torch.float64) for k, s in shapes.items()}


def test_concat_merge_equals_applying_both(two_loras, tmp_path):
    a, b = two_loras
    parts = [merge.MergePart("a.safetensors", str(a), 1.0, 1.0), merge.MergePart("b.safetensors", str(b), 0.6, 0.6)]
    state, report = merge.merge_stack(parts, "concat")
    assert report.rank == 12 and report.modules == len(SHAPES) + 1
    path = merge.save_lora(state, merge.merged_metadata(report, [read_lora_info(a), read_lora_info(b)], "ab"),
                           tmp_path / "out", "ab", dtype="fp32")
    merged = load_file(str(path))
    assert all(k.startswith(("lora_unet_", "lora_te_")) for k in merged)
    assert merged["lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight"].shape == (12, 320, 3, 3)

    base = base_weights()
    expected = reference_apply(reference_apply(base, load_file(str(a)), 1.0, 1.0), load_file(str(b)), 0.6, 0.6)
    got = reference_apply(base, merged, 1.0, 1.0)
    worst = max(float((expected[k] - got[k]).abs().max()) for k in base)
    assert worst <= 1e-3, worst
    changed = max(float((expected[k] - base[k]).abs().max()) for k in base)
    assert changed > 1e-2, "the LoRAs must actually change the weights for the check to mean anything"


def test_text_encoder_modules_take_the_clip_strength(two_loras):
    a, b = two_loras
    parts = [merge.MergePart("a", str(a), 1.0, 0.0), merge.MergePart("b", str(b), 0.6, 0.25)]
    state, _ = merge.merge_stack(parts, "concat")
    base = base_weights()
    expected = reference_apply(reference_apply(base, load_file(str(a)), 1.0, 0.0), load_file(str(b)), 0.6, 0.25)
    got = reference_apply(base, state, 1.0, 1.0)
    assert max(float((expected[k] - got[k]).abs().max()) for k in base) <= 1e-3
    te_key = "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"
    assert state[te_key].shape[0] == 8, "a clip strength of 0 drops that LoRA's text-encoder factors"


def test_metadata_names_the_parts(two_loras, tmp_path):
    a, b = two_loras
    parts = [merge.MergePart("a.safetensors", str(a), 1.0, 1.0), merge.MergePart("b.safetensors", str(b), 0.6, 0.5)]
    state, report = merge.merge_stack(parts, "concat")
    meta = merge.merged_metadata(report, [read_lora_info(a), read_lora_info(b)], "ab")
    path = merge.save_lora(state, meta, tmp_path, "ab")
    info = read_lora_info(path)
    merged_from = json.loads(info.metadata["lora_foundry.merged_from"])
    assert [(p["name"], p["model_strength"], p["clip_strength"]) for p in merged_from] == [
        ("a.safetensors", 1.0, 1.0), ("b.safetensors", 0.6, 0.5)]
    assert info.triggers == ("alice_lf", "park_bg") and info.base_model == "SD1.x" and info.rank == 12
    with pytest.raises(FileExistsError, match="exists"):
        merge.save_lora(state, meta, tmp_path, "ab")
    merge.save_lora(state, meta, tmp_path, "ab", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".safetensors" or p.name == "ab.safetensors") \
        == ["ab.safetensors"], "no temp files left next to the output"


def test_svd_merge_reports_its_error(two_loras):
    a, b = two_loras
    parts = [merge.MergePart("a", str(a), 1.0, 1.0), merge.MergePart("b", str(b), 0.6, 0.6)]
    exact, _ = merge.merge_stack(parts, "concat")
    state, report = merge.merge_stack(parts, "svd", rank=4)
    assert report.rank == 4 and 0.0 < report.svd_error < 1.0 and report.svd_max_module_error >= report.svd_error
    assert "SVD relative error" in report.summary()
    base = {k: torch.zeros_like(v) for k, v in base_weights().items()}
    delta_exact, delta_svd = reference_apply(base, exact, 1, 1), reference_apply(base, state, 1, 1)
    err = sum(float((delta_exact[k] - delta_svd[k]).pow(2).sum()) for k in base) ** 0.5
    norm = sum(float(delta_exact[k].pow(2).sum()) for k in base) ** 0.5
    assert err / norm == pytest.approx(report.svd_error, rel=1e-3)
    _, full = merge.merge_stack(parts, "svd", rank=64)
    assert full.svd_error < 1e-6


def test_refuses_formats_it_cannot_merge_exactly(tmp_path, two_loras):
    a, _ = two_loras
    tensors = load_file(str(a))
    tensors["lora_unet_x.lora_mid.weight"] = torch.zeros(4, 4, 3, 3)
    save_file(tensors, str(tmp_path / "locon.safetensors"))
    with pytest.raises(merge.MergeError, match="lora_mid"):
        merge.merge_stack([merge.MergePart("locon", str(tmp_path / "locon.safetensors"), 1, 1)])
    with pytest.raises(merge.MergeError, match="empty"):
        merge.merge_stack([])
    with pytest.raises(merge.MergeError, match="every strength"):
        merge.merge_stack([merge.MergePart("a", str(a), 0.0, 0.0)])


def test_cancel_stops_before_anything_is_written(two_loras):
    a, b = two_loras
    parts = [merge.MergePart("a", str(a), 1.0, 1.0), merge.MergePart("b", str(b), 0.6, 0.6)]
    calls = []
    progress = CallbackProgress(lambda d, t: calls.append(d), should_stop=lambda: len(calls) >= 3)
    with pytest.raises(Cancelled):
        merge.merge_stack(parts, "concat", progress=progress)
    assert len(calls) == 3
