"""Importing the pack does no work: ComfyUI imports every custom node pack at start-up, so an
import that loads torch or a model backend, starts a thread or writes a file slows or breaks every
ComfyUI launch, including the ones that never use our nodes.

The import runs in a fresh interpreter so modules other tests loaded cannot hide a heavy import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The backends docs/ARCHITECTURE.md says are imported inside functions only.
HEAVY_MODULES = (
    "torch", "torchvision", "cv2", "sam2", "open_clip", "onnxruntime", "rtmlib", "facexlib",
)

_PROBE = r"""
import importlib.util, json, sys, threading
repo = sys.argv[1]
spec = importlib.util.spec_from_file_location(
    "lora_foundry_pack", repo + "/__init__.py", submodule_search_locations=[repo])
module = importlib.util.module_from_spec(spec)
sys.modules["lora_foundry_pack"] = module
spec.loader.exec_module(module)
print(json.dumps({
    "nodes": sorted(module.NODE_CLASS_MAPPINGS),
    "modules": sorted(sys.modules),
    "threads": [t.name for t in threading.enumerate()],
}))
"""


def _import_in_fresh_interpreter(cwd: Path, env_output: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "LORA_FOUNDRY_OUTPUT"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    if env_output is not None:
        env["LORA_FOUNDRY_OUTPUT"] = str(env_output)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(REPO)], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, f"importing the pack failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_pack_loads_no_heavy_backend_and_starts_no_thread(tmp_path):
    report = _import_in_fresh_interpreter(tmp_path, env_output=None)
    assert report["nodes"], "the import registered no nodes at all"
    loaded = set(report["modules"])
    heavy = sorted(m for m in HEAVY_MODULES if m in loaded)
    assert not heavy, f"importing the pack imported {heavy}; import them inside the functions"
    assert report["threads"] == ["MainThread"], f"import started threads: {report['threads']}"


def test_importing_the_pack_writes_nothing(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    output_root = tmp_path / "output"
    _import_in_fresh_interpreter(cwd, env_output=output_root)
    _import_in_fresh_interpreter(cwd, env_output=None)  # default root is ./out under cwd
    assert list(cwd.iterdir()) == [], f"import created {list(cwd.iterdir())} in the cwd"
    assert not output_root.exists(), "import created the output root"
