"""LF Kohya Train LECO and ``lora-foundry train-leco``: the LECO prompt TOML through the operator's
train_leco.py (a fake sd-scripts here), with the launcher's progress, loss chart, cancel and
honest-success rules, and a clear message when sd-scripts has no LECO script."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from fixtures_fake_trainer import add_leco_scripts, configure_operator, ctrl_c_at, make_base_model, make_fake_install
from safetensors import safe_open

from lora_foundry import cli
from lora_foundry.kohya import operator_config

REPO = Path(__file__).resolve().parents[1]
SLIDER = '[[prompts]]\ntarget_class = "person"\npositive = "old person"\nnegative = "young person"\n'
ERASE = '[[prompts]]\ntarget = "van gogh"\naction = "erase"\n'


class Stop(Exception):
    """Stands in for ComfyUI's InterruptProcessingException."""


@pytest.fixture()
def comfy(tmp_path, output_root, monkeypatch, pack):
    """The node module with ComfyUI's folders pointed at tmp: models/checkpoints, models/loras, input,
    and the operator's trainer.json (a fake sd-scripts with train_leco.py) in the user folder."""
    install = add_leco_scripts(make_fake_install(tmp_path / "kohya"))
    configure_operator(install, output_root / ".user")
    monkeypatch.delenv(operator_config.SD_SCRIPTS_ENV, raising=False)
    monkeypatch.delenv("FAKE_MODE", raising=False)
    models = tmp_path / "models"
    make_base_model(models / "checkpoints")
    module = pack.nodes.leco_kohya
    folders = {"checkpoints": [models / "checkpoints"], "loras": [models / "loras"]}
    monkeypatch.setattr(module._comfy, "model_folder_paths", lambda folder: folders.get(folder, []))
    (tmp_path / "input").mkdir(exist_ok=True)
    monkeypatch.setattr(module._comfy, "input_root", lambda: tmp_path / "input")
    sent: list[tuple[str, dict]] = []
    monkeypatch.setattr(module._comfy, "send_event", lambda event, data: sent.append((event, data)))
    return module, install, models, sent


def node_kwargs(**more):
    values = dict(architecture="sd15", base_model="base.safetensors", output_name="age_slider", steps=6,
                  learning_rate=1e-4, rank=4, alpha=1.0, seed=3, save_every=2, dry_run=False, prompts_toml=SLIDER,
                  unique_id="9")
    return {**values, **more}


def test_node_trains_through_train_leco_and_the_lora_lands_in_models_loras(comfy, monkeypatch):
    module, _, models, sent = comfy
    parsed, real_loads = [], tomllib.loads
    monkeypatch.setattr(tomllib, "loads", lambda text, **more: parsed.append(text) or real_loads(text, **more))
    out = module.KohyaTrainLECO().train(**node_kwargs())
    assert parsed.count(SLIDER) == 1  # the plan's one read gives the stack its kind: no re-read after the run
    stack, lora_name, lora_path, report = out["result"]
    lora = models / "loras" / "lora_foundry" / "age_slider.safetensors"
    assert lora_name == "lora_foundry/age_slider.safetensors" and lora_path == str(lora) and lora.is_file()
    with safe_open(str(lora), "np") as opened:
        assert opened.metadata()["ss_leco_prompts_file"] == "prompts.toml"
    assert stack == [(lora_name, 1.0, 0.0)] and stack[0].lora_type == "slider"
    assert report.startswith("success: 6/6 steps") and "train_leco.py --config_file" in report
    steps = [data["step"] for event, data in sent if event == "lora_foundry.loss" and data["node"] == "9"]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_prompts_file_is_read_from_the_input_folder_only(comfy, tmp_path):
    module, _, _, _ = comfy
    (tmp_path / "input" / "erase.toml").write_text(ERASE, encoding="utf-8")
    out = module.KohyaTrainLECO().train(**node_kwargs(prompts_toml="", prompts_file="erase.toml", dry_run=True))
    report = out["result"][3]
    assert report.startswith("dry run") and out["result"][1] == ""
    prompts = report.split("prompts: ")[1].splitlines()[0]
    assert open(prompts, encoding="utf-8").read() == ERASE
    (tmp_path / "outside.toml").write_text(ERASE, encoding="utf-8")
    for outside in ("../outside.toml", str(tmp_path / "outside.toml")):
        with pytest.raises(ValueError, match="would leave"):  # paths.UnsafeNameError, as the pack imports it
            module.KohyaTrainLECO().train(**node_kwargs(prompts_toml="", prompts_file=outside))


