"""A mistyped closed choice (a preset, a model, a format, a mode, a device, a LoRA type...) is refused
before any work, naming what was asked and listing every valid choice, in one wording wherever it is
typed (``lora_foundry/choices.py``): raised as the error type its callers catch (a preflight, merge or
option refusal stays one), or listed among a node's or a dataset TOML's problems."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fixtures_fake_trainer import add_leco_scripts, make_base_model, make_fake_install
from test_dataset_toml_schema import GOOD

from lora_foundry.captions.prompt_set import SUBJECT_TYPES, build_prompt_set
from lora_foundry.captions.render import BASE_MODELS
from lora_foundry.captions.strategies import LORA_TYPES, strategy_for
from lora_foundry.evaluate.matrix import load_preset, preset_names
from lora_foundry.evaluate.tune import SEARCH_SPACES, search_space
from lora_foundry.kohya.dataset import IF_EXISTS, DatasetSpec, write_kohya_dataset
from lora_foundry.kohya.leco_route import ATTENTION, PRECISIONS, LecoRequest, plan_leco
from lora_foundry.kohya.operator_config import SCRIPTS, OptionRefused, TrainerInstall, validate_extra_options
from lora_foundry.kohya.preflight import PreflightError
from lora_foundry.kohya.subsets import MASK_MODES, effective_mask_mode
from lora_foundry.kohya.toml_schema import validate_dataset_config
from lora_foundry.kohya.train_config import VARIANTS, TrainRequest, network_settings, plan_run
from lora_foundry.leco import presets as leco_presets
from lora_foundry.leco.prompt_set import MODES as LECO_MODES
from lora_foundry.leco.prompt_set import PromptItem, build_prompt_toml
from lora_foundry.leco.prompts import PromptFileError
from lora_foundry.lora.files import SAVE_DTYPES, lora_bytes
from lora_foundry.lora.merge import MERGE_MODES, MergeError, merge_stack, save_lora
from lora_foundry.media.sampling import MODES as SAMPLING_MODES
from lora_foundry.media.sampling import ONE_PASS_MODES, SampleSpec, iter_samples
from lora_foundry.models import expression_model, pose_model, wd14_model
from lora_foundry.models.device import DEVICE_CHOICES, pick_device
from lora_foundry.musubi.install import PRESETS, preset_for
from lora_foundry.stages.clips.rules import MODEL_RULES, X264_PRESETS, ClipOptions, rule_for
from lora_foundry.stages.clusters.cluster import BACKENDS, pick_backend
from lora_foundry.stages.clusters.cluster_stage import MODES as CLUSTER_MODES
from lora_foundry.stages.clusters.cluster_stage import cluster_stage
from lora_foundry.stages.clusters.embedders import METHODS, make_embedder
from lora_foundry.stages.clusters.select import BY
from lora_foundry.stages.clusters.select_stage import choose
from lora_foundry.stages.frames.ingest_stage import FRAME_FORMATS, VideoIngestOptions
from lora_foundry.stages.layers.split import MODES, SplitOptions
from lora_foundry.stages.tagging.wd14 import RATING_MODES, TagRules

SLIDER = '[[prompts]]\ntarget_class = "person"\npositive = "old"\nnegative = "young"\n'


class Refusal(NamedTuple):
    what: str
    call: Any  # tmp_path -> never returns
    typed: Any
    valid: Any
    error: type[ValueError] = ValueError


def _leco(tmp: Path, **typed: str) -> Any:
    request = LecoRequest("sd15", make_base_model(tmp / "checkpoints"), SLIDER, "age_slider", **typed)
    return plan_leco(request, add_leco_scripts(make_fake_install(tmp)), tmp / "runs", tmp / "loras")


def _dataset(tmp: Path, **typed: str) -> Any:
    return write_kohya_dataset(None, None, DatasetSpec("dataset", "sks", **typed), tmp)


REFUSALS = {
    "musubi preset": Refusal("musubi-tuner preset", lambda tmp: preset_for("wan99"), "wan99", PRESETS),
    "video model": Refusal("video model", lambda tmp: rule_for("sora"), "sora", MODEL_RULES),
    "x264 preset": Refusal("x264 preset", lambda tmp: ClipOptions(preset="fastest").validate(), "fastest", X264_PRESETS),
    "frame format": Refusal("frame format", lambda tmp: VideoIngestOptions(frame_format="gif").validate(), "gif",
                            FRAME_FORMATS),
    "split mode": Refusal("mode", lambda tmp: SplitOptions(mode="everything").validate(), "everything", MODES),
    "sampling mode": Refusal("sampling mode", lambda tmp: VideoIngestOptions(mode="every other").validate(),
                             "every other", SAMPLING_MODES),
    "one-pass sampling mode": Refusal(
        "one-pass sampling mode (keyframes: use plan_samples)",
        lambda tmp: next(iter_samples("never_opened.mp4", SampleSpec(mode="keyframes"))), "keyframes", ONE_PASS_MODES),
    "caption base model": Refusal("base model", lambda tmp: build_prompt_set("character", "red hair", 1, 0, "sks",
                                                                             base_model="SD9"), "SD9", BASE_MODELS),
    "caption LoRA type": Refusal("LoRA type", lambda tmp: strategy_for("vibes"), "vibes", LORA_TYPES),
    "prompt set subject type": Refusal("subject type", lambda tmp: build_prompt_set("vehicle", "red car", 4, 0, "sks"),
                                       "vehicle", SUBJECT_TYPES),
    "tuning LoRA type": Refusal("tuning LoRA type", lambda tmp: search_space("vehicle"), "vehicle",
                                sorted(SEARCH_SPACES)),
    "tuning setting": Refusal("search_space_json setting", lambda tmp: search_space("style", {"optimizer": "Lion"}),
                              "optimizer", sorted(SEARCH_SPACES["style"])),
    "evaluation preset": Refusal("evaluation preset", lambda tmp: load_preset("vehicle"), "vehicle",
                                 sorted(preset_names())),
    "select by": Refusal("select by", lambda tmp: choose(None, None, "colour"), "colour", BY),
    "cluster mode": Refusal("cluster mode", lambda tmp: cluster_stage(None, None, mode="faces"), "faces", CLUSTER_MODES),
    "cluster backend": Refusal("cluster backend", lambda tmp: pick_backend("gpu"), "gpu", BACKENDS),
    "embedding method": Refusal("embedding method", lambda tmp: make_embedder("sift", None), "sift", METHODS),
    "wd14 rating": Refusal("rating", lambda tmp: TagRules(rating="first"), "first", RATING_MODES),
    "merge mode": Refusal("merge mode", lambda tmp: merge_stack([], mode="average"), "average", MERGE_MODES,
                          MergeError),
    "merged LoRA dtype": Refusal("dtype", lambda tmp: save_lora({}, {}, tmp, "merged", dtype="fp8"), "fp8",
                                 SAVE_DTYPES, MergeError),
    "LoRA file dtype": Refusal("dtype", lambda tmp: lora_bytes({}, {}, "fp8"), "fp8", SAVE_DTYPES),
    "device": Refusal("device", lambda tmp: pick_device("tpu"), "tpu", DEVICE_CHOICES),
    "wd14 device": Refusal("wd14 device", lambda tmp: wd14_model.load_wd14(Path(__file__), "tpu"), "tpu",
                           wd14_model.PROVIDERS),
    "expression device": Refusal("expression model device",
                                 lambda tmp: expression_model.load_expression(Path(__file__), "tpu"), "tpu",
                                 expression_model.PROVIDERS),
    "pose device": Refusal("pose device", lambda tmp: pose_model.load_pose(Path(__file__), "tpu"), "tpu",
                           pose_model.PROVIDERS),
    "dataset if_exists": Refusal("if_exists", lambda tmp: _dataset(tmp, if_exists="overwrite"), "overwrite", IF_EXISTS),
    "dataset mask mode": Refusal("mask mode", lambda tmp: _dataset(tmp, mask_mode="green"), "green", MASK_MODES),
    "subset mask mode": Refusal("mask mode", lambda tmp: effective_mask_mode("green", "png", False), "green",
                                MASK_MODES),
    "training architecture": Refusal(
        "architecture", lambda tmp: plan_run(TrainRequest("sd9", tmp, tmp, tmp, "x", None), None, tmp, tmp), "sd9",
        sorted(SCRIPTS), PreflightError),
    "trainer script": Refusal("architecture", lambda tmp: TrainerInstall(tmp, tmp).script("sd9"), "sd9",
                              sorted(SCRIPTS), OptionRefused),
    "network variant": Refusal("network variant", lambda tmp: network_settings("sdxl", "lycoris", 8, 4.0), "lycoris",
                               VARIANTS, PreflightError),
    "training option choice": Refusal("training option 'max_token_length': value",
                                      lambda tmp: validate_extra_options("max_token_length = 100"), 100,
                                      ("75", "150", "225"), OptionRefused),
    "training option flag for a number": Refusal("training option 'max_token_length': value",
                                                 lambda tmp: validate_extra_options("max_token_length = true"), "true",
                                                 ("75", "150", "225"), OptionRefused),
    "LECO mixed_precision": Refusal("mixed_precision", lambda tmp: _leco(tmp, mixed_precision="fp8"), "fp8",
                                    PRECISIONS, PreflightError),
    "LECO attention": Refusal("attention", lambda tmp: _leco(tmp, attention="flash"), "flash", ATTENTION,
                              PreflightError),
    "LECO preset": Refusal("preset", lambda tmp: leco_presets.apply_preset("fast", "x", 10, []), "fast",
                           leco_presets.PRESETS),
    "LECO prompt mode": Refusal("mode", lambda tmp: build_prompt_toml(PromptItem("forget", "person")), "forget",
                                LECO_MODES, PromptFileError),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_mistyped_choice_is_refused_with_every_valid_one_listed(case, tmp_path):
    what, call, typed, valid, error = REFUSALS[case]
    with pytest.raises(error) as refused:
        call(tmp_path)
    assert str(refused.value) == f"{what} {typed!r} is not one of {', '.join(valid)}"


def test_a_valid_choice_is_given_back():
    assert rule_for("wan") is MODEL_RULES["wan"] and preset_for(next(iter(PRESETS))) is next(iter(PRESETS.values()))


def test_a_node_lists_a_wrong_fixed_choice_in_the_same_wording(pack):
    """LaMa's ``if_missing`` goes through its own VALIDATE_INPUTS (ComfyUI skips the combo check
    then), so the pack checks the choice: the refusal names the node, the input and both choices."""
    checks = importlib.import_module(f"{pack.__name__}.nodes._checks")
    lama = pack.NODE_CLASS_MAPPINGS["LF_LaMaLoader"]
    assert checks.refusal(lama.VALIDATE_INPUTS, model_name="big-lama.pt", if_missing="ignore") == (
        "LF LaMa Loader: input 'if_missing' 'ignore' is not one of error, opencv fallback")


def test_a_dataset_toml_lists_a_wrong_interpolation_in_the_same_wording():
    config = json.loads(json.dumps(GOOD))
    config["datasets"][0]["subsets"][0]["resize_interpolation"] = "fancy"
    assert validate_dataset_config(config) == ["datasets[0].subsets[0]: resize_interpolation 'fancy' is not one of "
                                               "area, bicubic, bilinear, box, cubic, lanczos, linear, nearest"]


def test_a_pasted_huge_value_is_quoted_back_cut():
    with pytest.raises(ValueError) as refused:
        pick_device("cuda" * 100_000)
    assert str(refused.value) == f"device {repr('cuda' * 100_000)[:120]}... is not one of auto, cpu, cuda, mps"
