"""The LECO prompt TOML through kohya's train_leco.py via the launcher (a fake sd-scripts here)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from fixtures_fake_trainer import FAKE_TRAINER, add_leco_scripts, make_base_model, make_fake_install

from lora_foundry.kohya import leco_route
from lora_foundry.kohya.launcher import TrainingFailed, TrainResult
from lora_foundry.kohya.leco_route import LecoRequest, LecoUnsupported, describe_leco, plan_leco, run_leco
from lora_foundry.leco.prompts import PromptFileError
from lora_foundry.leco.train import LecoConfig
from lora_foundry.progress import CallbackProgress

SLIDER = '[[prompts]]\ntarget_class = "person"\npositive = "old"\nnegative = "young"\n'


@pytest.fixture
def install(tmp_path):
    return add_leco_scripts(make_fake_install(tmp_path))


def _request(tmp_path, **more):
    return LecoRequest("sd15", make_base_model(tmp_path / "checkpoints"), SLIDER, "age_slider",
                       training=LecoConfig(steps=6, save_every=2), **more)


def test_runs_train_leco_with_the_prompt_toml_and_publishes_the_lora(tmp_path, install):
    loras = tmp_path / "loras"
    steps = []
    result = run_leco(_request(tmp_path), install, tmp_path / "runs", loras,
                      progress=CallbackProgress(lambda done, total: steps.append(done)))
    assert result.status == "success" and result.lora_path == loras / "age_slider.safetensors"
    assert result.lora_path.is_file() and result.metadata["ss_leco_prompts_file"] == "prompts.toml"
    assert steps and steps[-1] == 6
    run_dir = tmp_path / "runs" / "age_slider"
    config = tomllib.loads((run_dir / "run.toml").read_text())
    assert config["training"]["prompts_file"] == str(run_dir / "prompts.toml")
    assert config["training"]["max_denoising_steps"] == 40 and config["network"]["network_dim"] == 4
    assert (run_dir / "prompts.toml").read_text() == SLIDER
    assert "train_leco.py --config_file" in (run_dir / "command.txt").read_text()


def test_sd_scripts_without_leco_gets_a_clear_message(tmp_path):
    old = make_fake_install(tmp_path)  # train_network.py etc., no train_leco.py
    with pytest.raises(LecoUnsupported, match="has no train_leco.py.*after 48d368f.*checkout 063ef100.*LF Train LECO"):
        plan_leco(_request(tmp_path), old, tmp_path / "runs", tmp_path / "loras")
    with pytest.raises(LecoUnsupported, match="sdxl_train_leco.py"):
        plan_leco(LecoRequest("sdxl", tmp_path / "x", SLIDER, "n"), old, tmp_path / "runs", tmp_path / "loras")


def test_a_published_name_is_refused_before_launch_like_every_trainer(tmp_path, install):
    """The same refusal as kohya's and musubi's (one ``kohya.publish.PublishedError``): a
    FileExistsError as well as a PreflightError, with one wording."""
    loras = tmp_path / "loras"
    loras.mkdir()
    (loras / "age_slider.safetensors").write_bytes(b"published")
    with pytest.raises(FileExistsError, match=r"^a LoRA named age_slider.safetensors already exists in .*loras; "
                                              r"choose another output name$"):
        plan_leco(_request(tmp_path), install, tmp_path / "runs", loras)
    assert not (tmp_path / "runs" / "age_slider").exists()


def test_bad_prompts_are_refused_before_launch(tmp_path, install):
    request = LecoRequest("sd15", make_base_model(tmp_path / "c"), '[[prompts]]\ntarget = "x"\nweigth = 2\n', "n")
    with pytest.raises(PromptFileError, match="'weigth'.*line 3|line 3.*'weigth'"):
        plan_leco(request, install, tmp_path / "runs", tmp_path / "loras")
    assert not (tmp_path / "runs" / "n").exists()


def test_a_trainer_that_writes_no_leco_metadata_is_not_a_success(tmp_path, install):
    (install.sd_scripts_dir / "train_leco.py").write_text(FAKE_TRAINER, encoding="utf-8")
    with pytest.raises(TrainingFailed, match="ss_leco_prompts_file"):
        run_leco(_request(tmp_path), install, tmp_path / "runs", tmp_path / "loras")
    assert not (tmp_path / "loras" / "age_slider.safetensors").exists()


def test_a_plan_computes_its_options_once_and_its_report_reads_nothing_back(tmp_path, install, monkeypatch):
    """The options are checked and written from one computation (counted on the real ``_options``),
    and the report of a run cancelled before its first checkpoint says when that was due, and the
    command, from the plan: no TOML parsed (counted on the real ``tomllib.loads``; it parsed its own
    ``run.toml`` back) and no file of the run read (it read ``command.txt`` and ``warnings.txt``)."""
    computed, real_options = [], leco_route._options
    monkeypatch.setattr(leco_route, "_options", lambda request: computed.append(request) or real_options(request))
    plan = plan_leco(_request(tmp_path, attention="xformers"), install, tmp_path / "runs", tmp_path / "loras")
    assert len(computed) == 1
    written = tomllib.loads((plan.spec.log_path.parent / "run.toml").read_text())
    assert written["training"]["xformers"] is True  # the one computation is what run.toml holds
    parsed, real_loads = [], tomllib.loads
    monkeypatch.setattr(tomllib, "loads", lambda text, **more: parsed.append(text) or real_loads(text, **more))
    read, real_read_text = [], Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda path, *args, **more: read.append(path) or real_read_text(
        path, *args, **more))
    cancelled = TrainResult("cancelled", None, 1, 6, 0.5, None, None, plan.spec.log_path, plan.spec.loss_path, [], [])
    report = describe_leco(cancelled, plan)
    assert "no checkpoint was saved before the cancel (the first was due at step 2)" in report
    assert f"command: {(plan.spec.log_path.parent / 'command.txt').read_text().strip()}" in report
    assert parsed == [] and read == [plan.spec.log_path.parent / "command.txt"]  # the assertion's own read only
