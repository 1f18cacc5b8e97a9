"""LF Tune Training's engine: an Optuna study stored in SQLite survives kill -9, the median pruner
stops the trial whose intermediate evaluation is worst, and a study over the real launcher (with
the fake trainer) trains, evaluates, prunes and publishes the best LoRA with its settings."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")

from evaluate_standins import StandInClip, StandInRenderer, training_frames, write_training_set  # noqa: E402
from fixtures_fake_trainer import make_base_model, make_dataset, make_fake_install  # noqa: E402

from lora_foundry.evaluate import evaluation, matrix, tune, tune_report  # noqa: E402
from lora_foundry.evaluate.tune_launcher import TrainingSetup, launcher_trial  # noqa: E402
from lora_foundry.kohya.launcher import read_lora_metadata  # noqa: E402
from lora_foundry.kohya.presets import get_preset  # noqa: E402
from lora_foundry.kohya.train_config import PreflightError, TrainRequest  # noqa: E402
from lora_foundry.media.images import load_image, save_image  # noqa: E402
from lora_foundry.workspace import Workspace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
STATES = optuna.trial.TrialState

STUDY_SCRIPT = r'''
import json, math, sys, time
from pathlib import Path
from lora_foundry.evaluate import tune
study_dir, markers = Path(sys.argv[1]), Path(sys.argv[2])
study = tune.open_study(study_dir, "kill_test", seed=3)
def trial_fn(params, reporter):
    (markers / f"started-{reporter.number}").write_text(json.dumps(params))
    if reporter.number == 2:
        time.sleep(600)  # killed here
    return tune.TrialOutcome(-abs(math.log(params["learning_rate"] / 1e-4)))
tune.run_study(study, tune.search_space("character"), trial_fn, 4)
'''


def score(params):
    return -abs(math.log(params["learning_rate"] / 1e-4))


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, "the study process ended early"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_study_killed_with_sigkill_resumes_at_trial_three(tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    process = subprocess.Popen([sys.executable, "-c", STUDY_SCRIPT, str(tmp_path / "study"), str(markers)], env=env)
    try:
        wait_for(markers / "started-2", process)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    storage = f"sqlite:///{tmp_path / 'study' / tune.STORAGE_NAME}"
    before = optuna.load_study(study_name="kill_test", storage=storage).get_trials()
    assert [t.state for t in before] == [STATES.COMPLETE, STATES.COMPLETE, STATES.RUNNING]
    killed_params = json.loads((markers / "started-2").read_text())

    study = tune.open_study(tmp_path / "study", "kill_test", seed=3)
    ran = []

    def trial_fn(params, reporter):
        ran.append((reporter.number, params))
        return tune.TrialOutcome(score(params))

    tune.run_study(study, tune.search_space("character"), trial_fn, 4)
    after = study.get_trials()
    for old, new in zip(before[:2], after[:2], strict=True):  # trials 1-2 intact
        assert (new.state, new.params, new.value) == (STATES.COMPLETE, old.params, old.value)
    assert after[2].state == STATES.FAIL
    assert ran[0] == (3, killed_params)  # the killed trial's settings run again, as trial 3
    assert after[3].user_attrs["retry_of"] == 2
    assert len(ran) == 2 and sum(t.state == STATES.COMPLETE for t in after) == 4


def test_median_pruner_prunes_the_trial_whose_intermediate_evaluation_is_worst(tmp_path):
    scripted = {0: [0.5, 0.6, 0.7], 1: [0.4, 0.5, 0.6], 2: [0.1, 0.2, 0.3], 3: [0.9, 0.9, 0.95]}
    steps_run = {}

    def trial_fn(params, reporter):
        for step, value in enumerate(scripted[reporter.number], start=1):
            steps_run[reporter.number] = step
            reporter.report(step * 100, value)
        return tune.TrialOutcome(scripted[reporter.number][-1])

    study = tune.open_study(tmp_path / "study", "pruning", seed=1)
    tune.run_study(study, tune.search_space("character"), trial_fn, 4)
    states = [t.state for t in study.get_trials()]
    assert states == [STATES.COMPLETE, STATES.COMPLETE, STATES.PRUNED, STATES.COMPLETE]
    assert steps_run[2] == 1 and steps_run[3] == 3  # pruned at its first report; the good one ran on


def alive(pid: int, marker: str = "--config_file") -> bool:
    """True while ``pid`` runs (a zombie or a pid taken by an unrelated process counts as gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return fields[0] != "Z" and marker.encode() in cmdline


def test_missing_optuna_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(RuntimeError, match=r"lora-foundry\[tune\]"):
        tune.require_optuna()


def test_search_space_json_bounds_and_fixes_settings():
    space = tune.search_space("character", '{"steps": [20, 40], "network_variant": "lora", "repeats": 5}')
    assert space["steps"][1:3] == (20, 40) and space["network_variant"] == ("choice", ("lora",))
    assert space["repeats"][1:3] == (5, 5)
    with pytest.raises(ValueError, match="^search_space_json setting 'optimizer' is not one of alpha_ratio, "
                                         "caption_dropout, learning_rate, network_variant, rank, repeats, steps$"):
        tune.search_space("character", '{"optimizer": "Lion"}')


def test_study_over_the_launcher_trains_evaluates_prunes_and_publishes_the_best(tmp_path, media_dir, keep_for_review):
    frames = training_frames(media_dir)
    ws = Workspace.open(tmp_path / "ws")
    clip = StandInClip()
    train = evaluation.embed_training_set(clip, write_training_set(tmp_path / "train", frames))
    preset = matrix.load_preset("character", {"strengths": [0, 0.5, 1], "seeds": [1], "held_out": [
        "wearing a red raincoat", "in a snowy forest", "on the moon"]})
    evaluated = []

    def evaluate_lora(path: Path, label: str) -> dict:
        meta = read_lora_metadata(path)  # what the (fake) trainer was asked for decides the effect
        gain = float(meta["ss_learning_rate"]) / 1e-4 * int(meta["ss_network_dim"]) / 16
        renderer = StandInRenderer(frames, "subject", name=f"{path.name}-{path.stat().st_mtime_ns}", gain=gain)
        evaluated.append(label)
        return evaluation.evaluate(ws, renderer, clip, train, "ohwx", preset).report

    dataset = make_dataset(tmp_path / "ds")
    request = TrainRequest(architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
                           base_model=make_base_model(tmp_path / "models"), output_name="hero",
                           preset=get_preset("sd15", "character"))
    setup = TrainingSetup(request, make_fake_install(tmp_path / "kohya"), ws.root / "tuning" / "hero", checkpoints=1)
    space = tune.search_space("character", {"steps": [20, 40], "network_variant": "lora"})
    study = tune.open_study(setup.study_dir, "hero", seed=0)
    weights = preset.weights
    tune.run_study(study, space, launcher_trial(setup, evaluate_lora, weights), 4)
    trials = study.get_trials()
    assert len([t for t in trials if t.state in (STATES.COMPLETE, STATES.PRUNED)]) == 4
    assert any("-step" in label for label in evaluated), "intermediate checkpoints were evaluated"
    assert all(t.intermediate_values for t in trials)
    toml = (setup.study_dir / "datasets" / "hero_t000.toml").read_text()
    assert f"num_repeats = {trials[0].params['repeats']}" in toml and "caption_dropout_rate" in toml
    published, best = tune_report.publish_best(study, tmp_path / "loras" / "hero_best.safetensors")
    with pytest.raises(PreflightError, match="a LoRA named hero_best.safetensors already exists in"):
        tune_report.publish_best(study, published)  # the same refusal as every trainer's
    meta = read_lora_metadata(published)
    tuned = json.loads(meta[tune_report.TUNE_METADATA_KEY])
    assert tuned["params"] == best.params and tuned["trial"] == best.number
    assert meta["ss_network_dim"] == str(best.params["rank"])  # the trainer's own metadata is kept
    assert best.value == max(t.value for t in trials if t.state == STATES.COMPLETE)
    for name, image in (("tune_history", tune_report.history_plot(study)),
                        ("tune_importances", tune_report.importance_plot(study))):
        path = save_image(image, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and load_image(path).std() > 5
        keep_for_review(path, f"{name}.png")
    ws.close()


def test_a_name_published_while_a_trial_trains_fails_that_trial_not_the_study(tmp_path):
    """Another run publishes the trial's LoRA name while it trains: the publish step refuses it
    (the published file is kept) and the study goes on with the next trial. That refusal was a
    FileExistsError the tuner did not catch, so it stopped the whole study."""
    dataset = make_dataset(tmp_path / "ds")
    request = TrainRequest(architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
                           base_model=make_base_model(tmp_path / "models"), output_name="hero",
                           preset=get_preset("sd15", "character"))
    setup = TrainingSetup(request, make_fake_install(tmp_path / "kohya"), tmp_path / "study", checkpoints=1)
    clash = setup.study_dir / "loras" / "hero_t000.safetensors"

    def publish_meanwhile(path: Path, label: str) -> dict:
        if label.startswith("hero_t000-") and not clash.exists():
            clash.parent.mkdir(parents=True, exist_ok=True)
            clash.write_bytes(b"published by another run")
        return {"fidelity": {"verdict": "balanced", "score": 0.5}}

    study = tune.open_study(setup.study_dir, "hero", seed=0)
    space = tune.search_space("character", {"steps": 20, "network_variant": "lora"})
    tune.run_study(study, space, launcher_trial(setup, publish_meanwhile, {"fidelity": 1.0}), 1)
    first, second = study.get_trials()
    assert first.state.name == "FAIL" and second.state.name == "COMPLETE"
    assert "a LoRA named hero_t000.safetensors already exists in" in first.user_attrs["error"]
    assert clash.read_bytes() == b"published by another run"
    # the trained LoRA is not lost: the refusal says where it is (it said to choose another name, as
    # if nothing had been trained)
    trained = setup.study_dir / "runs" / "hero_t000" / "hero_t000.safetensors"
    assert f"this run's LoRA is kept at {trained}" in first.user_attrs["error"] and trained.is_file()


LAUNCHER_STUDY_SCRIPT = r'''
import os, sys
from pathlib import Path
from evaluate_standins import StandInClip, StandInRenderer, training_frames
from fixtures_fake_trainer import make_base_model, make_dataset, make_fake_install
from lora_foundry.evaluate import evaluation, matrix, tune
from lora_foundry.evaluate.tune_launcher import TrainingSetup, launcher_trial
from lora_foundry.kohya.launcher import read_lora_metadata
from lora_foundry.kohya.presets import get_preset
from lora_foundry.kohya.train_config import TrainRequest
from lora_foundry.workspace import Workspace
root, media = Path(sys.argv[1]), Path(sys.argv[2])
frames = training_frames(media)
ws = Workspace.open(root / "ws")
clip = StandInClip()
train = clip.images(frames)
preset = matrix.load_preset("character", {"strengths": [0, 1], "seeds": [1], "held_out": ["on the moon", "at sea"]})
def evaluate_lora(path, label):
    meta = read_lora_metadata(path)
    gain = float(meta["ss_learning_rate"]) / 1e-4 * int(meta["ss_network_dim"]) / 16
    renderer = StandInRenderer(frames, "subject", name=f"{path.name}-{path.stat().st_mtime_ns}", gain=gain)
    return evaluation.evaluate(ws, renderer, clip, train, "ohwx", preset).report
dataset = make_dataset(root / "ds")
request = TrainRequest(architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
                       base_model=make_base_model(root / "models"), output_name="hero",
                       preset=get_preset("sd15", "character"))
setup = TrainingSetup(request, make_fake_install(root / "kohya"), root / "study", checkpoints=0)
study = tune.open_study(setup.study_dir, "hero", seed=0)
trial = launcher_trial(setup, evaluate_lora, preset.weights)
def stuck_third(params, reporter):  # a trainer that prints nothing more and ignores SIGINT/SIGTERM
    os.environ["FAKE_MODE"] = "hang" if reporter.number == 2 and len(sys.argv) > 3 else "ok"
    return trial(params, reporter)
tune.run_study(study, tune.search_space("character", {"steps": [20, 40], "network_variant": "lora"}), stuck_third, 4)
ws.close()
'''


def test_launcher_study_killed_with_sigkill_during_trial_three_resumes(tmp_path, media_dir):
    """The same kill -9, with every trial a real launcher run of the fake trainer."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"),
                                                        os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", LAUNCHER_STUDY_SCRIPT, str(tmp_path), str(media_dir)]
    process = subprocess.Popen([*command, "kill-me"], env=env)
    trainer_pid = tmp_path / "study" / "runs" / "hero_t002" / "trainer.pid"
    child_pid = trainer_pid.with_name("child.pid")
    try:
        wait_for(child_pid, process, timeout=300)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        orphan = int(trainer_pid.read_text())
        assert alive(orphan), "the trainer has its own session: a kill -9 of the study leaves it running"
        storage = f"sqlite:///{tmp_path / 'study' / tune.STORAGE_NAME}"
        before = optuna.load_study(study_name="hero", storage=storage).get_trials()
        assert [t.state for t in before] == [STATES.COMPLETE, STATES.COMPLETE, STATES.RUNNING]
        subprocess.run(command, env=env, check=True, timeout=600)
        assert not alive(orphan) and not alive(int(child_pid.read_text()), "")
    finally:
        with contextlib.suppress(ProcessLookupError, OSError, ValueError):
            process.kill()
            os.killpg(int(trainer_pid.read_text()), signal.SIGKILL)
    after = optuna.load_study(study_name="hero", storage=storage).get_trials()
    # Stopped before the first trial of the resumed run trained: never two trainers at once.
    assert after[3].user_attrs["stopped_leftover_trainers"] == [orphan]
    for old, new in zip(before[:2], after[:2], strict=True):
        assert (new.state, new.params, new.value, new.user_attrs) == (STATES.COMPLETE, old.params, old.value,
                                                                    old.user_attrs)
        assert Path(new.user_attrs["lora_path"]).is_file()
    assert after[2].state == STATES.FAIL and after[3].params == before[2].params
    assert [t.state for t in after[3:]] == [STATES.COMPLETE, STATES.COMPLETE]
    assert Path(after[3].user_attrs["lora_path"]).name == "hero_t003.safetensors"


def test_hopeless_trials_are_pruned_under_the_default_search_space(tmp_path, monkeypatch):
    """Steps differ between trials (the default space draws 500..4000), so scores must meet at the
    same progress points for the median pruner to compare them. The LoRAs' quality is planted:
    trials 2-4 make the ladder's do-nothing LoRA, the others its balanced one."""
    from judge_ladder import ladder_preset, run_ladder

    from lora_foundry.evaluate import metrics

    ladder = run_ladder(matrix, metrics.judge, metrics.objective, ladder_preset(matrix))
    hopeless = {2, 3, 4}
    monkeypatch.setenv("FAKE_STEP_S", "0")

    def evaluate_lora(path: Path, label: str) -> dict:
        number = int(path.stem.split("_t")[1][:3])
        return ladder["do_nothing" if number in hopeless else "balanced"]["report"]

    dataset = make_dataset(tmp_path / "ds")
    request = TrainRequest(architecture="sd15", dataset_dir=dataset, dataset_toml=dataset / "dataset.toml",
                           base_model=make_base_model(tmp_path / "models"), output_name="hero",
                           preset=get_preset("sd15", "character"))
    setup = TrainingSetup(request, make_fake_install(tmp_path / "kohya"), tmp_path / "study", checkpoints=2)
    space = tune.search_space("character", {"network_variant": "lora"})  # LyCORIS is not installed here
    assert space["steps"] == tune.SEARCH_SPACES["character"]["steps"]
    study = tune.open_study(setup.study_dir, "hero", seed=0)
    tune.run_study(study, space, launcher_trial(setup, evaluate_lora, matrix.load_preset("character").weights), 6)
    trials = study.get_trials()
    assert len({t.params["steps"] for t in trials}) == len(trials)  # every trial trains for its own steps
    states = {t.number: t.state for t in trials}
    assert {n for n, s in states.items() if s == STATES.PRUNED} == hopeless, [(t.number, t.state, t.intermediate_values, t.user_attrs) for t in trials]
    for number in hopeless:
        trial = trials[number]
        judged = trial.user_attrs["judged"]
        assert [row["progress"] for row in judged] == [33] and trial.user_attrs["pruned_at"][0] == 33
        assert judged[0]["step"] == trial.params["steps"] // 3  # the training step it was judged (and stopped) at
        assert judged[0]["criteria"]["fidelity"][0] == "under-fit"
        assert list(trial.intermediate_values) == [33]
    for trial in (t for t in trials if t.number not in hopeless):
        assert [row["progress"] for row in trial.user_attrs["judged"]] == [33, 67, 100]
        assert trial.user_attrs["verdicts"] == {"fidelity": "balanced", "ease": "balanced",
                                                "generalisation": "balanced"}


def test_same_study_name_with_other_settings_is_refused_by_name(tmp_path):
    """Re-running a name with another dataset or search space would mix incomparable scores."""
    from lora_foundry.evaluate.tune_launcher import dataset_identity

    dataset = make_dataset(tmp_path / "ds")
    space = tune.search_space("character")

    def identity(**changes):
        parts = {"dataset": dataset_identity(dataset / "dataset.toml"), "base_model": "sd15-a",
                 "search_space": space, "weights": {"fidelity": 0.4}, **changes}
        return tune.study_identity(**parts)

    study = tune.open_study(tmp_path / "study", "hero", identity=identity())
    study.enqueue_trial({"rank": 8})
    assert tune.open_study(tmp_path / "study", "hero", identity=identity()).user_attrs["identity"] == identity()
    with pytest.raises(ValueError, match=r"search_space differ"):
        tune.open_study(tmp_path / "study", "hero", identity=identity(search_space=tune.search_space(
            "character", {"steps": [100, 200]})))
    with pytest.raises(ValueError, match=r"base_model differ"):
        tune.open_study(tmp_path / "study", "hero", identity=identity(base_model="sd15-b"))
    caption = next((dataset).rglob("*.txt"))
    caption.write_text("ohwx, person, red scarf\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"\(dataset differ"):
        tune.open_study(tmp_path / "study", "hero", identity=identity())


def test_a_study_an_earlier_version_started_says_once_why_its_lora_cells_are_not_reused(tmp_path, caplog):
    """Cells now name a LoRA as LF Evaluate LoRA does; a study begun before that (trials, no record of
    its cell keys) says so in the log and the node's report, once; a new study records it silently."""
    fresh = tune.open_study(tmp_path / "new", "fresh")
    assert tune.note_cell_keys(fresh) is None
    assert tune.open_study(tmp_path / "new", "fresh").user_attrs["cell_keys"] == tune.CELL_KEYS
    earlier = tune.open_study(tmp_path / "old", "hero")
    earlier.enqueue_trial({"rank": 8})  # as an earlier version left it: trials, no cell_keys
    with caplog.at_level("WARNING"):
        note = tune.note_cell_keys(earlier)
    assert note and "started by an earlier LoRA Foundry" in note and "not reused" in note and note in caplog.text
    assert tune.note_cell_keys(tune.open_study(tmp_path / "old", "hero")) is None
