"""kill -9 of the demo and of the dataset writer: the next run leaves no staging folder and every
workspace manifest passes ``PRAGMA integrity_check``.

The processes are the real CLI demo and the real writer, killed with SIGKILL. To kill the writer
while its staging folder exists (a small dataset is written in milliseconds), the child holds at
its first caption write until it is killed (``tests/holds.py``); nothing else changes, and no
timing decides where the kill lands.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from holds import hold_code, kill_when_held

pytestmark = pytest.mark.usefixtures("no_hang")
REPO = Path(__file__).resolve().parents[2]
HELD_AT_FIRST_CAPTION = "lora_foundry.kohya.subsets:atomic_write_text", 0
HELD_AT_FIFTH_FRAME = "lora_foundry.workspace.stage:StageRun.emit", 5


def _clip(path: Path, frames: int = 40) -> Path:
    """A short video of distinct noisy scenes (so the demo's filter keeps frames)."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for _ in range(frames):
            picture = rng.integers(0, 255, (64, 96, 3), np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _demo(video: Path, out: Path, hold: str = "") -> list[str]:
    call = f"from lora_foundry.cli import main; main(['demo', {str(video)!r}, '--out', {str(out)!r}, " \
           "'--mode', 'interval', '--interval', '0.1', '--long-side', '64'])"
    return [sys.executable, "-c", hold + call]


def _writer(out: Path, hold: str = "") -> list[str]:
    script = (
        "import numpy as np; from pathlib import Path\n"
        "from lora_foundry.kohya import dataset\n"
        "from lora_foundry.workspace import NewItem, Workspace, workspace_path\n"
        f"out = Path({str(out)!r}); ws = Workspace.open(workspace_path(out, 'writer'))\n"
        "rng = np.random.default_rng(0)\n"
        "with ws.stage('src', 1, {}) as st:\n"
        "    for position, unit in st.pending_units([str(i) for i in range(30)]):\n"
        "        rel = st.write_image(rng.integers(0, 255, (48, 64, 3), np.uint8), f'{position}.png')\n"
        "        st.emit(unit, position, [NewItem(kind='frame', relpath=rel, width=64, height=48)])\n"
        "dataset.write_kohya_dataset(ws, st.handle, dataset.DatasetSpec(name='killed', trigger='sks', "
        "resolution=64), dataset.datasets_root(out))\n")
    return [sys.executable, "-c", hold + script]


def _staging(out: Path) -> list[Path]:
    root = out / "lora_foundry" / "datasets"
    return [p for p in root.glob(".tmp-*")] if root.is_dir() else []


def _integrity(out: Path) -> list[str]:
    results = []
    for manifest in (out / "lora_foundry" / "workspaces").rglob("manifest.sqlite"):
        with sqlite3.connect(manifest) as conn:
            results.append(conn.execute("PRAGMA integrity_check").fetchone()[0])
    return results


def _kill_when_held(build, tmp_path: Path, where: tuple[str, int]) -> None:
    marker = tmp_path / "held"
    kill_when_held(build(hold_code(*where, marker)), marker, {**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.parametrize("runner", ["demo", "writer"])
def test_kill_9_during_the_dataset_write_leaves_no_staging_after_the_next_run(tmp_path, runner):
    out = tmp_path / "out"
    video = _clip(tmp_path / "clip.mp4")
    build = (lambda hold="": _demo(video, out, hold)) if runner == "demo" else (lambda hold="": _writer(out, hold))
    _kill_when_held(build, tmp_path, HELD_AT_FIRST_CAPTION)
    left = _staging(out)
    assert left, "the kill should have caught the writer with its staging folder"
    assert set(_integrity(out)) == {"ok"}
    subprocess.run(build(), env={**os.environ, "PYTHONPATH": str(REPO)}, check=True, capture_output=True,
                   timeout=60)
    assert _staging(out) == [] and not any(p.exists() for p in left)
    assert set(_integrity(out)) == {"ok"}
    datasets = [p.name for p in (out / "lora_foundry" / "datasets").iterdir()]
    assert datasets == (["demo"] if runner == "demo" else ["killed"])


def test_kill_9_during_the_demo_ingest_keeps_the_manifest_sound(tmp_path):
    out = tmp_path / "out"
    video = _clip(tmp_path / "clip.mp4", frames=80)
    _kill_when_held(lambda hold="": _demo(video, out, hold), tmp_path, HELD_AT_FIFTH_FRAME)
    assert set(_integrity(out)) == {"ok"}
    subprocess.run(_demo(video, out), env={**os.environ, "PYTHONPATH": str(REPO)}, check=True,
                   capture_output=True, timeout=60)
    assert set(_integrity(out)) == {"ok"} and _staging(out) == []
    assert not [p for p in out.rglob(".tmp-*")]
