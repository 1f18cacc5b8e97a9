"""report.txt on every exit path of a kohya run (success, cancel, a second Ctrl-C, a failure, a dry
run) and report lines that say what happened: checkpoints found on disk, advice only when it
applies, sample images listed."""

from __future__ import annotations

import dataclasses

import pytest
from fixtures_fake_trainer import make_base_model, make_dataset, make_fake_install
from test_kohya_launcher import request_for

from lora_foundry.kohya.launcher import TrainingFailed, _group_alive
from lora_foundry.kohya.log_parse import LossPoint
from lora_foundry.kohya.training import describe, train_lora


@pytest.fixture()
def setup(tmp_path, output_root, monkeypatch):
    monkeypatch.delenv("FAKE_MODE", raising=False)
    install = make_fake_install(tmp_path / "kohya")
    return install, make_dataset(tmp_path / "dataset"), make_base_model(tmp_path / "models" / "checkpoints"), \
        output_root / "training", output_root / "loras"


def _report(run_root, name="hero"):
    return (run_root / name / "report.txt").read_text("utf-8")


def test_a_second_ctrl_c_still_stops_the_trainer_and_writes_the_report(setup, monkeypatch):
    install, dataset, base, run_root, loras = setup
    monkeypatch.setenv("FAKE_MODE", "slow")
    finals: list[int] = []

    def second_ctrl_c() -> bool:
        if finals and finals[-1] >= 1:
            raise KeyboardInterrupt  # what the CLI's handler raises on the second Ctrl-C
        return False

    outcome = train_lora(request_for(dataset, base, steps=8, save_every_n_steps=1), install, run_root, loras,
                         on_event=lambda e: finals.append(e.step) if isinstance(e, LossPoint) else None,
                         should_stop=second_ctrl_c)
    result = outcome.result
    assert result.status == "cancelled" and isinstance(result.cancel_cause, KeyboardInterrupt)
    pid = int((run_root / "hero" / "trainer.pid").read_text())
    assert not _group_alive(pid)
    report = _report(run_root)
    assert report.startswith("cancelled:") and "hero-step00000001.safetensors" in report
    assert "set save_every" not in report


def test_a_failed_run_writes_its_reason(setup, monkeypatch):
    install, dataset, base, run_root, loras = setup
    monkeypatch.setenv("FAKE_MODE", "crash")
    with pytest.raises(TrainingFailed):
        train_lora(request_for(dataset, base), install, run_root, loras)
    report = _report(run_root)
    assert report.startswith("failed: sd-scripts exited with code 1") and "hero.log" in report


def test_a_dry_run_writes_its_report(setup):
    install, dataset, base, run_root, loras = setup
    train_lora(request_for(dataset, base), install, run_root, loras, dry_run=True)
    assert _report(run_root).startswith("dry run: nothing was launched")


def test_no_checkpoint_yet_says_when_it_was_due_not_to_set_it(setup, monkeypatch):
    install, dataset, base, run_root, loras = setup
    monkeypatch.setenv("FAKE_MODE", "slow")
    seen: list[int] = []
    outcome = train_lora(request_for(dataset, base, steps=8, save_every_n_steps=5), install, run_root, loras,
                         on_event=lambda e: seen.append(e.step) if isinstance(e, LossPoint) else None,
                         should_stop=lambda: bool(seen))
    assert outcome.result.status == "cancelled" and not outcome.result.checkpoints
    report = _report(run_root)
    assert "the first was due at step 5" in report and "set save_every" not in report


def test_sample_images_are_listed(setup, tmp_path):
    install, dataset, base, run_root, loras = setup
    outcome = train_lora(request_for(dataset, base), install, run_root, loras)
    samples = [tmp_path / "s1.png", tmp_path / "s2.png"]
    text = describe(dataclasses.replace(outcome, result=dataclasses.replace(outcome.result, samples=samples)))
    assert f"sample images (2): {samples[0]}, {samples[1]}" in text
