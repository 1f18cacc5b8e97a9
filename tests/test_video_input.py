"""The ``video`` input of LF Load Video Frames: a list of the input folder's videos (sub-folders too)
plus the bundled example, an upload button, and typed paths from older workflows still working."""

from __future__ import annotations

import json

import pytest


@pytest.fixture()
def input_dir(pack, tmp_path, monkeypatch):
    """A ComfyUI input folder with videos at the top, in a sub-folder, and files that are not videos."""
    root = tmp_path / "input"
    (root / "shots" / "day1").mkdir(parents=True)
    (root / ".cache").mkdir()
    for name in ("b.mp4", "a.MKV", "shots/day1/take.avi", "notes.txt", "still.png", ".cache/x.mp4"):
        (root / name).write_bytes(b"0")
    monkeypatch.setattr(pack.nodes._comfy, "input_root", lambda: root)
    return root


def test_the_list_holds_input_videos_with_subfolders_and_the_bundled_example(pack, input_dir):
    spec = pack.nodes.frames.LoadVideoFrames.INPUT_TYPES()["required"]["video"]
    choices, options = spec
    assert choices == ["a.MKV", "b.mp4", "shots/day1/take.avi", "lf_example_montage.mp4"]
    assert options["video_upload"] is True and options["default"] == "lf_example_montage.mp4"


def test_without_comfyui_the_list_is_the_bundled_example(pack):
    choices, _ = pack.nodes.frames.LoadVideoFrames.INPUT_TYPES()["required"]["video"]
    assert choices == ["lf_example_montage.mp4"]


def test_values_resolve_to_the_input_folder_then_the_bundled_example(pack, input_dir, tmp_path):
    resolve = pack.nodes._video_input.resolve_video
    assert resolve("shots/day1/take.avi") == input_dir / "shots" / "day1" / "take.avi"
    assert resolve("lf_example_montage.mp4").parent.name == "data"
    (input_dir / "lf_example_montage.mp4").write_bytes(b"mine")  # a user's file of that name wins
    assert resolve("lf_example_montage.mp4") == input_dir / "lf_example_montage.mp4"
    inside = input_dir / "shots" / "day1" / "take.avi"
    assert resolve(str(inside)) == inside  # a typed absolute path from a workflow saved as text
    typed = tmp_path / "elsewhere.webm"  # ... but only inside the folders workflows may read (issue 12)
    typed.write_bytes(b"0")
    with pytest.raises(pack.lora_foundry.read_roots.PathNotAllowedError, match="elsewhere.webm"):
        resolve(str(typed))


def test_validation_takes_typed_paths_and_names_a_missing_file(pack, input_dir):
    node = pack.nodes.frames.LoadVideoFrames
    assert node.VALIDATE_INPUTS(video="b.mp4") is True
    problem = node.VALIDATE_INPUTS(video="montage_6_shots.mp4")
    assert isinstance(problem, str) and "montage_6_shots.mp4" in problem


def test_the_bundled_example_loads_with_its_six_shots(pack, output_root):
    frames, report = pack.nodes.frames.LoadVideoFrames().load(
        video="lf_example_montage.mp4", workspace="bundled", mode="scene", interval_s=1.0, per_shot=1,
        start_s=0.0, end_s=0.0, max_frames=0, long_side=0, frame_format="jpg")
    facts = json.loads(report)
    assert facts["shots"] == 6 and facts["frames"] == 6


def test_a_node_run_logs_one_line_not_one_per_frame(pack, output_root, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="lora_foundry"):
        pack.nodes.frames.LoadVideoFrames().load(
            video="lf_example_montage.mp4", workspace="one_line", mode="interval", interval_s=0.5, per_shot=1,
            start_s=0.0, end_s=0.0, max_frames=0, long_side=64, frame_format="jpg")
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("lora_foundry")]
    assert len(ours) == 1 and ours[0].startswith("LoRA Foundry: LF Load Video Frames done in"), ours
