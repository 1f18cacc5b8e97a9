"""Test fixtures shared by every test module.

``pack`` imports the repository folder as a package the way ComfyUI does (by path, under a fixed
name), so node tests exercise exactly the import path ComfyUI uses, without ComfyUI.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "lora_foundry_pack"
pytest_plugins = ("hostile.hostile_fixtures",)  # the hostile-input suite's fixtures (tests/hostile/)


def import_pack():
    """Import the repo as ComfyUI does: ``custom_nodes/<folder>/__init__.py`` as a package."""
    if PACK_NAME in sys.modules:
        return sys.modules[PACK_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_NAME, REPO / "__init__.py", submodule_search_locations=[str(REPO)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pack():
    return import_pack()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    """Real footage cut from the bundled clip once per session (tests/media_clips.py lists it)."""
    from media_clips import make_media

    return make_media(tmp_path_factory.mktemp("media"))


@pytest.fixture()
def output_root(tmp_path, monkeypatch, media_dir) -> Path:
    """An isolated output root: everything a test writes must land under it.

    Nodes read media only inside their read roots (lora_foundry/read_roots.py): here the input
    folder is ``tmp_path/input`` and the test media folder is an operator-listed extra root,
    written where an operator would write it (``<user dir>/lora_foundry/read_roots.json``).
    """
    root = tmp_path / "output"
    root.mkdir()
    (tmp_path / "input").mkdir()
    monkeypatch.setenv("LORA_FOUNDRY_OUTPUT", str(root))
    monkeypatch.setenv("LORA_FOUNDRY_INPUT", str(tmp_path / "input"))
    config = root / ".user" / "lora_foundry" / "read_roots.json"
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"read_roots": [str(media_dir)]}))
    return root


@pytest.fixture()
def models_root(tmp_path, monkeypatch) -> Path:
    """An empty models folder (``LORA_FOUNDRY_MODELS``) for tests that plant their stand-in weights,
    with the working directory moved into ``tmp_path`` so nothing lands in the repo."""
    root = tmp_path / "models"
    monkeypatch.setenv("LORA_FOUNDRY_MODELS", str(root))
    monkeypatch.chdir(tmp_path)
    return root


@pytest.fixture()
def without_open_clip(monkeypatch):
    """Imports of open_clip fail, as on an install without the models extra."""
    import builtins

    real_import = builtins.__import__

    def no_open_clip(name, *args, **kwargs):
        if name.startswith("open_clip"):
            raise ImportError("no open_clip here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_open_clip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Prints the real-ComfyUI suite's per-workflow times (tests/integration/timings.py) when it ran.
    The module is looked up, not imported: a second conftest.py in tests/integration would shadow
    this one for every ``from conftest import ...``."""
    timings = sys.modules.get("timings")
    lines = config.stash.get(timings.TIMING_LINES, []) if timings is not None else []
    if lines:
        terminalreporter.section("example workflow run times")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture()
def keep_for_review():
    """``keep(path, name)`` copies a picture a person should look at (a contact sheet, a plot) into
    the folder ``$LF_KEEP_PREVIEWS`` names; without it nothing is copied: a test writes only in its
    own temp folder (these tests once wrote to a fixed /tmp/h15, shared by every run)."""
    folder = os.environ.get("LF_KEEP_PREVIEWS")

    def keep(path: Path, name: str) -> None:
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(folder) / name)

    return keep
