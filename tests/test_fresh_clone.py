"""A fresh clone runs the README's first command with nothing beside it (``scripts/fresh_clone_check.py``).

The clone is of the committed HEAD, in a temp folder with no ``../shared`` next to it, and the
command runs exactly as the README writes it (its own venv and ``pip install -e .``, ~30 s with
pip's cache, so the check also covers the package shipping its example clip).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

SCRIPT = REPO / "scripts" / "fresh_clone_check.py"


def _script():
    spec = importlib.util.spec_from_file_location("fresh_clone_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_first_command_is_the_demo_on_the_bundled_clip_into_out():
    """No video named (the bundled clip) and ``--out out``: a clone is no ComfyUI install, and the CLI
    writes nowhere it was not told to (``cli/locations.py``)."""
    command = _script().first_command((REPO / "README.md").read_text(encoding="utf-8"))
    assert command.rstrip().endswith("lora-foundry demo --out out"), command
    assert "shared" not in command


def test_the_demo_no_longer_reads_beside_the_checkout():
    from lora_foundry import cli

    assert cli.BUNDLED_VIDEO.is_file() and cli.BUNDLED_VIDEO.is_relative_to(REPO / "lora_foundry")
    assert cli.BUNDLED_VIDEO.stat().st_size < 3_000_000


def test_a_fresh_clone_runs_the_readme_first_command(capfd):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout to clone")
    if subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip("no commit to clone")
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "ok: the README's first command wrote a dataset on a fresh clone" in done.stdout


def test_the_check_fails_on_a_dataset_without_captions(tmp_path):
    subset = tmp_path / "out" / "ds" / "img" / "10_x"
    subset.mkdir(parents=True)
    (subset / "a.jpg").write_bytes(b"x")
    (subset / "a.txt").write_text("")
    stdout = '[ 1.0s] frames: 3 frames; cuts at [] s (1 shots)\n{"dataset": "%s", "images": 1}' % (tmp_path / "out" / "ds")
    problems = _script().dataset_problems(tmp_path, stdout)
    assert any("no caption" in p for p in problems) and any("dataset.toml" in p for p in problems)
    assert any("6 shots" in p for p in problems)


def test_every_test_module_has_its_own_name():
    """pytest imports test files by their base name (no packages under tests/): two files with one name
    stop the whole run at collection ("import file mismatch"), though each passes run alone."""
    seen: dict[str, list[str]] = {}
    for path in sorted((REPO / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(REPO)))
    assert not {name: paths for name, paths in seen.items() if len(paths) > 1}
