"""The README's first command: ``lora-foundry demo`` on the bundled footage, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_demo_writes_a_dataset_and_reports_each_pass_once(tmp_path, media_dir):
    done = subprocess.run([sys.executable, "-m", "lora_foundry.cli", "demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    dataset = Path(result["dataset"])
    images = [p for p in (dataset / "img").rglob("*") if p.suffix in {".png", ".jpg", ".webp"}]
    assert result["images"] == len(images) > 0
    assert all(p.with_suffix(".txt").is_file() for p in images) and (dataset / "dataset.toml").is_file()
    progress = done.stderr.replace("\r", "\n").splitlines()
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    assert not any(line.startswith("find cuts") for line in progress)  # scene mode decodes once
    extraction = [line.split(": ")[1].split("/") for line in progress if line.startswith("extract frames: ")]
    assert [done for done, total in extraction if done == total] == [str(truth["frames"])]  # its last frame, once
    cuts = ", ".join(str(cut) for cut in truth["cuts_s"])
    assert f"cuts at [{cuts}] s ({len(truth['cuts_s']) + 1} shots)" in done.stdout


def test_demo_without_its_video_suggests_a_command_that_works_outside_comfyui(tmp_path, capsys):
    """Outside ComfyUI every command that writes needs ``--out``: the suggested command has it (it
    suggested ``lora-foundry demo my_clip.mp4``, which is refused for lacking ``--out``)."""
    from lora_foundry.cli import main

    assert main(["demo", str(tmp_path / "missing.mp4")]) == 2
    err = capsys.readouterr().err
    assert "missing.mp4" in err and "lora-foundry demo my_clip.mp4 --out " in err
    assert not list(tmp_path.iterdir())
