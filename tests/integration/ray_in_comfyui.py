"""A real ComfyUI whose operator configured a local Ray cluster: the spine and an embedding
workflow give the bytes of a run on this machine (test_ray_in_comfyui.py).

Started by the test as ``unshare --net --mount -- python ray_in_comfyui.py COMFY_DIR COMFY_PYTHON
TMP``: in a private network namespace with only a loopback interface, so neither the Ray
cluster nor ComfyUI can be reached from beyond 127.0.0.1 (Ray's servers bind every interface;
here there is only one). It starts a Ray head (2 CPUs, dashboard off) with ComfyUI's Python, then
ComfyUI twice on the same input folder: once as shipped, once with ``user/lora_foundry.json``
naming the cluster (the operator's configuration; never a workflow input). Both queue the spine
(``video_to_kohya_dataset.json`` on the bundled clip) and LF Load Video Frames -> LF Embed
Frames -> LF Cluster Frames. Prints one JSON line: both output trees, the node reports, how many
Ray tasks ran, and every listening socket with the network interfaces of the namespace.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from comfy_api import ComfyServer, free_port  # noqa: E402
from ui_to_api import ui_to_api  # noqa: E402

CLIP = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"
SPINE = REPO / "example_workflows" / "video_to_kohya_dataset.json"


def embedding_prompt(spine: dict) -> dict:
    """The spine's loader, then pixel embeddings in batches of 4, then clustering by scene."""
    loader = next(key for key, node in spine.items() if node["class_type"] == "LF_LoadVideoFrames")
    return {
        "1": spine[loader],
        "2": {"class_type": "LF_EmbedFrames", "inputs": {"frames": ["1", 0], "method": "pixels", "batch_size": 4}},
        "3": {"class_type": "LF_ClusterFrames", "inputs": {
            "frames": ["2", 0], "mode": "scenes", "min_cluster_size": 2, "scene_similarity": 0.9,
            "style_min_share": 0.1, "style_min_probability": 0.5, "backend": "auto"}},
    }


def tree(root: Path) -> dict:
    """Every file under ``root`` by relative path: sha256, or for a workspace manifest its rows.
    The dataset's TOML and JSON name their own folder by its absolute path: ``root`` is replaced
    by ``<output>`` there before hashing (the two servers have different output folders), and the
    dataset record's ``written_at`` and per-image ``key`` (a hash of that path) are left out."""
    facts = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.relative_to(root).as_posix()
        if path.name == "manifest.sqlite":
            facts[name] = manifest_rows(path)
        elif not path.name.startswith("manifest.sqlite"):
            data = path.read_bytes()
            if path.suffix in (".toml", ".json"):
                data = data.replace(str(root).encode(), b"<output>")
            if path.name == "lora_foundry_dataset.json":  # the writer's record, but for when it was written
                record = json.loads(data)  # and each image's key (a hash of its source's absolute path)
                record.pop("written_at", None)
                for image in record.get("images", []):
                    image.pop("key", None)
                data = json.dumps(record, sort_keys=True).encode()
            facts[name] = hashlib.sha256(data).hexdigest()
    return facts


def manifest_rows(path: Path) -> dict:
    conn = sqlite3.connect(path)
    path_of = dict(conn.execute("SELECT id, relpath FROM items"))
    rows = {
        "stages": sorted(conn.execute("SELECT key, name, params, inputs, status, info FROM stages")),
        "items": sorted(conn.execute("SELECT relpath, kind, parent, source, frame_index, time_s, shot, width, "
                                     "height, meta, stage_key FROM items")),
        "annotations": sorted((key, path_of[item], name, value) for key, item, name, value in
                              conn.execute("SELECT stage_key, item_id, name, value FROM annotations")),
        "units": sorted(conn.execute("SELECT stage_key, unit FROM stage_units")),
    }
    conn.close()
    return json.loads(json.dumps(rows))


def listening() -> list[str]:
    """Local addresses of every listening TCP socket in this namespace (/proc/net/tcp, tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":
                address = local.split(":")[0]
                found.add(_address(address, width))
    return sorted(found)


def _address(hex_address: str, width: int) -> str:
    raw = bytes.fromhex(hex_address)
    if width == 8:
        return ".".join(str(b) for b in raw[::-1])
    words = [raw[i:i + 4][::-1].hex() for i in range(0, 16, 4)]
    return ":".join("".join(words)[i:i + 4] for i in range(0, 32, 4))


def run_comfyui(comfy_dir: Path, python: Path, work: Path, inputs: Path, ray_address: str | None) -> dict:
    server = ComfyServer(comfy_dir, python, work)
    server.dirs["input"] = inputs
    if ray_address:
        server.dirs["user"].mkdir(parents=True, exist_ok=True)
        (server.dirs["user"] / "lora_foundry.json").write_text(json.dumps({"ray_address": ray_address}))
    with server:
        info = server.client.object_info()
        spine = ui_to_api(json.loads(SPINE.read_text(encoding="utf-8")), info)
        entries = [server.client.run(prompt, timeout=1200) for prompt in (spine, embedding_prompt(spine))]
        sockets = listening()
        log = server.log()
    statuses = [entry["status"]["status_str"] for entry in entries]
    if statuses != ["success", "success"]:
        raise RuntimeError(f"workflows ended {statuses}:\n{json.dumps(entries)[-3000:]}\n{log[-3000:]}")
    # by node id: ComfyUI 0.8 may run independent output nodes in another order from run to run
    reports = json.loads(json.dumps([{node: output.get("text") for node, output in sorted(entry["outputs"].items())}
                                     for entry in entries]).replace(str(server.dirs["output"]), "<output>"))
    return {"tree": tree(server.dirs["output"]), "reports": reports, "listening": sockets}


def main(comfy_dir: Path, python: Path, temp: Path) -> dict:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    interfaces = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    inputs = temp / "input"
    inputs.mkdir(parents=True)
    shutil.copyfile(CLIP, inputs / CLIP.name)
    port = free_port()
    ray_temp = Path(tempfile.mkdtemp(prefix="lfrc"))  # short: Ray's socket paths must fit
    head = subprocess.Popen([str(python.with_name("ray")), "start", "--block", "--head", f"--port={port}",
                             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=false",
                             "--disable-usage-stats", f"--temp-dir={ray_temp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        local = run_comfyui(comfy_dir, python, temp / "local", inputs, None)
        workers_before = _ray_workers(ray_temp)
        ray = run_comfyui(comfy_dir, python, temp / "ray", inputs, f"127.0.0.1:{port}")
        workers = _ray_workers(ray_temp) - workers_before
    finally:
        head.send_signal(signal.SIGTERM)
        head.wait(timeout=120)
        shutil.rmtree(ray_temp, ignore_errors=True)
    return {"local": local, "ray": ray, "interfaces": [line.split(":")[1].strip() for line in interfaces.splitlines()],
            "ray_workers": workers}


def _ray_workers(ray_temp: Path) -> int:
    """Worker processes the Ray cluster has started so far (each leaves its log file)."""
    return len(list(ray_temp.glob("session_*/logs/python-core-worker-*.log")))


if __name__ == "__main__":
    started = time.monotonic()
    facts = main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
    facts["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(facts))
