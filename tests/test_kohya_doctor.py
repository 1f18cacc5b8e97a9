"""doctor's commit and device lines: a HEAD naming a commit the repository lacks is FIX (a fake
commit no longer passes), the pins are named, another real commit is a warning, no GPU is said."""

from __future__ import annotations

import shutil
import subprocess
import sys

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
    lines = [f.line() for f in doctor.diagnose(install)]  # this Python's torch, as sd-scripts' venv runs it
    line = next(x for x in lines if " device: " in x)
    import torch

    if torch.cuda.is_available():
        assert line.startswith("OK   device: cuda")
    else:
        assert line.startswith("WARN device: no GPU") and "CPU" in line
    assert install.python == __import__("pathlib").Path(sys.executable)
