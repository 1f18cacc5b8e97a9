"""A mistyped closed choice (a musubi-tuner preset, a video model, an x264 preset, a frame format, a
split mode, a sampling mode) is refused before any work, naming what was asked and listing every valid choice, in
one wording wherever it is typed (``lora_foundry/choices.py``)."""

from __future__ import annotations

import pytest

from lora_foundry.media.sampling import MODES as SAMPLING_MODES
from lora_foundry.media.sampling import ONE_PASS_MODES, SampleSpec, iter_samples
from lora_foundry.musubi.install import PRESETS, preset_for
from lora_foundry.stages.clips.rules import MODEL_RULES, X264_PRESETS, ClipOptions, rule_for
from lora_foundry.stages.frames.ingest_stage import FRAME_FORMATS, VideoIngestOptions
from lora_foundry.stages.layers.split import MODES, SplitOptions

REFUSALS = {
    "musubi-tuner preset": (lambda: preset_for("wan99"), "wan99", PRESETS),
    "video model": (lambda: rule_for("sora"), "sora", MODEL_RULES),
    "x264 preset": (lambda: ClipOptions(preset="fastest").validate(), "fastest", X264_PRESETS),
    "frame format": (lambda: VideoIngestOptions(frame_format="gif").validate(), "gif", FRAME_FORMATS),
    "mode": (lambda: SplitOptions(mode="everything").validate(), "everything", MODES),
    "sampling mode": (lambda: VideoIngestOptions(mode="every other").validate(), "every other", SAMPLING_MODES),
    "one-pass sampling mode (keyframes: use plan_samples)": (
        lambda: next(iter_samples("never_opened.mp4", SampleSpec(mode="keyframes"))), "keyframes", ONE_PASS_MODES),
}


@pytest.mark.parametrize("what", sorted(REFUSALS))
def test_a_mistyped_choice_is_refused_with_every_valid_one_listed(what):
    call, typed, valid = REFUSALS[what]
    with pytest.raises(ValueError) as refused:
        call()
    assert str(refused.value) == f"{what} {typed!r} is not one of {', '.join(valid)}"


def test_a_valid_choice_is_given_back():
    assert rule_for("wan") is MODEL_RULES["wan"] and preset_for(next(iter(PRESETS))) is next(iter(PRESETS.values()))
