"""The loss curve tells the truth to the step: sd-scripts redraws its bar at ``update(1)`` with the
previous step's ``avr_loss`` and only then with the new one, so each step's loss is the LAST value
printed for it; the chart gets exactly one point per step; checkpoints are reported as they are."""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest
from fixtures_fake_trainer import training_setup

from lora_foundry.kohya import log_parse, train_config
from lora_foundry.kohya.launcher import LaunchSpec, run_training
from lora_foundry.kohya.presets import get_preset
from lora_foundry.kohya.training import describe, train_lora

EXCERPT = Path(__file__).parent / "data" / "sd_scripts_tqdm_excerpt.log"

# Replays bytes like a trainer writes them, then writes a (not checked here) output file.
REPLAY = """
import sys
sys.stdout.buffer.write(open(sys.argv[1], "rb").read())
sys.stdout.flush()
open(sys.argv[2], "wb").write(b"")
"""


def replay(tmp_path: Path, raw: bytes) -> tuple[list[tuple[int, float]], list[object], Path]:
    """Run a child that prints ``raw`` through the launcher; (loss curve, events, loss csv)."""
    source = tmp_path / "printed.log"
    source.write_bytes(raw)
    out = tmp_path / "out.safetensors"
    spec = LaunchSpec(argv=(sys.executable, "-c", REPLAY, str(source), str(out)), cwd=tmp_path, env={},
                      output_file=out, log_path=tmp_path / "run.log", loss_path=tmp_path / "run.loss")
    events: list[object] = []
    try:
        result = run_training(spec, on_event=events.append)
        curve = result.loss_curve
    except Exception:  # noqa: BLE001 - the empty output file is refused after the curve is written
        curve = [(int(r[0]), float(r[1])) for r in list(csv.reader(open(f"{spec.loss_path}.csv")))[1:]]
    return curve, events, Path(f"{spec.loss_path}.csv")


def points(events: list[object]) -> list[tuple[int, float]]:
    return [(e.step, e.loss) for e in events if isinstance(e, log_parse.LossPoint)]


def test_the_issue_example_keeps_the_last_value_of_each_step(tmp_path):
    raw = ("steps:  25%|██▌       | 1/4 [00:01<00:03,  1.00s/it]\r"
           "steps:  25%|██▌       | 1/4 [00:01<00:03,  1.00s/it, avr_loss=1.09]\r"
           "steps:  50%|█████     | 2/4 [00:02<00:02,  1.00s/it, avr_loss=1.09]\r"
           "steps:  50%|█████     | 2/4 [00:02<00:02,  1.00s/it, avr_loss=1.08]\n").encode()
    curve, events, _ = replay(tmp_path, raw)
    assert curve == [(1, 1.09), (2, 1.08)]
    assert points(events) == [(1, 1.09), (2, 1.08)]


def test_loss_csv_of_an_sd_scripts_log_equals_the_last_avr_loss_printed_per_step(tmp_path):
    """tests/data/sd_scripts_tqdm_excerpt.log is written to sd-scripts 48d368f's layout (tqdm bar
    on stderr redrawn with \\r, update(1) before set_postfix, accelerator.print for checkpoints);
    it is not a capture of a real run (no sd-scripts venv on the machine that wrote it)."""
    curve, events, csv_path = replay(tmp_path, EXCERPT.read_bytes())
    expected = [(1, 0.146), (2, 0.112), (3, 0.0923), (4, 0.107)]
    assert curve == expected
    rows = list(csv.reader(open(csv_path)))
    assert rows[0] == ["step", "avr_loss"] and [(int(s), float(v)) for s, v in rows[1:]] == expected
    assert points(events) == expected  # one chart point per step, never the stale first redraw


@pytest.fixture()
def setup(tmp_path, output_root, monkeypatch):
    monkeypatch.delenv("FAKE_MODE", raising=False)
    return training_setup(tmp_path, output_root)


def request_for(dataset: Path, base: Path, steps: int, **kwargs) -> train_config.TrainRequest:
    preset = get_preset("sd15", "character").with_overrides(max_train_steps=steps, resolution=64)
    return train_config.TrainRequest(architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
                                     base_model=base, output_name="hero", preset=preset, **kwargs)


