"""Runs the Ray scenarios of tests/test_ray_cluster.py inside a private network namespace.

Started by the test as ``unshare --net --mount -- python tests/ray_scenarios.py TMP SCENARIO``:
with only a loopback interface, nothing the Ray cluster opens can be reached from beyond
127.0.0.1 (Ray's servers bind every interface; here there is only one). The script starts a head
node (2 CPUs: two worker processes, dashboard off) with ``ray start --block``, runs the scenarios,
prints one JSON line of facts for the test to check, and stops the nodes it started.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDIA = Path(os.environ["LF_TEST_MEDIA"])  # the clips tests/media_clips.py made for this run
sys.path.insert(0, str(REPO))

from lora_foundry.scale.ray_runner import RayRunner, WorkspaceNotShared  # noqa: E402
from lora_foundry.stages.clusters.embed_stage import embed_stage  # noqa: E402
from lora_foundry.stages.frames import ingest_stage as ingest  # noqa: E402
from lora_foundry.stages.frames.parallel_ingest_stage import ingest_videos  # noqa: E402
from lora_foundry.workspace import Workspace  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_node(args: list[str], temp: Path, prefix: list[str] = ()) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0"}
    command = [*prefix, RAY, "start", "--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats",
               f"--temp-dir={temp}", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


NODE_START_S = 600
"""Bounds a node that never comes up; decides nothing (a loaded 2-core machine took over 120 s)."""


def _wait_for_nodes(ray, count: int, timeout_s: float = NODE_START_S) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(1 for node in ray.nodes() if node.get("Alive")) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} Ray nodes did not come up")
        time.sleep(0.5)


def dump(root: Path) -> dict:
    """A workspace's manifest and files, independent of the order units were committed in."""
    conn = sqlite3.connect(root / "manifest.sqlite")
    path_of = dict(conn.execute("SELECT id, relpath FROM items"))
    facts = {
        "stages": sorted(conn.execute("SELECT key, name, params, inputs, status, info FROM stages")),
        "items": sorted(conn.execute("SELECT relpath, kind, parent, source, frame_index, time_s, shot, width, "
                                     "height, meta, stage_key FROM items")),
        "outputs": sorted((key, major, minor, path_of[item]) for key, major, minor, item in
                          conn.execute("SELECT stage_key, major, minor, item_id FROM stage_outputs")),
        "annotations": sorted((key, path_of[item], name, value) for key, item, name, value in
                              conn.execute("SELECT stage_key, item_id, name, value FROM annotations")),
        "units": sorted(conn.execute("SELECT stage_key, unit FROM stage_units")),
        "files": {p.relative_to(root).as_posix(): _file_fact(p)
                  for p in sorted((root / "stages").rglob("*")) if p.is_file()},
    }
    conn.close()
    return json.loads(json.dumps(facts))


def _file_fact(path: Path):
    """A file's sha256, or for an embedding batch (``.npy``) its rows: the tests compare those to
    float rounding (same_workspace in test_ray_cluster.py)."""
    if path.suffix == ".npy":
        import numpy as np

        return np.load(path).tolist()
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pipeline(root: Path, videos: list[Path], options, runner=None) -> None:
    ws = Workspace.open(root)
    handles = ingest_videos(ws, videos, options, workers=1, runner=runner)
    for handle in handles:
        embed_stage(ws, handle, method="pixels", batch_size=2, runner=runner)
    ws.close()


def _held_after_first_message(gate: str, work, payload, send, kept):
    """In a Ray worker: do the unit's work, but after its first message (a frame is written) say so
    (``<gate>.held-<pid>``) and wait until the test opens ``gate``: the kill scenario then kills a
    worker that is, by construction, in the middle of a unit."""
    def held_send(message) -> None:
        send(message)
        if message[0] != "progress" and not os.path.exists(gate):
            Path(f"{gate}.held-{os.getpid()}").touch()
            while not os.path.exists(gate):
                time.sleep(0.05)

    return work(payload, held_send, kept)


