"""Issue 24: LF Tune Training in a real ComfyUI, killed with ``kill -9`` mid-trial and resumed.

Skipped unless ``COMFYUI_DIR`` points at a ComfyUI checkout whose Python (``$COMFYUI_PYTHON``, else
``<checkout>/venv/bin/python``) has Optuna (the ``tune`` extra). The server gets its own
``--base-directory`` linking this checkout, the random-weight stand-ins of ``standins.py`` (built
into pytest's tmp dir, or ``$LF_STANDINS_DIR``) and the fake sd-scripts in its user folder, and runs
``example_workflows/tune_character_lora.json`` shrunk to two short trials.

No timing decides anything: the fake trainer of the second trial holds, silent, half-way
(``FAKE_HOLD``, the way sd-scripts is silent while it loads models or caches latents, so it
outlives its parent); the test waits for that and for the trial's mid-run score in the study before
it kills the server. The study's own records (Optuna's SQLite tables, read with sqlite3) are taken
before the kill and after the resumed run; trainers are found the way the engine marks them (their
environment names a run folder of the study).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from comfy_api import ComfyServer, comfy_python, pack_base, status_messages  # noqa: E402
from standins import extra_model_paths_yaml, install_standins, shrink_for_standins, trainer_standin  # noqa: E402
from ui_to_api import ui_to_api  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
WORKFLOW = REPO / "example_workflows" / "tune_character_lora.json"
HELD_TRIAL = 1  # trial 0 finishes; trial 1 is running when the server is killed
MARK = b"LORA_FOUNDRY_RUN_DIR="  # kohya/train_config.RUN_DIR_ENV: every trainer's environment names its run folder

pytestmark = pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout to run")


def _tune_node(prompt: dict) -> dict:
    (node,) = [n for n in prompt.values() if n["class_type"] == "LF_TuneTraining"]
    return node["inputs"]


def trainers(root: Path) -> dict[int, int]:
    """Live (not zombie) trainer processes whose run folder is under ``root``: {pid: process group}."""
    runs = str(root.resolve()).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if state[0] != "Z" and any(v.startswith(MARK) and v[len(MARK):].startswith(runs) for v in environ):
                found[int(entry.name)] = int(state[2])
        except (OSError, IndexError):
            continue
    return found


def study_records(db_path: Path) -> dict[int, dict]:
    """Every trial as Optuna stored it: state, value, settings, scores at progress points, and the
    attributes a resume writes."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        rows = {tid: {"number": number, "state": state, "value": None, "params": {}, "intermediate": {}, "attrs": {}}
                for tid, number, state in db.execute("select trial_id, number, state from trials")}
        for tid, value in db.execute("select trial_id, value from trial_values"):
            rows[tid]["value"] = value
        for tid, name, value in db.execute("select trial_id, param_name, param_value from trial_params"):
            rows[tid]["params"][name] = value
        for tid, step, value in db.execute("select trial_id, step, intermediate_value from trial_intermediate_values"):
            rows[tid]["intermediate"][step] = value
        for tid, key, value in db.execute("select trial_id, key, value_json from trial_user_attributes"):
            if key in ("retry_of", "stopped_leftover_trainers"):
                rows[tid]["attrs"][key] = json.loads(value)
    return {row["number"]: row for row in rows.values()}


