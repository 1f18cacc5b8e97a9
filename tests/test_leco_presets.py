"""LECO's first-run preset: small and short, under its own name; the full setting untouched."""

from __future__ import annotations

import pytest

from lora_foundry.leco import presets
from lora_foundry.leco.prompts import PromptSetting

SETTINGS = [PromptSetting("person", "old person", "young person", "person", resolution=(512, 768), batch_size=2,
                          dynamic_resolution=True),
            PromptSetting("van gogh", "van gogh", "", "", resolution=(32, 32))]


def test_quick_runs_a_few_small_steps_under_its_own_name():
    name, steps, settings = presets.apply_preset(presets.QUICK, "age_slider", 500, SETTINGS)
    assert (name, steps) == ("age_slider_quick", 4)
    assert [s.resolution for s in settings] == [(64, 64), (32, 32)]
    assert all(s.batch_size == 1 and not s.dynamic_resolution for s in settings)
    assert [s.prompts() for s in settings] == [s.prompts() for s in SETTINGS]  # same concept, smaller run


def test_full_is_the_setting_as_given():
    assert presets.apply_preset(presets.FULL, "age_slider", 500, SETTINGS) == ("age_slider", 500, SETTINGS)


def test_the_quick_label_says_what_it_does():
    assert "4 steps" in presets.QUICK and "64 px" in presets.QUICK
    with pytest.raises(ValueError, match="^preset 'fast' is not one of full: as set, quick: 4 steps, 64 px$"):
        presets.apply_preset("fast", "x", 10, SETTINGS)