def test_sd_scripts_without_train_leco_gets_the_clear_message(comfy):
    module, install, models, _ = comfy
    (install.sd_scripts_dir / "train_leco.py").unlink()
    with pytest.raises(ValueError, match=r"has no train_leco\.py.*checkout 063ef100") as refused:
        module.KohyaTrainLECO().train(**node_kwargs())
    assert type(refused.value).__name__ == "LecoUnsupported"
    assert not (models / "loras" / "lora_foundry" / "age_slider.safetensors").exists()


def test_cancel_stops_the_trainer_and_keeps_its_checkpoints(comfy, monkeypatch):
    module, _, models, sent = comfy
    monkeypatch.setenv("FAKE_STEP_S", "0.15")

    def interrupted() -> bool:
        if any(data.get("step", 0) >= 3 for event, data in sent if event == "lora_foundry.loss"):
            raise Stop("interrupted")
        return False

    monkeypatch.setattr(module, "interrupted", interrupted)
    with pytest.raises(Stop):
        module.KohyaTrainLECO().train(**node_kwargs(steps=30, save_every=1))
    text = next(data["text"] for event, data in sent if event == "lora_foundry.train_report")
    assert text.startswith("cancelled: ") and "/30 steps" in text and "kept checkpoints (" in text
    assert not (models / "loras" / "lora_foundry" / "age_slider.safetensors").exists()


@pytest.fixture()
def operator(tmp_path, monkeypatch):
    tokenizers = ("openai_clip-vit-large-patch14", "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k")  # SDXL reads both
    install = add_leco_scripts(make_fake_install(tmp_path / "kohya", tokenizers=tokenizers))
    monkeypatch.setenv("KOHYA_SD_SCRIPTS", str(install.sd_scripts_dir))
    monkeypatch.setenv("KOHYA_PYTHON", sys.executable)
    monkeypatch.setenv("KOHYA_TOKENIZER_CACHE", str(install.tokenizer_cache_dir))
    monkeypatch.delenv("FAKE_MODE", raising=False)
    prompts = tmp_path / "slider.toml"
    prompts.write_text(SLIDER, encoding="utf-8")
    return install, ["train-leco", "--prompts", str(prompts), "--base-model",
                     str(make_base_model(tmp_path / "models")), "--steps", "5", "--out", str(tmp_path / "out")]


def test_cli_dry_run_prints_the_command_and_launches_nothing(operator, tmp_path, capsys):
    install, args = operator
    assert cli.main([*args, "--architecture", "sdxl", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    command = printed.split("command: ")[1].splitlines()[0].split()
    assert command[0] == sys.executable and command[1] == str(install.sd_scripts_dir / "sdxl_train_leco.py")
    run_toml = tmp_path / "out" / "lora_foundry" / "leco_training" / "slider" / "run.toml"
    assert command[2:] == ["--config_file", str(run_toml), "--prompts_file", str(run_toml.parent / "prompts.toml")]
    assert tomllib.loads(run_toml.read_text())["training"]["max_train_steps"] == 5
    assert not (tmp_path / "out" / "loras").exists()


def test_cli_prints_a_loss_line_per_step_and_publishes(operator, tmp_path, capsys):
    _, args = operator
    assert cli.main([*args, "--name", "age"]) == 0
    printed = capsys.readouterr().out
    assert [line.split()[1] for line in printed.splitlines() if line.startswith("step ")] == [
        f"{n}/5" for n in range(1, 6)]
    assert (tmp_path / "out" / "loras" / "age.safetensors").is_file() and "success: 5/5 steps" in printed


def test_cli_names_the_missing_leco_script(operator, capsys):
    install, args = operator
    (install.sd_scripts_dir / "train_leco.py").unlink()
    assert cli.main(args) == 1
    assert "has no train_leco.py" in capsys.readouterr().err


def test_cli_ctrl_c_cancels_and_keeps_the_checkpoints(operator, tmp_path):
    _, args = operator
    args = [a if a != "5" else "40" for a in args]
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_STEP_S": "0.2"}
    proc = subprocess.Popen([sys.executable, "-m", "lora_foundry.cli", *args, "--save-every", "1"], cwd=tmp_path,
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = ctrl_c_at(proc, "step 2/40")
    assert proc.returncode == 130, output
    kept = output.split("kept checkpoints (")[1].split(": ", 1)[1].splitlines()[0].split(", ")
    assert kept and all(Path(p).is_file() for p in kept)
    assert not (tmp_path / "out" / "loras" / "slider.safetensors").exists()
