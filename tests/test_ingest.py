"""Real footage into a workspace: cuts, shots, resume after kill -9, bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from holds import hold_code, kill_when_held

from lora_foundry.media.video import MediaError
from lora_foundry.stages.frames import ingest_stage as ingest
from lora_foundry.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def test_scene_sampling_keeps_frames_from_every_shot_of_the_montage(tmp_path, media_dir):
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    ws = Workspace.open(tmp_path / "ws")
    handle = ingest.ingest_video(ws, media_dir / "montage_6_shots.mp4",
                                 ingest.VideoIngestOptions(mode="scene", per_shot=2, long_side=320))
    cuts = ws.stage_info(handle)["plan"]["cuts"]
    expected = [round(t * truth["fps"]) for t in truth["cuts_s"]]
    assert len(cuts) == len(expected)
    assert all(abs(found - want) <= 1 for found, want in zip(cuts, expected, strict=False))
    items = ws.items(handle)
    assert sorted({item.shot for item in items}) == list(range(6))
    for item in items:
        assert item.path.is_file() and max(item.width, item.height) == 320
        start = ([0] + cuts)[item.shot]
        end = (cuts + [truth["frames"]])[item.shot]
        assert start <= item.frame_index < end


def test_interval_sampling_in_one_pass_still_knows_every_frames_shot(tmp_path, media_dir):
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    ws = Workspace.open(tmp_path / "ws")
    handle = ingest.ingest_video(ws, media_dir / "montage_6_shots.mp4",
                                 ingest.VideoIngestOptions(mode="interval", interval_s=1.0, long_side=160))
    items = ws.items(handle)
    assert [item.frame_index for item in items] == [round(t * truth["fps"]) for t in range(21)]
    for item in items:
        expected_shot = sum(1 for cut in truth["cuts_s"] if item.time_s + 1e-6 >= cut)
        assert item.shot == expected_shot, (item.time_s, item.shot)


@pytest.mark.parametrize("options", [
    ingest.VideoIngestOptions(mode="scene", per_shot=1, end_s=8.0, long_side=160),
    ingest.VideoIngestOptions(mode="interval", interval_s=2.0, end_s=8.0, long_side=160),
], ids=["planned scene ingest", "one-pass interval ingest"])
def test_a_video_is_probed_once_per_ingest(tmp_path, media_dir, monkeypatch, options):
    """Probing opens the file and decodes a frame: the ingest does it once and passes it down."""
    from lora_foundry.media import video

    probes = []
    real_probe = video._probe_av
    monkeypatch.setattr(video, "_probe_av", lambda path: probes.append(path) or real_probe(path))
    ws = Workspace.open(tmp_path / "ws")
    handle = ingest.ingest_video(ws, media_dir / "montage_6_shots.mp4", options)
    assert ws.count(handle) >= 2
    assert len(probes) == 1, f"probed {len(probes)} times"


def _ingest_args(out: Path, video: Path, workspace: str) -> list[str]:
    return ["ingest", str(video), "--out", str(out), "--workspace", workspace, "--mode", "all", "--end", "20",
            "--long-side", "480"]


def _ingest_cmd(out: Path, video: Path, workspace: str) -> list[str]:
    return [sys.executable, "-c", _ingest_call(out, video, workspace)]


def _ingest_call(out: Path, video: Path, workspace: str) -> str:
    return f"from lora_foundry.cli import main; raise SystemExit(main({_ingest_args(out, video, workspace)!r}))"


def _done_units(ws_root: Path) -> int:
    db = ws_root / "manifest.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM stage_units").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _shots(ws_root: Path) -> dict[int, int]:
    with sqlite3.connect(ws_root / "manifest.sqlite") as conn:
        return dict(conn.execute("SELECT frame_index, shot FROM items").fetchall())


def _frame_files(ws_root: Path) -> dict[str, Path]:
    """Finished frames; a ``.tmp-*`` file is the frame that was in flight when the run was killed."""
    return {p.name: p for p in (ws_root / "stages").rglob("*.jpg") if not p.name.startswith(".tmp-")}


def test_kill_9_mid_ingest_then_rerun_equals_an_uninterrupted_run(tmp_path, media_dir):
    video = media_dir / "montage_6_shots.mp4"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    killed_root = tmp_path / "out" / "lora_foundry" / "workspaces" / "killed"
    marker = tmp_path / "held"
    # the child commits 120 frames, then holds in the 121st commit until it is killed there
    held = hold_code("lora_foundry.workspace.stage:StageRun.emit", 120, marker)
    kill_when_held([sys.executable, "-c", held + _ingest_call(tmp_path / "out", video, "killed")], marker, env)
    with sqlite3.connect(killed_root / "manifest.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    done_before = _done_units(killed_root)
    assert done_before == 120
    before = {name: path.stat().st_ino for name, path in _frame_files(killed_root).items()}

    subprocess.run(_ingest_cmd(tmp_path / "out", video, "killed"), env=env, check=True, capture_output=True)
    subprocess.run(_ingest_cmd(tmp_path / "out", video, "clean"), env=env, check=True, capture_output=True)

    resumed = _frame_files(killed_root)
    clean = _frame_files(tmp_path / "out" / "lora_foundry" / "workspaces" / "clean")
    assert len(clean) == 500 and sorted(resumed) == sorted(clean)
    assert all(resumed[name].read_bytes() == clean[name].read_bytes() for name in clean)
    assert _shots(killed_root) == _shots(tmp_path / "out" / "lora_foundry" / "workspaces" / "clean")
    assert len(set(_shots(killed_root).values())) == 6
    rewritten = [name for name, inode in before.items() if resumed[name].stat().st_ino != inode]
    assert len(rewritten) <= 1, f"finished frames were redone: {rewritten[:5]}"
    assert not list(killed_root.rglob(".tmp-*"))


def test_bad_videos_give_one_clear_error_naming_the_file(tmp_path, media_dir):
    real = (media_dir / "signer_book.mkv").read_bytes()
    cases = {
        "empty.mp4": b"",
        "text.mp4": b"this is not a video\n" * 20,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        ws = Workspace.open(tmp_path / f"ws_{name}")
        with pytest.raises(MediaError, match=name):
            ingest.ingest_video(ws, path, ingest.VideoIngestOptions(mode="interval"))
        assert not (tmp_path / f"ws_{name}" / "stages").exists() or not any(
            (tmp_path / f"ws_{name}" / "stages").rglob("*.jpg"))
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(real[: len(real) // 2])
    ws = Workspace.open(tmp_path / "ws_trunc")
    try:
        handle = ingest.ingest_video(ws, truncated, ingest.VideoIngestOptions(mode="interval", interval_s=0.2))
    except MediaError as error:
        assert "truncated.mkv" in str(error)
    else:
        assert 0 < ws.count(handle)
    outside = {p for p in tmp_path.iterdir() if not p.name.startswith("ws_")}
    assert outside == {tmp_path / n for n in (*cases, "truncated.mkv")}


def test_an_unknown_sampling_mode_is_refused_before_any_work(tmp_path, media_dir):
    ws = Workspace.open(tmp_path / "ws")
    with pytest.raises(ValueError, match="sampling mode"):
        ingest.ingest_video(ws, media_dir / "signer_book.mkv", ingest.VideoIngestOptions(mode="sometimes"))


def test_image_folder_skips_broken_and_huge_files_with_a_reason_and_keeps_the_rest(tmp_path, media_dir):
    from PIL import Image
    from test_media_images import _huge_png

    from lora_foundry.media.video import iter_frames

    folder = tmp_path / "images"
    folder.mkdir()
    frames = list(iter_frames(media_dir / "signer_book.mkv", long_side=160,
                              wanted=lambda i: i in {0, 30, 60}))
    for n, frame in enumerate(frames):
        Image.fromarray(frame.rgb).save(folder / f"good_{n}.png")
    (folder / "broken.png").write_bytes((folder / "good_0.png").read_bytes()[:200])
    _huge_png(folder / "huge.png", 30000, 30000)
    ws = Workspace.open(tmp_path / "ws")
    handle = ingest.ingest_folder(ws, folder)
    kept = ws.items(handle)
    assert sorted(item.meta["name"] for item in kept) == ["good_0.png", "good_1.png", "good_2.png"]
    skipped = {Path(entry["file"]).name: entry["error"] for entry in ws.stage_info(handle)["skipped"]}
    assert set(skipped) == {"broken.png", "huge.png"}
    assert "30000x30000" in skipped["huge.png"] and "broken.png" in skipped["broken.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "ws"]
