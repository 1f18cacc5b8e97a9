"""A workflow saved before the redesign still loads: no missing node, every widget value lands on
the same input as it did then (runs without ComfyUI, in CI).

The reference is git revision ``eb34970`` (the last commit before the redesign of issue 11): its
``example_workflows/*.json`` are what users saved, and its pack says which input each saved widget
value belonged to. Both come from git (``git archive``); the old pack is imported from a temp
folder under its own package name, next to the current one. Each saved workflow is then read with
the converter the real-ComfyUI test uses (``ui_to_api.widget_inputs``, via
``test_workflows_match_nodes``): every ``LF_`` node type must exist now, its widget values must
map to the same input names with the same values as under the old declarations, and pass the
current validation rules. Skipped when git or the revision is not available (e.g. a shallow clone).
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_workflows_match_nodes import node_definition, workflow_problems  # noqa: E402
from ui_to_api import ConversionError, widget_inputs  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
BEFORE = "eb34970"
OLD_PACK_NAME = f"lora_foundry_{BEFORE}"


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def revision() -> str:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    found = _git("rev-parse", "--verify", "--quiet", f"{BEFORE}^{{commit}}")
    if found.returncode != 0:
        pytest.skip(f"git revision {BEFORE} is not in this clone")
    return found.stdout.decode().strip()


def _saved_workflows(revision: str) -> dict[str, dict]:
    listing = _git("ls-tree", "--name-only", revision, "example_workflows/")
    assert listing.returncode == 0, listing.stderr.decode()
    names = [n for n in listing.stdout.decode().splitlines() if n.endswith(".json")]
    saved = {}
    for name in names:
        shown = _git("show", f"{revision}:{name}")
        assert shown.returncode == 0, shown.stderr.decode()
        saved[Path(name).stem] = json.loads(shown.stdout)
    return saved


@pytest.fixture(scope="module")
def saved_workflows(revision) -> dict[str, dict]:
    workflows = _saved_workflows(revision)
    assert workflows, f"no example workflows at {BEFORE}"
    return workflows


@pytest.fixture(scope="module")
def old_pack(revision, tmp_path_factory):
    """The pack as it was at ``BEFORE``, imported by path like ComfyUI does, under its own name."""
    folder = tmp_path_factory.mktemp("pack_before")
    archive = _git("archive", "--format=tar", revision, "--", "__init__.py", "nodes", "lora_foundry")
    assert archive.returncode == 0, archive.stderr.decode()
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    spec = importlib.util.spec_from_file_location(OLD_PACK_NAME, folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[OLD_PACK_NAME] = module
    try:
        spec.loader.exec_module(module)
        assert Path(sys.modules[f"{OLD_PACK_NAME}.nodes"].__file__).is_relative_to(folder)
        yield module
    finally:
        for name in [n for n in sys.modules if n == OLD_PACK_NAME or n.startswith(OLD_PACK_NAME + ".")]:
            del sys.modules[name]


def _inputs(node: dict, cls: type) -> dict:
    try:
        return widget_inputs(node, node_definition(cls), strict=False)
    except ConversionError as error:
        return {"<error>": str(error)}


def test_every_workflow_saved_before_the_redesign_still_loads(pack, old_pack, saved_workflows):
    problems = []
    for name, workflow in sorted(saved_workflows.items()):
        problems += [f"{name}: {p}" for p in workflow_problems(workflow, pack.NODE_CLASS_MAPPINGS, strict=False)]
        for node in workflow["nodes"]:
            kind = node.get("type", "")
            if not kind.startswith("LF_") or kind not in pack.NODE_CLASS_MAPPINGS:
                continue  # core nodes are ComfyUI's; a missing LF_ node is reported above
            before = _inputs(node, old_pack.NODE_CLASS_MAPPINGS[kind])
            now = _inputs(node, pack.NODE_CLASS_MAPPINGS[kind])
            if before != now:
                moved = {k: (before.get(k, "<none>"), now.get(k, "<none>"))
                         for k in sorted(set(before) | set(now)) if before.get(k, "<none>") != now.get(k, "<none>")}
                problems.append(f"{name}: node {node['id']} ({kind}) widget values moved (before, now): {moved}")
    assert not problems, f"workflows saved at {BEFORE} no longer load as saved:\n" + "\n".join(problems)


def test_the_saved_workflows_are_the_example_set(saved_workflows):
    """Every example workflow of that revision is checked (none was skipped as unreadable)."""
    assert all(w.get("nodes") and "links" in w for w in saved_workflows.values())
    assert "video_to_kohya_dataset" in saved_workflows


def test_the_check_notices_a_renamed_widget(pack, old_pack, saved_workflows, monkeypatch):
    """If an input were renamed, the old value would land on no input of the same name."""
    workflow = saved_workflows["video_to_kohya_dataset"]
    node = next(n for n in workflow["nodes"] if n["type"] == "LF_WriteKohyaDataset")
    cls = pack.NODE_CLASS_MAPPINGS["LF_WriteKohyaDataset"]
    original = cls.INPUT_TYPES

    def renamed():
        inputs = original()
        inputs["required"] = {("dataset_title" if k == "dataset_name" else k): v
                              for k, v in inputs["required"].items()}
        return inputs

    monkeypatch.setattr(cls, "INPUT_TYPES", staticmethod(renamed))
    assert _inputs(node, old_pack.NODE_CLASS_MAPPINGS["LF_WriteKohyaDataset"]) != _inputs(node, cls)