def test_fake_trainer_prints_like_sd_scripts_and_the_curve_is_not_a_step_late(setup):
    """The stand-in redraws each step first with the previous loss (1/(n-1)), then with 1/n."""
    install, dataset, base, run_root, loras = setup
    events: list[object] = []
    outcome = train_lora(request_for(dataset, base, 5, save_every_n_steps=2), install, run_root, loras,
                         on_event=events.append)
    expected = [(n, float(f"{1 / n:.3g}")) for n in range(1, 6)]
    assert outcome.result.loss_curve == expected
    assert points(events) == expected
    log = outcome.result.log_path.read_text()
    assert "2/5 [" in log and "avr_loss=1]" in log.split("2/5 [", 1)[1].split("\n")[0]  # the stale redraw is there
    result = outcome.result
    assert result.last_checkpoint is not None and result.last_checkpoint.name == "hero-step00000004.safetensors"
    assert [p.name for p in result.checkpoints] == ["hero-step00000002.safetensors", "hero-step00000004.safetensors"]
    assert "last checkpoint: " + str(result.last_checkpoint) in describe(outcome)


def test_a_run_without_intermediate_saves_reports_no_checkpoint_not_the_final_lora(setup):
    install, dataset, base, run_root, loras = setup
    outcome = train_lora(request_for(dataset, base, 3), install, run_root, loras)
    assert outcome.result.status == "success" and outcome.result.last_checkpoint is None
    assert "last checkpoint" not in describe(outcome)


REAL_LOGS = sorted((Path(__file__).parent / "data").glob("sd_scripts_real_*.log"))


@pytest.mark.parametrize("log", REAL_LOGS, ids=[p.stem for p in REAL_LOGS])
def test_loss_csv_of_a_captured_real_run_equals_the_last_printed_values(tmp_path, log):
    """Console logs captured from real sd-scripts runs (tests/test_kohya_real_lycoris.py with
    LF_KEEP_REAL_LOG): replayed through the launcher, the curve is each step's last printed value."""
    from test_kohya_real_lycoris import last_printed_losses

    raw = log.read_bytes()
    expected = last_printed_losses(raw.decode("utf-8"))
    curve, events, csv_path = replay(tmp_path, raw.split(b"\n", 1)[1])  # drop the launcher's "$ command" line
    assert expected and curve == expected and points(events) == expected
    total = int(re.search(rb"(?:^|[\r\n])steps: +\d+%\|[^|\r\n]*\| \d+/(\d+) \[", raw)[1])
    assert [step for step, _ in curve] == list(range(1, total + 1))
    printed: dict[int, set[str]] = {}
    for step, _, loss in re.findall(r"(\d+)/(\d+) \[[^\]]*?(?:avr_)?loss=([0-9.e+-]+)\]", raw.decode("utf-8")):
        printed.setdefault(int(step), set()).add(loss)
    assert any(len(values) > 1 for values in printed.values())  # the log shows stale first redraws


def test_a_cancel_between_a_steps_two_redraws_records_no_stale_loss(tmp_path):
    """Stopped after step 2's first redraw (which still shows step 1's loss): step 2 has no loss yet."""
    printer = ("import sys, time\nsys.stderr.write('steps:  25%|##  | 1/4 [00:01<00:03,  1.00s/it]\\r"
               "steps:  25%|##  | 1/4 [00:01<00:03,  1.00s/it, avr_loss=1.09]\\r"
               "steps:  50%|#####  | 2/4 [00:02<00:02,  1.00s/it, avr_loss=1.09]\\r')\nsys.stderr.flush()\n"
               "time.sleep(60)\n")
    out = tmp_path / "out.safetensors"
    spec = LaunchSpec(argv=(sys.executable, "-c", printer), cwd=tmp_path, env={}, output_file=out,
                      log_path=tmp_path / "run.log", loss_path=tmp_path / "run.loss")
    events: list[object] = []
    result = run_training(spec, on_event=events.append, grace_s=1.0, should_stop=lambda: any(
        isinstance(e, log_parse.StepEvent) and e.done == 2 for e in events))
    assert result.status == "cancelled" and result.steps_done == 2
    assert result.loss_curve == [(1, 1.09)] and points(events) == [(1, 1.09)]
