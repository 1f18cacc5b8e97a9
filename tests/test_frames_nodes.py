"""The spine's nodes, called the way ComfyUI calls them (pack imported by path, no ComfyUI)."""

from __future__ import annotations

import json

import pytest
import torch


@pytest.fixture()
def nodes(pack):
    return pack.nodes


def _load(nodes, media_dir, **overrides):
    options = dict(video=str(media_dir / "montage_6_shots.mp4"), workspace="spine", mode="scene",
                   interval_s=1.0, per_shot=2, start_s=0.0, end_s=0.0, max_frames=0, long_side=256,
                   frame_format="jpg")
    options.update(overrides)
    return nodes.frames.LoadVideoFrames().load(**options)


def test_video_to_dataset_through_the_nodes(nodes, media_dir, output_root):
    frames, report = _load(nodes, media_dir)
    assert json.loads(report)["shots"] == 6
    kept, filter_report = nodes.frames.FilterFrames().filter(frames, dedup=True, hash_threshold=6, blur=True,
                                                             blur_relative=0.35)
    stats = json.loads(filter_report)
    assert stats["kept"] + stats["dropped"] == json.loads(report)["frames"]
    preview = nodes.frames.PreviewFrames().preview(kept, max_thumbnails=4)
    assert 0 < len(preview["ui"]["images"]) <= 4
    result = nodes.dataset.WriteKohyaDataset().write(kept, "spine_set", "spinechar", "", 5, "png", 512, "error")
    dataset, toml_path, text = result["result"]
    assert dataset.image_count == stats["kept"]
    assert str(dataset.path).startswith(str(output_root))
    assert (dataset.path / "dataset.toml").is_file() and toml_path.endswith("dataset.toml")
    again = nodes.dataset.WriteKohyaDataset().write(kept, "spine_set", "spinechar", "", 5, "png", 512, "error")
    assert again["result"][0].path == dataset.path


def test_same_inputs_give_the_same_handle(nodes, media_dir, output_root):
    first, _ = _load(nodes, media_dir, mode="keyframes")
    second, _ = _load(nodes, media_dir, mode="keyframes")
    assert first == second


def test_is_changed_follows_the_file(nodes, media_dir, tmp_path, output_root):
    video = tmp_path / "input" / "clip.mkv"
    video.write_bytes((media_dir / "signer_help.mkv").read_bytes())
    before = nodes.frames.LoadVideoFrames.IS_CHANGED(video=str(video))
    video.write_bytes((media_dir / "signer_book.mkv").read_bytes())
    assert nodes.frames.LoadVideoFrames.IS_CHANGED(video=str(video)) != before


def test_frames_to_image_and_back(nodes, media_dir, output_root):
    frames, _ = _load(nodes, media_dir, mode="interval", interval_s=4.0)
    images, masks, captions = nodes.frames.FramesToImages().convert(frames, "batch", 0, 3, 128)
    assert images.shape == (3, 128, 128, 3) and images.dtype == torch.float32
    assert masks.shape == (3, 128, 128) and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    sheet, _, _ = nodes.frames.FramesToImages().convert(frames, "contact_sheet", 0, 6, 512)
    assert sheet.shape[0] == 1
    (added,) = nodes.frames.ImagesToFrames().convert(images, "spine", captions="a\nb\nc")
    back, _, back_captions = nodes.frames.FramesToImages().convert(added, "batch", 0, 3, 128)
    assert back_captions.splitlines() == ["a", "b", "c"]
    assert torch.allclose(back, images, atol=1 / 255 + 1e-6)


def test_missing_video_names_the_file(nodes, output_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        _load(nodes, tmp_path, video=str(tmp_path / "input" / "nope.mp4"))


def test_hostile_workspace_and_trigger_names_are_refused(nodes, media_dir, output_root):
    with pytest.raises(ValueError, match="workspace name"):
        _load(nodes, media_dir, workspace="../../x")
    frames, _ = _load(nodes, media_dir, mode="keyframes")
    with pytest.raises(ValueError, match="trigger"):
        nodes.dataset.WriteKohyaDataset().write(frames, "ok", "../../x", "", 5, "png", 512, "error")
    written = [p for p in output_root.rglob("*") if "datasets" in p.parts]
    assert written == [] or all(p.name == "datasets" or p.is_dir() and not any(p.iterdir()) for p in written)


def test_image_folder_is_reloaded_when_an_image_in_a_subfolder_changes(pack, tmp_path, output_root):
    """Recursive loading reads sub-folders, so a change there must make ComfyUI run the node again."""
    import os

    from PIL import Image

    tmp_path = tmp_path / "input"

    (tmp_path / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "sub" / "b.png")
    node = pack.nodes.frames.LoadImageFolder
    before = node.IS_CHANGED(folder=str(tmp_path), recursive=True)
    os.utime(tmp_path / "sub" / "b.png", ns=(1, 1))
    assert node.IS_CHANGED(folder=str(tmp_path), recursive=True) != before
    assert node.IS_CHANGED(folder=str(tmp_path / "missing"), recursive=True) == str(tmp_path / "missing")
