"""The launcher tells the truth: progress from sd-scripts' output, success only with a real LoRA,
failures carry the log, cancel ends the whole process group and keeps checkpoints."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest
from fixtures_fake_trainer import make_dataset, training_setup

from lora_foundry.kohya import launcher, log_parse, train_config
from lora_foundry.kohya.launcher import TrainingFailed, _group_alive
from lora_foundry.kohya.presets import get_preset
from lora_foundry.kohya.training import train_lora
from lora_foundry.progress import CallbackProgress


@pytest.fixture()
def setup(tmp_path, output_root, monkeypatch):
    """A fake install, a 4-image dataset in the writer's layout, a base model, output folders."""
    monkeypatch.delenv("FAKE_MODE", raising=False)
    return training_setup(tmp_path, output_root)


def request_for(dataset: Path, base: Path, steps: int = 6, **kwargs) -> train_config.TrainRequest:
    preset = get_preset("sd15", "character").with_overrides(max_train_steps=steps, resolution=64)
    return train_config.TrainRequest(architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
                                     base_model=base, output_name=kwargs.pop("name", "hero"), preset=preset, **kwargs)


def test_success_publishes_a_lora_with_metadata_log_and_loss_curve(setup):
    install, dataset, base, run_root, loras = setup
    seen: list[tuple[int, int]] = []
    outcome = train_lora(request_for(dataset, base), install, run_root, loras,
                         progress=CallbackProgress(lambda d, t: seen.append((d, t))))
    result = outcome.result
    assert result.status == "success"
    assert result.lora_path == loras / "hero.safetensors" and result.lora_path.is_file()
    assert result.metadata["ss_network_module"] == "networks.lora"
    assert (6, 6) in seen and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert result.steps_done == 6 and result.total_steps == 6
    rows = list(csv.reader(open(f"{result.loss_path}.csv")))
    assert rows[0] == ["step", "avr_loss"] and len(rows) == 7 and float(rows[-1][1]) == pytest.approx(1 / 6, abs=1e-3)
    log = result.log_path.read_text()
    assert "model saved." in log and "--config_file" in log.splitlines()[0]


@pytest.mark.parametrize(("mode", "expected"), [
    ("nofile", "wrote no LoRA"),
    ("crash", "exited with code 1"),
    ("badmeta", "lacks the expected metadata"),
])
def test_failures_raise_with_the_log_tail_and_publish_nothing(setup, monkeypatch, mode, expected):
    install, dataset, base, run_root, loras = setup
    monkeypatch.setenv("FAKE_MODE", mode)
    with pytest.raises(TrainingFailed) as info:
        train_lora(request_for(dataset, base), install, run_root, loras)
    assert expected in str(info.value)
    assert "last lines of the training log" in str(info.value) and info.value.log_tail
    if mode == "crash":
        assert "CUDA out of memory (fake)" in str(info.value)
    assert not (loras / "hero.safetensors").exists()


def test_empty_dataset_is_an_error_before_launch(setup, tmp_path):
    install, _, base, run_root, loras = setup
    empty = make_dataset(tmp_path / "empty", images=0)
    with pytest.raises(train_config.PreflightError, match="no training images"):
        train_lora(request_for(empty, base), install, run_root, loras)
    assert not (run_root / "hero" / "hero.log").exists()  # nothing was launched


def test_cancel_ends_the_whole_group_and_keeps_the_last_checkpoint(setup, monkeypatch):
    """The stand-in ignores SIGINT/SIGTERM and has a child that does too: only killing the group works."""
    install, dataset, base, run_root, loras = setup
    monkeypatch.setenv("FAKE_MODE", "hang")
    events: list[object] = []
    steps = lambda: [e for e in events if isinstance(e, log_parse.StepEvent)]  # noqa: E731
    outcome = train_lora(request_for(dataset, base, steps=10, save_every_n_steps=1), install, run_root, loras,
                         on_event=events.append, should_stop=lambda: any(e.done >= 2 for e in steps()))
    result = outcome.result
    assert result.status == "cancelled"
    child_pid = int((run_root / "hero" / "child.pid").read_text())
    assert not _pid_alive(child_pid)
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    assert result.last_checkpoint.name.startswith("hero-step")
    assert result.lora_path is None and not (loras / "hero.safetensors").exists()


