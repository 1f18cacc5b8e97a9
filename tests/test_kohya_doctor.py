"""doctor's commit and device lines: a HEAD naming a commit the repository lacks is FIX (a fake
commit no longer passes), the pins are named, another real commit is a warning, no GPU is said; a
probe that hangs is a FIX line and is stopped. The real probe runs with no time limit, so a busy
machine only makes it slower; the hang is a fake interpreter held forever on a FIFO nobody opens."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from fixtures_fake_trainer import make_fake_install

from lora_foundry.kohya import doctor

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command to build a repository")


def _git(folder, *args):
    return subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, text=True,
                          env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    install = make_fake_install(tmp_path / "kohya")
    folder = install.sd_scripts_dir
    _git(folder, "init", "-q")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-qm", "x")
    return install, folder


def _line(install, label):
    assert label == "sd-scripts commit"
    return doctor._commit_finding(install.sd_scripts_dir).line()


@pytest.mark.parametrize("packed", [False, True])
def test_a_real_commit_is_found_loose_or_packed(repo, packed):
    install, folder = repo
    if packed:
        _git(folder, "gc", "-q")
    head = _git(folder, "rev-parse", "HEAD")
    assert doctor.commit_exists(folder, head)
    line = _line(install, "sd-scripts commit")
    assert line.startswith("WARN") and head in line and "48d368fa" in line and "063ef100" in line


@pytest.mark.parametrize("packed", [False, True])
def test_a_fake_commit_is_a_fix(repo, packed):
    install, folder = repo
    if packed:
        _git(folder, "gc", "-q")
    fake = "48d368fa0123456789abcdef0123456789abcdef"
    (folder / ".git" / "refs" / "heads").mkdir(parents=True, exist_ok=True)
    branch = _git(folder, "symbolic-ref", "--short", "HEAD")
    (folder / ".git" / "refs" / "heads" / branch).write_text(fake + "\n")
    assert not doctor.commit_exists(folder, fake)
    line = _line(install, "sd-scripts commit")
    assert line.startswith("FIX") and "not a commit of this repository" in line


def test_the_pins_are_named(repo, monkeypatch):
    install, folder = repo
    monkeypatch.setattr(doctor, "git_commit", lambda _: doctor.LECO_PIN)
    monkeypatch.setattr(doctor, "commit_exists", lambda *_: True)
    assert _line(install, "sd-scripts commit") == f"OK   sd-scripts commit: {doctor.LECO_PIN} (the pin for LECO (and LoRA) training)"


def test_no_gpu_is_said(repo):
    install, _ = repo
    lines = [f.line() for f in doctor.diagnose(install, probe_timeout_s=None)]  # this Python's torch, as sd-scripts' venv runs it
    line = next(x for x in lines if " device: " in x)
    import torch

    if torch.cuda.is_available():
        assert line.startswith("OK   device: cuda")
    else:
        assert line.startswith("WARN device: no GPU") and "CPU" in line
    assert install.python == Path(sys.executable)


def test_a_probe_that_hangs_is_a_fix_line_and_is_stopped(repo, tmp_path):
    """The interpreter blocks opening a FIFO no one writes: it can never answer, however fast the
    machine, so any limit is reached; the doctor says so, stops it and goes on with the other checks."""
    install, _ = repo
    gate, pid_file = tmp_path / "gate", tmp_path / "pid"
    os.mkfifo(gate)
    hanging = tmp_path / "python"
    hanging.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\nexec cat "{gate}"\n', encoding="utf-8")
    hanging.chmod(0o755)
    lines = [f.line() for f in doctor.diagnose(replace(install, python=hanging), probe_timeout_s=0.5)]
    line = next(x for x in lines if x.startswith("FIX  python: "))
    assert f"{hanging} started but gave no answer in 0.5 s (it was stopped)" in line and "--probe-timeout 0" in line
    pid = pid_file.read_text().strip() if pid_file.exists() else ""  # empty: stopped before it wrote it
    assert not pid or not Path(f"/proc/{pid}").exists()  # killed and reaped, not left blocked on the FIFO
    assert any(x.startswith("OK   train_network.py") for x in lines) and any("tokenizer" in x for x in lines)
