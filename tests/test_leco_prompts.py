"""LECO prompt TOML: the same files as sd-scripts' --prompts_file, its defaults and slider expansion."""

from __future__ import annotations

import tomllib

import pytest

from lora_foundry.leco.prompt_set import PromptItem, build_prompt_toml
from lora_foundry.leco.prompts import PROMPT_KEYS, SLIDER_KEYS, PromptFileError, load_prompt_file, parse_prompt_text

# The key sets of upstream's library/leco_train_util.py (_recognized_prompt_keys / _recognized_slider_keys).
UPSTREAM_PROMPT_KEYS = {"target", "positive", "unconditional", "neutral", "action", "guidance_scale", "resolution",
                        "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier", "weight"}
UPSTREAM_SLIDER_KEYS = {"target_class", "positive", "negative", "neutral", "guidance_scale", "resolution",
                        "resolutions", "dynamic_resolution", "batch_size", "dynamic_crops", "multiplier", "weight"}


def test_key_sets_are_upstreams():
    assert set(PROMPT_KEYS) == UPSTREAM_PROMPT_KEYS
    assert set(SLIDER_KEYS) == UPSTREAM_SLIDER_KEYS


def test_prompt_item_defaults_follow_upstream():
    (setting,) = parse_prompt_text('guidance_scale = 2.5\n[[prompts]]\ntarget = "van gogh"\n')
    assert setting.positive == "van gogh"  # positive defaults to target
    assert setting.unconditional == "" and setting.neutral == ""  # neutral defaults to unconditional
    assert setting.action == "erase" and setting.guidance_scale == 2.5  # top-level default applied
    assert setting.resolution == (512, 512) and setting.batch_size == 1 and setting.multiplier == 1.0


def test_two_sided_slider_expands_into_upstreams_four_settings():
    text = '[[prompts]]\ntarget_class = "person"\npositive = "old person"\nnegative = "young person"\nmultiplier = 2.0\n'
    settings = parse_prompt_text(text)
    got = [(s.target, s.positive, s.unconditional, s.action, s.multiplier) for s in settings]
    assert got == [("person", "young person", "old person", "erase", 2.0),
                   ("person", "old person", "young person", "enhance", 2.0),
                   ("person", "old person", "young person", "erase", -2.0),
                   ("person", "young person", "old person", "enhance", -2.0)]


@pytest.mark.parametrize("side, expected", [
    ("positive", [("detailed", "enhance", 1.0), ("detailed", "erase", -1.0)]),
    ("negative", [("detailed", "erase", 1.0), ("detailed", "enhance", -1.0)]),
])
def test_one_sided_slider_expands_into_two(side, expected):
    settings = parse_prompt_text(f'[[prompts]]\ntarget_class = "background"\n{side} = "detailed"\n')
    assert [(s.positive, s.action, s.multiplier) for s in settings] == expected
    assert all(s.unconditional == "" for s in settings)


def test_slider_table_layout_with_neutral_file_and_resolutions(tmp_path):
    (tmp_path / "neutrals.txt").write_text("a photo\n\na painting\n")
    path = tmp_path / "slider.toml"
    path.write_text('[slider]\nneutral_prompt_file = "neutrals.txt"\nguidance_scale = 4.0\n'
                    '[[slider.targets]]\ntarget_class = "face"\npositive = "smiling"\nnegative = "frowning"\n'
                    'resolutions = [[512, 512], [768, 512]]\n')
    settings = load_prompt_file(path).settings
    assert len(settings) == 2 * 2 * 4  # neutrals × resolutions × 4
    assert {s.neutral for s in settings} == {"a photo", "a painting"}
    assert {s.resolution for s in settings} == {(512, 512), (768, 512)}
    assert all(s.guidance_scale == 4.0 for s in settings)


@pytest.mark.parametrize("text, key, line", [
    ('[[prompts]]\ntarget = "x"\n\n[[prompts]]\ntarget = "y"\nguidance_scal = 2\n', "guidance_scal", 6),
    ('[[prompts]]\ntarget = "x"\naction = "remove"\n', "action", 3),
    ('[[prompts]]\ntarget = "x"\nresolution = 500\n', "resolution", 3),
    ('[[prompts]]\ntarget = "x"\nbatch_size = 0\n', "batch_size", 3),
    ('[[prompts]]\npositive = "x"\n', "target", None),
    ('[[prompts]]\ntarget_class = "x"\nneutral = "y"\n', "target_class", 2),
])
def test_errors_name_the_key_and_line(text, key, line):
    with pytest.raises(PromptFileError) as caught:
        parse_prompt_text(text, "p.toml")
    message = str(caught.value)
    assert repr(key) in message
    if line is not None:
        assert f"p.toml, line {line}" in message


def test_neutral_file_cannot_leave_the_toml_folder(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('neutral_prompt_file = "../../etc/passwd"\n[[targets]]\ntarget_class = "a"\npositive = "b"\n')
    with pytest.raises(PromptFileError, match="neutral_prompt_file"):
        load_prompt_file(path)


def test_builder_round_trip_and_chaining():
    erase, settings = build_prompt_toml(PromptItem("erase", "red car", guidance_scale=2.0, resolution=768))
    assert len(settings) == 1 and settings[0].resolution == (768, 768)
    text, settings = build_prompt_toml(PromptItem("slider", "person", "old", "young", multiplier=1.5), erase)
    assert len(settings) == 1 + 4
    data = tomllib.loads(text)
    assert data["prompts"][0] == {"target": "red car", "action": "erase", "guidance_scale": 2.0, "resolution": 768,
                                  "batch_size": 1, "multiplier": 1.0, "weight": 1.0}
    assert data["prompts"][1]["target_class"] == "person" and data["prompts"][1]["negative"] == "young"
    assert parse_prompt_text(text) == settings
    _, one_side = build_prompt_toml(PromptItem("slider", "room", positive="cluttered"))
    assert len(one_side) == 2