def _wait_for(condition, server: ComfyServer, prompt_id: str, what: str, timeout: float = 3600) -> None:
    """Poll until ``condition()``; fail early with the node's error if the prompt ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        if entry := server.client.ended(prompt_id):
            pytest.fail(f"the prompt ended before {what}: {json.dumps(status_messages(entry, 'execution_error'))[:3000]}")
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.5)


class TrainerWatch(threading.Thread):
    """Samples the study's trainer process groups while the resumed run goes on: the most seen
    alive at once (sampling can miss an overlap, never invent one)."""

    def __init__(self, study: Path) -> None:
        super().__init__(daemon=True)
        self.study, self.most, self.groups = study, 0, set()
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            groups = set(trainers(self.study / "runs").values())
            self.groups |= groups
            self.most = max(self.most, len(groups))


@pytest.fixture()
def server(tmp_path, media_dir, monkeypatch):
    comfy_dir = Path(COMFYUI_DIR).resolve()
    python = comfy_python(comfy_dir)
    if subprocess.run([str(python), "-c", "import optuna"], capture_output=True, check=False).returncode:
        pytest.skip(f"{python} has no Optuna (pip install 'lora-foundry[tune]')")
    models = Path(os.environ.get("LF_STANDINS_DIR") or tmp_path / "standins")
    install_standins(models, comfy_dir=comfy_dir, comfy_python=python, log=print)
    (tmp_path / "trained_loras").mkdir()
    config = extra_model_paths_yaml(models, tmp_path / "extra_model_paths.yaml", new_loras=tmp_path / "trained_loras")
    comfy = ComfyServer(comfy_dir, python, tmp_path / "comfyui",
                        extra_args=("--base-directory", str(pack_base(tmp_path, REPO)),
                                    "--extra-model-paths-config", str(config)))
    trainer_standin(tmp_path / "trainer", comfy.dirs["user"])
    comfy.dirs["input"].mkdir(parents=True, exist_ok=True)
    for media in media_dir.iterdir():  # the workflow names its clip relative to the input folder
        (comfy.dirs["input"] / media.name).symlink_to(media)
    monkeypatch.setenv("FAKE_STEP_S", "0.1")  # the server's environment is the trainers'
    monkeypatch.setenv("FAKE_HOLD", str(tmp_path / "hold_run"))  # names the run to hold (see the docstring)
    comfy.hold = tmp_path / "hold_run"
    with comfy:
        yield comfy
    for group in set(trainers(tmp_path).values()):  # whatever a failed check left behind
        os.killpg(group, signal.SIGKILL)


def test_a_study_killed_with_minus_9_resumes_with_one_trainer_and_its_trials_intact(server):
    prompt = shrink_for_standins(ui_to_api(json.loads(WORKFLOW.read_text(encoding="utf-8")),
                                           server.client.object_info()))
    inputs = _tune_node(prompt)
    study = server.dirs["output"] / "lora_foundry" / "workspaces" / inputs["workspace"] / "tuning" / inputs["output_name"]
    held_run = study / "runs" / f"{inputs['output_name']}_t{HELD_TRIAL:03d}"
    server.hold.write_text(held_run.name, encoding="utf-8")

    first = server.client.queue(prompt)
    db_path = study / "study.sqlite3"

    def held_and_scored() -> bool:
        if not (held_run / "held").exists():
            return False
        trial = study_records(db_path).get(HELD_TRIAL)
        return bool(trial and trial["intermediate"])

    _wait_for(held_and_scored, server, first, f"trial {HELD_TRIAL} held half-way with its mid-run score")
    orphan = int((held_run / "trainer.pid").read_text())
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    left = trainers(study / "runs")
    before = study_records(db_path)
    print(f"\nkilled ComfyUI (-9) during trial {HELD_TRIAL}; trainers alive after the kill: {left} (held: {orphan})")
    print("before:", json.dumps(before, indent=None, default=str))
    assert orphan in left, "the held trainer should outlive the killed server (as a silent sd-scripts does)"
    assert before[0]["state"] == "COMPLETE" and before[HELD_TRIAL]["state"] == "RUNNING"

    server.start()
    watch = TrainerWatch(study)
    watch.start()
    try:
        resumed, deadline = server.client.queue(prompt), time.monotonic() + 3600
        while watch.most <= 1 and not (second := server.client.ended(resumed)):  # ends early on two trainers
            assert time.monotonic() < deadline, "the resumed run did not end within 3600 s"
            time.sleep(0.5)
    finally:
        watch.done.set()
        watch.join()
    assert watch.most <= 1, f"{watch.most} trainers of one study alive at once: {sorted(watch.groups)}"
    after = study_records(db_path)
    print("after:", json.dumps(after, indent=None, default=str))
    print(f"trainer groups seen during the resumed run: {sorted(watch.groups)}; most alive at once: {watch.most}")
    assert second["status"]["status_str"] == "success", json.dumps(status_messages(second, "execution_error"))[:3000]

    assert not trainers(study / "runs"), "a trainer of the killed run is still alive"
    assert after[0] == before[0], "the finished trial changed"
    assert after[HELD_TRIAL]["state"] == "FAIL"
    assert after[HELD_TRIAL]["intermediate"] == before[HELD_TRIAL]["intermediate"]
    (retry,) = [t for t in after.values() if t["attrs"].get("retry_of") == HELD_TRIAL]
    assert retry["state"] == "COMPLETE" and retry["params"] == before[HELD_TRIAL]["params"]
    assert retry["attrs"]["stopped_leftover_trainers"] == [left[orphan]]
    assert sorted(t["state"] for t in after.values()) == ["COMPLETE", "COMPLETE", "FAIL"]
