"""ComfyUI with a local Ray cluster configured gives the bytes of a run on this machine.

Gated: needs ``COMFYUI_DIR`` (a ComfyUI checkout whose ``custom_nodes/lora_foundry`` links to this
repository, see docs/real_comfyui.md), ``COMFYUI_PYTHON`` with Ray installed (``pip install
'lora-foundry[ray]'`` into ComfyUI's environment) and ``unshare --net --mount`` (root): the whole
run happens in ray_in_comfyui.py inside a private network namespace whose only interface is the
loopback, so nothing it opens is reachable beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
PYTHON = os.environ.get("COMFYUI_PYTHON") or (f"{COMFYUI_DIR}/venv/bin/python" if COMFYUI_DIR else "")


def _ready() -> str:
    """Why the test cannot run here, or "" when it can."""
    if not COMFYUI_DIR:
        return "set COMFYUI_DIR (and COMFYUI_PYTHON) to a ComfyUI checkout to run"
    if subprocess.run([PYTHON, "-c", "import ray"], capture_output=True).returncode != 0:
        return f"Ray is not installed in ComfyUI's Python ({PYTHON}): pip install 'lora-foundry[ray]'"
    if subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode != 0:
        return "needs `unshare --net --mount` (root) to keep the cluster and ComfyUI on 127.0.0.1"
    return ""


pytestmark = pytest.mark.skipif(bool(_ready()), reason=_ready() or "ready")


@pytest.fixture(scope="module")
def facts(tmp_path_factory) -> dict:
    temp = tmp_path_factory.mktemp("ray_comfy")
    command = ["unshare", "--net", "--mount", "--", sys.executable, str(HERE / "ray_in_comfyui.py"),
               str(Path(COMFYUI_DIR).resolve()), PYTHON, str(temp)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=3000)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the session this fixture started: ComfyUI and Ray too
        raise
    assert proc.returncode == 0, err.decode()[-4000:]
    facts = json.loads(out.decode().strip().splitlines()[-1])
    local, ray = facts["local"], facts["ray"]
    print(json.dumps({**{k: v for k, v in facts.items() if k not in ("local", "ray")},
                      "files": len(local["tree"]), "identical_files": sum(ray["tree"].get(name) == digest
                                                                          for name, digest in local["tree"].items()),
                      "reports_equal": ray["reports"] == local["reports"],
                      "listening": {"local": local["listening"], "ray": ray["listening"]}}))
    return facts


def test_the_spine_and_embeddings_on_ray_give_the_local_bytes(facts):
    local, ray = facts["local"], facts["ray"]
    assert any(name.endswith(".npy") for name in local["tree"])  # embeddings were written
    assert any(name.endswith(".txt") for name in local["tree"])  # the dataset's captions
    assert ray["reports"] == local["reports"]
    assert ray["tree"] == local["tree"]


def test_the_units_ran_on_the_cluster(facts):
    assert facts["ray_workers"] >= 1


def test_nothing_listens_beyond_the_loopback(facts):
    assert facts["interfaces"] == ["lo"]
    for run in ("local", "ray"):
        assert facts[run]["listening"], "ComfyUI's own socket should be listed"
        assert "127.0.0.1" in facts[run]["listening"]