def _kill_a_held_worker(gate: Path, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL (by pid) the first Ray worker held in the middle of a unit, then open the gate."""
    while not stop.is_set():
        held = sorted(gate.parent.glob(f"{gate.name}.held-*"))
        if held:
            pid = int(held[0].name.rsplit("-", 1)[1])
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            gate.touch()
            return
        time.sleep(0.05)


def main(temp: Path, scenario: str) -> dict:
    import ray

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    port = _free_port()
    ray_temp = Path(tempfile.mkdtemp(prefix="lfray"))  # short: Ray's socket paths must fit
    nodes = [_start_node(["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"], ray_temp)]
    try:
        deadline = time.monotonic() + NODE_START_S
        while True:
            try:
                runner = RayRunner(f"127.0.0.1:{port}")
                break
            except (ConnectionError, RuntimeError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        _wait_for_nodes(ray, 1)
        names = ("same", "kill", "cancel", "comfy", "blind") if scenario == "all" else (scenario,)
        return {name: _scenario(name, temp / name, runner, nodes, port, ray_temp) for name in names}
    finally:
        ray.shutdown()
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            node.wait(timeout=60)
        shutil.rmtree(ray_temp, ignore_errors=True)


def _scenario(scenario: str, temp: Path, runner, nodes: list, port: int, ray_temp: Path) -> dict:
    import ray

    options = ingest.VideoIngestOptions(mode="scene", per_shot=2, long_side=160)
    temp.mkdir(parents=True, exist_ok=True)
    if scenario == "same":
        videos = [MEDIA / "signer_book.mkv", MEDIA / "signer_help.mkv", MEDIA / "big_buck_bunny_clip.mp4"]
        _pipeline(temp / "local", videos, options)
        _pipeline(temp / "ray", videos, options, runner)
        clip = _clip_on_actors(temp, MEDIA / "montage_6_shots.mp4", options, runner)
        # the montage's first three shots (cuts every 4 s), two frames each: three units for two slots
        sam2 = _sam2_on_actors(temp, MEDIA / "montage_6_shots.mp4", replace(options, end_s=11.9), runner)
        return {"local": dump(temp / "local"), "ray": dump(temp / "ray"), "clip": clip, "sam2": sam2}
    if scenario == "kill":
        videos = [MEDIA / "montage_6_shots.mp4", MEDIA / "city_street_cc0.mpg", MEDIA / "big_buck_bunny_clip.mp4"]
        stop, killed, gate = threading.Event(), [], temp / "gate"
        watcher = threading.Thread(target=_kill_a_held_worker, args=(gate, stop, killed), daemon=True)
        watcher.start()
        started = time.monotonic()
        try:
            _pipeline(temp / "ray", videos, options, _GatedRunner(runner, gate, _held_after_first_message, first=0))
        finally:
            stop.set()
        seconds = time.monotonic() - started
        _pipeline(temp / "local", videos, options)
        return {"killed": killed, "ray_s": seconds, "local": dump(temp / "local"), "ray": dump(temp / "ray")}
    if scenario == "cancel":
        return _cancel(temp, runner, options)
    if scenario == "comfy":
        return _comfy_nodes(temp, port)
    if scenario == "blind":
        covered = temp / "covered"  # a tmpfs hides this folder from the second node
        covered.mkdir()
        hide = ["unshare", "--mount", "--", "sh", "-c", f'mount -t tmpfs none "{covered}" && exec "$0" "$@"']
        nodes.append(_start_node([f"--address=127.0.0.1:{port}", "--num-cpus=1"], ray_temp, hide))
        _wait_for_nodes(ray, 2)
        root = covered / "ws"
        ws = Workspace.open(root)
        try:
            ingest_videos(ws, [MEDIA / "signer_book.mkv", MEDIA / "signer_help.mkv"], options, runner=runner)
            error = ""
        except WorkspaceNotShared as refused:
            error = str(refused)
        stages = ws.connection.execute("SELECT COUNT(*) FROM stages").fetchone()[0]
        return {"error": error, "stages": stages, "files": sorted(p.name for p in root.rglob("*") if p.is_file())}
    raise ValueError(scenario)


def _clip_on_actors(temp: Path, video: Path, options, runner) -> dict:
    """CLIP (a tiny random-weight open_clip) over one video's frames, one frame per batch, here and
    on the cluster: both workspaces, how many batches, and how many times the workers opened the
    model (one actor per CPU slot keeps it open)."""
    from clip_standin import save_tiny_local_dir

    from lora_foundry.models.clip_model import load_clip

    save_tiny_local_dir(temp / "models" / "tiny-clip")
    clip = load_clip(temp / "models" / "tiny-clip", "auto", "cpu")
    batches = 0
    for name, where in (("clip_local", None), ("clip_ray", runner)):
        ws = Workspace.open(temp / name)
        (frames,) = ingest_videos(ws, [video], options, workers=1)
        embed_stage(ws, frames, method="clip", clip=clip, batch_size=1, runner=where)
        batches = ws.count(frames)
        ws.close()
    return {"local": dump(temp / "clip_local"), "ray": dump(temp / "clip_ray"), "batches": batches,
            "opened": runner.loads}


def _sam2_on_actors(temp: Path, video: Path, options, runner) -> dict:
    """SAM 2 tracking (the tiny random-weight stand-in of test_sam2_tracking.py, two boxes on each
    shot's first frame) through every shot of one video, here and on the cluster: both
    workspaces, how many shots, and how many times the workers opened SAM 2 (one actor per slot)."""
    from test_sam2_tracking import PROMPTS, SHORT_MEMORY, save_tracking_standin

    from lora_foundry.models.sam2_model import open_sam2
    from lora_foundry.stages.layers import split, track_stage

    sam = open_sam2(save_tracking_standin(temp / "models" / "sam2"), "cpu", hydra_overrides=SHORT_MEMORY)
    split_options = split.SplitOptions(prompts=PROMPTS, mode="prompts", margin=8, plain_color="#00FF00")
    shots = 0
    for name, where in (("sam2_local", None), ("sam2_ray", runner)):
        ws = Workspace.open(temp / name)
        (frames,) = ingest_videos(ws, [video], options, workers=1)
        track_stage.track_layers(ws, frames, sam, split_options, runner=where)
        shots = len(track_stage.shots_in_order(ws.items(frames)))
        ws.close()
    return {"local": dump(temp / "sam2_local"), "ray": dump(temp / "sam2_ray"), "shots": shots,
            "opened": runner.loads}


class _CancelAfterFirstVideo:
    """A progress bar whose user presses cancel once the first video's frames are committed:
    the update that shows any progress raises, as ComfyUI's bar does on interrupt."""

    def update(self, done: int, total: int, preview=None) -> None:
        if done > 0:
            raise InterruptedError("cancelled by the user")


def _gated(gate: str, work, payload, send, kept):
    """In a Ray worker: wait until the test opens ``gate`` (a file), then do the unit's work.

    The cancel scenario holds every video but the first here, so the cancel always arrives while
    units are running, however quiet or loaded the machine is (no timing decides it)."""
    while not os.path.exists(gate):
        time.sleep(0.05)
    return work(payload, send, kept)


class _GatedRunner:
    """The Ray runner with units from number ``first`` on wrapped by ``hold`` (``_gated`` or
    ``_held_after_first_message``) until the test opens ``gate``."""

    def __init__(self, runner, gate: Path, hold=None, first: int = 1) -> None:
        self.runner, self.gate, self.hold, self.first = runner, gate, hold or _gated, first

    def check_shared(self, root: Path) -> None:
        self.runner.check_shared(root)

    def run(self, units, deliver, idle=None) -> None:
        held = [*units[:self.first], *(replace(unit, work=functools.partial(self.hold, str(self.gate), unit.work))
                                       for unit in units[self.first:])]
        self.runner.run(held, deliver, idle)


def _running_units() -> int:
    return sum(1 for entry in Path("/proc").iterdir() if entry.name.isdigit()
               and _cmdline(entry).startswith(b"ray::_run_unit"))


def _cmdline(entry: Path) -> bytes:
    try:
        return (entry / "cmdline").read_bytes()
    except OSError:
        return b""


def _cancel(temp: Path, runner, options) -> dict:
    """Cancel an ingest of the "same" videos once the first video is committed, while the other two
    wait at a gate; open the gate; then run the pipeline again to the end."""
    videos = [MEDIA / "signer_book.mkv", MEDIA / "signer_help.mkv", MEDIA / "big_buck_bunny_clip.mp4"]
    ws = Workspace.open(temp / "ray")
    gate = temp / "gate"
    started = time.monotonic()
    try:
        ingest_videos(ws, videos, options, progress=_CancelAfterFirstVideo(), runner=_GatedRunner(runner, gate))
        error = ""
    except InterruptedError as cancelled:
        error = str(cancelled)
    seconds = time.monotonic() - started
    units = ws.connection.execute("SELECT COUNT(*) FROM stage_units").fetchone()[0]
    ws.close()
    # the held tasks stay at the closed gate unless cancelled: wait for them to go, bounded only
    # against a hang (a force-cancel took over 20 s on a loaded 2-core machine; no timing decides)
    deadline = time.monotonic() + NODE_START_S
    while _running_units() and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _running_units()
    gate.touch()
    _pipeline(temp / "ray", videos, options, runner)
    return {"error": error, "cancel_s": seconds, "units_at_cancel": units, "running_after": left,
            "resumed": dump(temp / "ray")}


def _comfy_nodes(temp: Path, port: int) -> dict:
    """ray_comfy_scenario.py in a fresh process (the pack under a path-derived name, no PYTHONPATH):
    the node reports and both workspaces."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "LF_RAY_ADDRESS")}
    done = subprocess.run([sys.executable, str(REPO / "tests" / "ray_comfy_scenario.py"), f"127.0.0.1:{port}",
                           str(temp)], env=env, capture_output=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode()[-3000:])
    facts = json.loads(done.stdout.decode().strip().splitlines()[-1])
    for run in ("local", "ray"):
        facts[run]["workspace"] = dump(Path(facts[run].pop("root")))
    return facts


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])))
