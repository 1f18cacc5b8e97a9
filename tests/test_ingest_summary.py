"""What an ingest recorded, read as one typed summary: from a fresh run, a folder with broken files,
and a workspace written before the summary existed (its stage info must read unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

from lora_foundry.stages.frames import ingest_stage as ingest
from lora_foundry.stages.frames.ingest_summary import IngestSummary
from lora_foundry.workspace import Workspace

# An ingest_video stage's info exactly as earlier versions stored it (keys written by hand there).
STORED_BEFORE = {
    "plan": {"cuts": [75, 180], "samples": [[37, 1.48, 0], [127, 5.08, 1], [240, 9.6, 2]], "mode": "scene"},
    "video": {"path": "/data/clip.mp4", "width": 640, "height": 360, "fps": 25.0, "frame_count": 300,
              "duration_s": 12.0, "codec": "h264"},
    "missing_frames": [240],
}


def test_a_workspace_written_before_reads_unchanged(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    with ws.stage("ingest_video", 1, {"source": "old"}, label="frames of clip.mp4") as st:
        st.set_info(**STORED_BEFORE)
    summary = ingest.ingest_summary(ws, st.handle)
    assert (summary.cuts, summary.shots, summary.cut_times()) == ((75, 180), 3, [3.0, 7.2])
    assert summary.missing_frames == (240,) and summary.video.fps == 25.0 and summary.mode == "scene"
    assert summary.to_info() == STORED_BEFORE, "the layout written is the layout read"
    assert IngestSummary.from_info({}).to_info() == {}


def test_summary_of_a_real_ingest(tmp_path, media_dir):
    truth = json.loads((media_dir / "montage_6_shots.json").read_text())
    ws = Workspace.open(tmp_path / "ws")
    handle = ingest.ingest_video(ws, media_dir / "montage_6_shots.mp4",
                                 ingest.VideoIngestOptions(mode="interval", interval_s=1.0, long_side=160))
    summary = ingest.ingest_summary(ws, handle)
    assert summary.shots == len(truth["cuts_s"]) + 1 and summary.missing_frames == ()
    assert all(abs(found - want) < 0.1 for found, want in zip(summary.cut_times(), truth["cuts_s"], strict=True))
    assert [sample[0] for sample in summary.samples] == [item.frame_index for item in ws.items(handle)]
    assert summary.video.fps == truth["fps"]


def test_summary_names_the_skipped_files_of_a_folder(tmp_path):
    import numpy as np
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    Image.fromarray(np.full((32, 48, 3), 128, np.uint8)).save(folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    ws = Workspace.open(tmp_path / "ws")
    handle = ingest.ingest_folder(ws, folder)
    skipped = ingest.ingest_summary(ws, handle).skipped
    assert [Path(entry.file).name for entry in skipped] == ["broken.png"] and skipped[0].error
    assert ws.stage_info(handle)["skipped"] == [entry.as_dict() for entry in skipped]
