"""The video-LoRA nodes called the way ComfyUI calls them (pack imported by path, no ComfyUI): the
bundled montage -> clips -> filter -> captions -> musubi dataset -> musubi-tuner stand-in."""

from __future__ import annotations

import json
import sys

import pytest
from fixtures_fake_musubi import make_fake_musubi

from lora_foundry.musubi import install as musubi_install


@pytest.fixture()
def musubi(tmp_path, output_root, monkeypatch):
    fake = make_fake_musubi(tmp_path / "ext")
    config = output_root / ".user" / "lora_foundry" / "musubi.json"
    config.write_text(json.dumps({
        "musubi_tuner": str(fake.root), "python": sys.executable, "accelerate": False,
        "models": {preset: {role: str(path) for role, path in roles.items()} for preset, roles in fake.models.items()}}))
    monkeypatch.delenv(musubi_install.MUSUBI_ENV, raising=False)
    monkeypatch.delenv(musubi_install.PYTHON_ENV, raising=False)
    monkeypatch.delenv("FAKE_MUSUBI_MODE", raising=False)
    return fake


def test_film_to_trained_video_lora_through_the_nodes(pack, output_root, musubi, monkeypatch):
    nodes = pack.nodes
    sent = []
    monkeypatch.setattr(nodes.training._comfy, "send_event", lambda event, data: sent.append((event, data)))
    frames, _ = nodes.frames.LoadVideoFrames().load(
        video="lf_example_montage.mp4", workspace="film", mode="scene", interval_s=1.0, per_shot=2, start_s=0.0,
        end_s=0.0, max_frames=0, long_side=256, frame_format="jpg")
    cut = nodes.clips.CutClips().cut(frames, "wan", 2.0, 2.2, True, 4, x264_preset="ultrafast")
    clips, report = cut["result"]
    assert len(cut["ui"]["images"]) == 6 and report.startswith("6 wan clips")
    kept, _ = nodes.clips.FilterClips().filter(clips, 0.4, True, True, True)["result"]
    captioned, caption_report = nodes.clips.CaptionClips().caption(
        kept, "ohwx", "woman", "character", "{head}, {action}, {tags}, {camera}")["result"]
    assert caption_report.count(": ohwx woman, ") >= 1
    written = nodes.video_training.WriteVideoDataset().write(captioned, "film_set", "ohwx", "woman", 1)
    dataset, toml_path, dataset_report = written["result"]
    assert dataset.clips >= 1 and toml_path.endswith("dataset.toml")
    # the report reaches every client of the server (history): the folder as ComfyUI names it
    assert json.loads(dataset_report)["path"] == "output/lora_foundry/datasets/film_set"
    assert str(output_root) not in dataset_report + written["ui"]["text"][0]
    result = nodes.video_training.MusubiTrain().train(dataset, "wan21_t2v_1.3B", "film_lora", 16, 2e-4, 1, 42)
    lora_name, lora_path, train_report = result["result"]
    assert lora_name == "lora_foundry/film_lora.safetensors" and json.loads(train_report)["status"] == "success"
    assert str(output_root) in lora_path
    assert [data["step"] for event, data in sent if event == "lora_foundry.loss"] == list(range(1, dataset.clips + 1))

    # Queued again once ComfyUI has dropped its cache: refused by name before musubi runs a step,
    # not after the training (the published LoRA is never overwritten).
    sent.clear()
    with pytest.raises(pack.lora_foundry.kohya.preflight.PreflightError,
                       match="a LoRA named film_lora.safetensors already exists in .*; choose another output name"):
        nodes.video_training.MusubiTrain().train(dataset, "wan21_t2v_1.3B", "film_lora", 16, 2e-4, 1, 42)
    assert sent == []


def test_clips_cut_for_wan_are_refused_by_the_hunyuan_preset(pack, output_root, musubi):
    nodes = pack.nodes
    frames, _ = nodes.frames.LoadVideoFrames().load(
        video="lf_example_montage.mp4", workspace="film", mode="scene", interval_s=1.0, per_shot=2, start_s=0.0,
        end_s=0.0, max_frames=0, long_side=256, frame_format="jpg")
    clips, _ = nodes.clips.CutClips().cut(frames, "wan", 2.0, 2.2, True, 1, x264_preset="ultrafast")["result"]
    dataset = nodes.video_training.WriteVideoDataset().write(clips, "wan_set", "ohwx", "woman", 1)["result"][0]
    with pytest.raises(ValueError, match="at 16 fps but hunyuan_video trains at 24 fps"):
        nodes.video_training.MusubiTrain().train(dataset, "hunyuan_video", "x", 16, 2e-4, 1, 42)


def test_a_literal_in_a_clips_socket_is_refused(pack, output_root):
    with pytest.raises(TypeError, match="must be connected to a clips output"):
        pack.nodes.clips.FilterClips().filter("/etc", 0.4, True, True, True)


def test_the_kohya_dataset_report_shows_its_folder_as_comfyui_names_it(pack, output_root):
    """LF Write Kohya Dataset's report and panel reach every client of the server (history): the
    dataset's folder is shown under ``output/``, never as the server's absolute path."""
    nodes = pack.nodes
    frames, _ = nodes.frames.LoadVideoFrames().load(
        video="lf_example_montage.mp4", workspace="film", mode="interval", interval_s=4.0, per_shot=1, start_s=0.0,
        end_s=8.0, max_frames=0, long_side=128, frame_format="jpg")
    written = nodes.dataset.WriteKohyaDataset().write(frames, "hero", "ohwx", "woman", 1, "jpg", 512, "new_version")
    text = written["result"][2]
    assert json.loads(text.split("\n}\n")[0] + "}")["path"] == "output/lora_foundry/datasets/hero"
    assert str(output_root) not in text + written["ui"]["text"][0]