def test_a_second_ctrl_c_while_the_trainer_stops_still_ends_as_a_cancel_with_its_report(setup, monkeypatch):
    """The user's second Ctrl-C lands while the group is being stopped (here: the first wait of the
    stop, the stand-in ignoring SIGINT/SIGTERM): the group is killed at once and the run still ends
    as a cancel, report written, whichever moment the press lands (it escaped as an abort before)."""
    install, dataset, base, run_root, loras = setup
    monkeypatch.setenv("FAKE_MODE", "hang")
    presses, reap = [], launcher._reap

    def second_ctrl_c(proc, wait_s=0.0):
        if not presses:
            presses.append(proc)
            raise KeyboardInterrupt
        reap(proc, wait_s)

    monkeypatch.setattr(launcher, "_reap", second_ctrl_c)
    events: list[object] = []
    try:
        outcome = train_lora(request_for(dataset, base, steps=10, save_every_n_steps=1), install, run_root, loras,
                             on_event=events.append, should_stop=lambda: any(
                                 isinstance(e, log_parse.StepEvent) and e.done >= 2 for e in events))
    except KeyboardInterrupt:
        pytest.fail("the second Ctrl-C escaped the stop: the run ended as an abort")
    assert presses and outcome.result.status == "cancelled"
    assert not _pid_alive(int((run_root / "hero" / "child.pid").read_text()))
    assert (run_root / "hero" / "report.txt").read_text().startswith("cancelled")


def test_cancel_through_progress_stops_a_cooperative_run(setup, monkeypatch):
    """ComfyUI's way: the progress callback raises; SIGINT alone ends this well-behaved stand-in."""
    install, dataset, base, run_root, loras = setup
    monkeypatch.setenv("FAKE_MODE", "slow")
    seen: list[int] = []
    progress = CallbackProgress(lambda d, t: seen.append(d), should_stop=lambda: any(d >= 1 for d in seen))
    outcome = train_lora(request_for(dataset, base, steps=40), install, run_root, loras, progress=progress)
    assert outcome.result.status == "cancelled" and outcome.result.cancel_cause is not None
    assert 1 <= outcome.result.steps_done < 40
    trainer_pid = int((run_root / "hero" / "trainer.pid").read_text())
    assert not _group_alive(trainer_pid) and not _pid_alive(trainer_pid)


def test_dry_run_writes_tomls_and_command_but_runs_nothing(setup):
    install, dataset, base, run_root, loras = setup
    outcome = train_lora(request_for(dataset, base), install, run_root, loras, dry_run=True)
    plan = outcome.plan
    assert outcome.dry_run and plan.config_toml.is_file() and plan.dataset_toml.is_file()
    command = plan.command_txt.read_text()
    assert "train_network.py" in command and "--config_file" in command
    assert not plan.spec.log_path.exists() and not plan.spec.output_file.exists()


def test_tqdm_redraws_and_log_lines_become_events():
    line = "steps:  50%|█████     | 2/4 [00:30<00:30, 15.15s/it, avr_loss=1.12]"
    assert log_parse.parse_events(line) == [log_parse.StepEvent(2, 4, 30.0, 30.0, pytest.approx(1 / 15.15), 1.12)]
    [first_bar] = log_parse.parse_events("steps:   0%|          | 0/4 [00:00<?, ?it/s]")
    assert first_bar.remaining_s is None and first_bar.steps_per_s is None and first_bar.loss is None
    assert log_parse.parse_events("saving checkpoint: /x/a b.safetensors") == [log_parse.CheckpointEvent("/x/a b.safetensors")]
    assert log_parse.parse_events("INFO     model saved.   train_network.py:1729") == [log_parse.ModelSavedEvent()]
    assert log_parse.parse_events("INFO     prepare optimizer, data loader etc.   train_network.py:412") == []
    splitter = log_parse.LineSplitter()
    raw = "steps: 25%|█".encode() + b"| 1/4 [00:01<00:03, 1.00it/s]\rsteps: 50%|"
    first, rest = raw[:12], raw[12:]  # cut inside the UTF-8 block character
    assert splitter.feed(first) == [] and splitter.feed(rest) == ["steps: 25%|█| 1/4 [00:01<00:03, 1.00it/s]"]
    assert splitter.flush() == ["steps: 50%|"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


@pytest.mark.skipif(not os.environ.get("KOHYA_SD_SCRIPTS"), reason="real sd-scripts: set KOHYA_SD_SCRIPTS")
def test_real_sd_scripts_trains_a_lora_on_cpu(tmp_path, output_root):
    """A random SD1.5-family model trains a few steps with the real sd-scripts (see kohya_real_assets)."""
    from kohya_real_assets import build_real_assets

    from lora_foundry.kohya.operator_config import load_trainer_install

    install, base = build_real_assets(load_trainer_install(None), tmp_path / "assets")
    dataset = make_dataset(tmp_path / "dataset")
    preset = get_preset("sd15", "character").with_overrides(max_train_steps=4, resolution=64, network_dim=4)
    request = train_config.TrainRequest(
        architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml", base_model=base,
        output_name="real", preset=preset.with_overrides(mixed_precision="no"))
    outcome = train_lora(request, install, output_root / "training", output_root / "loras")
    assert outcome.result.status == "success", outcome.result
    assert outcome.result.metadata["ss_network_module"] == "networks.lora"
    assert int(outcome.result.metadata["ss_steps"]) == 4
    assert outcome.result.loss_curve and outcome.result.steps_done == 4  # parsed from real tqdm output
    assert (output_root / "loras" / "real.safetensors").is_file()
