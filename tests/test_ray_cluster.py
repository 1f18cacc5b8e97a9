"""Stage units on a local Ray cluster (head node with two worker processes, on 127.0.0.1 only).

The cluster runs inside a private network namespace (``unshare --net``, see ray_scenarios.py), so
nothing it opens is reachable beyond 127.0.0.1; one start serves all three scenarios. Skipped
when Ray is not installed (it is an optional extra) or namespaces cannot be made here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                                reason="Ray is an optional extra: pip install 'lora-foundry[ray]'")


def _namespaces_work() -> bool:
    try:
        return subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


ROUNDING = 1e-6
"""How far an embedding computed on a Ray worker may be from the local one. A worker runs torch with
one thread per CPU slot, the driver with every core, and a sum taken in another order can differ in
its last bit (a tiny CLIP's rows: 6e-8 on a 2-core AMD EPYC; equal on the machines before it). A
row of another frame, or of another model, is off by far more."""


def same_workspace(got: dict, want: dict) -> None:
    """``got`` holds ``want``'s manifest rows and every file's bytes, except embedding rows (.npy),
    which may differ by float rounding only."""
    arrays = [name for name in want["files"] if name.endswith(".npy")]
    assert sorted(got["files"]) == sorted(want["files"])
    assert {**got, "files": _without(got["files"], arrays)} == {**want, "files": _without(want["files"], arrays)}
    for name in arrays:
        rows, expected = np.asarray(got["files"][name]), np.asarray(want["files"][name])
        assert rows.shape == expected.shape, name
        assert np.abs(rows - expected).max(initial=0.0) <= ROUNDING, name


def _without(files: dict, names: list) -> dict:
    return {name: digest for name, digest in files.items() if name not in names}


@pytest.fixture(scope="module")
def facts(tmp_path_factory, media_dir) -> dict:
    if not _namespaces_work():
        pytest.skip("needs `unshare --net --mount` (root) to keep the cluster on 127.0.0.1")
    temp = tmp_path_factory.mktemp("ray")
    command = ["unshare", "--net", "--mount", "--", sys.executable, str(REPO / "tests" / "ray_scenarios.py"),
               str(temp), "all"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env={**os.environ, "LF_TEST_MEDIA": str(media_dir)})
    try:
        out, err = proc.communicate(timeout=1200)  # a guard against a hang, not a speed check
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the session this fixture started: the nodes too
        raise
    assert proc.returncode == 0, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


def test_ingest_and_embedding_on_ray_give_the_local_manifest_and_bytes(facts):
    local, ray = facts["same"]["local"], facts["same"]["ray"]
    assert len(local["stages"]) == 6 and len(local["files"]) == 9  # 3 videos x (2 frames + 1 batch)
    same_workspace(ray, local)


def test_clip_batches_on_ray_open_the_model_once_per_slot_not_per_batch(facts):
    clip = facts["same"]["clip"]
    assert clip["batches"] >= 4
    assert 1 <= clip["opened"] <= 2  # two CPU slots: one actor each, the model kept open between batches
    same_workspace(clip["ray"], clip["local"])


def test_sam2_tracking_units_per_shot_on_ray_give_the_local_bytes(facts):
    """One unit per shot on one actor per slot (a GPU request where the model's device is a GPU),
    running the same unit function as a run in this process."""
    sam2 = facts["same"]["sam2"]
    assert sam2["shots"] == 3
    assert 1 <= sam2["opened"] <= 2  # two CPU slots: SAM 2 opened once per actor, not per shot
    layers = [name for name in sam2["local"]["files"] if "layer_track" in name or "_cutout_" in name]
    assert any("_cutout_" in name for name in layers) and any("_background" in name for name in layers)
    assert len([unit for unit in sam2["local"]["units"] if unit[1].startswith("shot:")]) == sam2["shots"]
    same_workspace(sam2["ray"], sam2["local"])


def test_a_killed_ray_worker_still_ends_with_every_unit_committed_once(facts):
    kill = facts["kill"]
    assert len(kill["killed"]) == 1, "no Ray worker was running a unit to kill"
    same_workspace(kill["ray"], kill["local"])
    units = [tuple(unit) for unit in kill["ray"]["units"]]
    frames = [(item[10], item[4]) for item in kill["ray"]["items"]]  # (stage, frame index)
    batches = [name for name in kill["local"]["files"] if name.endswith(".npy")]  # embedding batches of 2
    # one unit per stored frame plus one per embedding batch, each committed once
    assert len(frames) == len(set(frames)) >= 6 and len(batches) >= 3
    assert len(units) == len(set(units)) == len(frames) + len(batches)


def test_a_node_that_cannot_see_the_workspace_refuses_before_any_work(facts):
    blind = facts["blind"]
    assert "cannot see the workspace" in blind["error"] and "docs/scaling.md" in blind["error"]
    assert blind["stages"] == 0
    assert all(name.startswith("manifest.sqlite") for name in blind["files"])


def test_nodes_imported_as_comfyui_imports_them_run_on_the_configured_cluster(facts):
    """The pack loaded under its folder's path, as ComfyUI 0.3 names it: LF Load Video
    Frames and LF Embed Frames (pixels, and open_clip opened on the workers) with LF_RAY_ADDRESS set
    give the local run's reports, manifest and file bytes."""
    comfy = facts["comfy"]
    assert comfy["ray_connected"]
    # the units were rebuilt under the engine's top-level name, loaded from this pack's folder
    assert not comfy["top_level_before_ray"]
    assert Path(comfy["top_level_file"]) == REPO / "lora_foundry" / "__init__.py"
    local, ray = comfy["local"], comfy["ray"]
    assert local["reports"][0]["frames"] > 0 and "32-d" in local["reports"][2]  # the tiny CLIP's width
    assert ray["reports"] == local["reports"]
    embeds = [name for name in local["workspace"]["files"] if name.endswith(".npy")]
    assert len(embeds) >= 4  # pixel batches and CLIP batches
    same_workspace(ray["workspace"], local["workspace"])


def test_cancel_stops_the_ray_tasks_and_a_rerun_resumes_to_the_local_result(facts):
    cancel = facts["cancel"]
    assert cancel["error"] == "cancelled by the user"
    # the first video's two frames were committed; the other two videos were held at the gate
    assert cancel["units_at_cancel"] == 2
    assert cancel["running_after"] == 0  # no task left decoding on the cluster
    same_workspace(cancel["resumed"], facts["same"]["local"])
