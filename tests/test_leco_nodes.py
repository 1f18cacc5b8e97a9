"""LECO pieces a user meets outside training: the slider row in the LoRA stack, the memory refusal,
and the prompt builder node (no ComfyUI needed)."""

from __future__ import annotations

import pytest

from lora_foundry.leco.memory import LecoMemoryError, MemoryModel, check_fits
from lora_foundry.leco.prompts import parse_prompt_text
from lora_foundry.lora.conflicts import find_conflicts
from lora_foundry.lora.stack import StackRow, rows_to_stack
from lora_foundry.lora.sweep import parse_spec, weight_sweep

SD15 = MemoryModel(model_bytes=int(1.7e9), lora_parameters=800_000, width=320, value_bytes=2)


def test_slider_row_keeps_negative_strengths_where_other_types_read_minus_one_as_auto():
    slider, pose = rows_to_stack([StackRow("age.safetensors", "slider", -1.0, 0.0),
                                  StackRow("pose.safetensors", "pose", -1.0, -1.0)])
    assert (slider.model_strength, slider.lora_type) == (-1.0, "slider")
    assert pose.model_strength == 0.7  # "auto" for a pose LoRA
    assert not [c for c in find_conflicts([slider]) if "outside" in c.message]


def test_a_slider_sweeps_from_minus_one_to_plus_one():
    stack = rows_to_stack([StackRow("lora_foundry/age.safetensors", "slider", 1.0, 0.0)])
    variants = weight_sweep(stack, parse_spec("1: -1:1:0.5", stack), 16, False)
    assert [v.stack[0].model_strength for v in variants] == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert all(v.stack[0].clip_strength == 0.0 for v in variants)


def test_memory_refusal_says_what_would_fit():
    assert check_fits(SD15, 1, 512, 512, free_bytes=12 * 1024**3) > 4 * 1024**3
    with pytest.raises(LecoMemoryError, match=r"batch_size 4, 1024×1024 needs about .* GB.*batch_size 1 at 1024×1024 "
                                              r"would fit|batch_size 4, 1024×1024.*batch_size [23] at 1024×1024"):
        check_fits(SD15, 4, 1024, 1024, free_bytes=24 * 1024**3)
    with pytest.raises(LecoMemoryError, match=r"batch_size 1 at (448|384|320|256|192|128|64)×\1 would fit"):
        check_fits(SD15, 1, 1024, 1024, free_bytes=6 * 1024**3)


def test_prompt_builder_node_chains_and_summarises(pack):
    node = pack.nodes.leco.LECOPrompts()
    first, _ = node.build("erase", "van gogh", "", "", "", 1.0, 512, 1, 1.0, 1.0)
    text, summary = node.build("slider", "person", "old", "young", "", 2.0, 512, 1, 1.0, 1.0, prompts_toml=first)
    assert len(parse_prompt_text(text)) == 5
    assert summary.startswith("5 training settings") and "erase 'van gogh'" in summary
