"""Fixtures for the hostile-input suite, loaded as a plugin by ``tests/conftest.py`` (a second
``conftest.py`` here would shadow ``tests/conftest.py`` for modules that import from it): a server's folders, a private folder a stranger's
workflow must never read, a guard that nothing is written outside the allowed roots, and an alarm
so that no case can hang the suite.

Layout under ``tmp_path`` (what a ComfyUI server looks like to a workflow):
``input/`` (ComfyUI's input folder), ``output/`` (its output folder, where the pack writes),
``private/`` (anything else on the disk: a secret picture, a secret text, a secret video),
``made/`` (hostile files a test builds outside the roots on purpose).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

CASE_TIMEOUT_S = 60
ALLOWED_TO_WRITE = ("output", "input", "made", "models", "user", "temp")


@pytest.fixture()
def no_hang():
    """Fail a case that runs longer than CASE_TIMEOUT_S instead of hanging the suite."""
    def timed_out(signum, frame):
        raise TimeoutError(f"hostile case still running after {CASE_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, timed_out)
    signal.alarm(CASE_TIMEOUT_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _picture(path: Path, colour: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (32, 24)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), colour, np.uint8)).save(path)
    return path


@pytest.fixture()
def server(tmp_path, output_root, pack, no_hang):
    """The pack as a server runs it, with a private folder beside its input and output folders."""
    private = tmp_path / "private"
    secret_picture = _picture(private / "secret.png", (1, 2, 3))
    (private / "secret.txt").write_text("secret_tag, password")
    (private / "photos").mkdir()
    _picture(private / "photos" / "holiday.png", (4, 5, 6))
    inputs = tmp_path / "input"
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    started = time.time_ns()
    yield SimpleNamespace(pack=pack, nodes=pack.nodes, input=inputs, output=output_root, private=private,
                          secret_picture=secret_picture, made=tmp_path / "made", tmp=tmp_path,
                          picture=_picture, secret_leaked=lambda: secret_in_workspace(output_root))
    changed = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_mtime_ns >= started
               and before.get(p) != p.stat().st_mtime_ns
               and p.relative_to(tmp_path).parts[0] not in ALLOWED_TO_WRITE]
    assert changed == [], f"written outside the allowed roots: {changed}"
    assert sorted(p.name for p in private.rglob("*")) == ["holiday.png", "photos", "secret.png", "secret.txt"]


def secret_in_workspace(output: Path) -> bool:
    """True when any picture the pack wrote carries the private picture's colour."""
    for path in output.rglob("*.png"):
        with Image.open(path) as image:
            if image.convert("RGB").getpixel((0, 0)) in ((1, 2, 3), (4, 5, 6)):
                return True
    return False


def operator_trainer(server, monkeypatch) -> Path:
    """A fake sd-scripts the operator set up (``<user dir>/lora_foundry/trainer.json``); its path."""
    import json
    import sys

    from fixtures_fake_trainer import make_fake_install

    install = make_fake_install(server.made / "kohya")
    config = server.output / ".user" / "lora_foundry" / "trainer.json"
    config.write_text(json.dumps({"sd_scripts": str(install.sd_scripts_dir), "python": sys.executable,
                                  "tokenizer_cache_dir": str(install.tokenizer_cache_dir)}))
    monkeypatch.delenv("KOHYA_SD_SCRIPTS", raising=False)
    return config
