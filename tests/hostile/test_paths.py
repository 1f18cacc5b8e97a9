"""A stranger's workflow reads nothing outside the server's allowed folders.

Every node input that takes a path (LF Load Image Folder ``folder``, LF Load Video Frames
``video``, LF Select Clusters ``reference_images``, LF Build Captions ``tags_folder``, LF Kohya
Train LoRA ``dataset_path``) is tried with absolute paths, ``..``, symlinks and odd text; every
custom socket is tried with a literal value. Each must fail with an error naming the input and the
value, read nothing from ``private/`` and write nothing outside the roots (the ``server`` guard).
"""

from __future__ import annotations

import json
import os

import pytest

OUTSIDE = "is outside the folders workflows may read"


def load_folder(server, folder: str, recursive: bool = False):
    return server.nodes.frames.LoadImageFolder().load(folder, "hostile", 0, recursive)


def load_video(server, video: str):
    return server.nodes.frames.LoadVideoFrames().load(video, "hostile", "interval", 1.0, 1, 0.0, 0.0, 2, 64, "jpg")


def fake_frames(server):
    return server.pack.lora_foundry.workspace.Handle(str(server.output / "nowhere"), "0" * 64, "frames")


@pytest.mark.parametrize("value", ["{private}", "{private}/photos", "../private", "../../../../../../{private}",
                                   "sub/../../private", "{input}/../private", "file://{private}"])
def test_image_folder_outside_the_roots_is_refused(server, value):
    value = value.format(private=server.private, input=server.input)
    with pytest.raises((ValueError, FileNotFoundError), match="folder") as refused:
        load_folder(server, value)
    assert OUTSIDE in str(refused.value) or "no such folder" in str(refused.value)
    # the value as typed, with a server folder it starts with shown relative to ComfyUI's (issue 23)
    shown = value.replace(str(server.input), "input")
    assert repr(shown) in str(refused.value)
    assert str(server.input) not in str(refused.value)
    assert not server.secret_leaked()


def test_image_folder_symlinked_out_of_input_is_refused(server):
    (server.input / "innocent").symlink_to(server.private, target_is_directory=True)
    with pytest.raises(ValueError, match=f"folder 'innocent' {OUTSIDE}"):
        load_folder(server, "innocent")
    assert not server.secret_leaked()


def test_recursive_listing_never_leaves_the_roots(server):
    album = server.input / "album"
    server.picture(album / "mine.png", (90, 90, 90))
    (album / "sub").mkdir()
    (album / "sub" / "root").symlink_to("/", target_is_directory=True)
    (album / "sub" / "private").symlink_to(server.private, target_is_directory=True)
    (album / "linked.png").symlink_to(server.secret_picture)
    frames, report = load_folder(server, "album", recursive=True)
    assert json.loads(report)["images"] == 1
    assert not server.secret_leaked()
    changed = server.nodes.frames.LoadImageFolder.IS_CHANGED(folder="album", recursive=True)
    assert "secret" not in changed and "mine.png" in changed


def test_is_changed_does_not_list_a_folder_outside(server):
    state = server.nodes.frames.LoadImageFolder.IS_CHANGED(folder=str(server.private / "photos"), recursive=True)
    assert state == str(server.private / "photos")


def test_a_path_with_control_characters_is_refused(server):
    with pytest.raises(ValueError, match="control characters"):
        load_folder(server, "album\x00/../../private")


def test_home_is_not_expanded(server):
    with pytest.raises(FileNotFoundError, match="folder '~' : no such folder|folder '~': no such folder"):
        load_folder(server, "~")


@pytest.mark.parametrize("value", ["{private}/secret.png", "../private/secret.png", "/etc/passwd"])
def test_video_outside_the_roots_is_refused(server, value):
    value = value.format(private=server.private)
    with pytest.raises(ValueError, match=f"video {value!r} {OUTSIDE}".replace("(", r"\(")):
        load_video(server, value)


def test_video_symlinked_out_of_input_is_refused(server):
    (server.input / "clip.mp4").symlink_to(server.private / "secret.png")
    with pytest.raises(ValueError, match=f"video 'clip.mp4' {OUTSIDE}"):
        load_video(server, "clip.mp4")


def test_video_is_changed_does_not_stat_outside(server):
    value = str(server.private / "secret.png")
    assert server.nodes.frames.LoadVideoFrames.IS_CHANGED(video=value) == value


@pytest.mark.parametrize("value", ["{private}/secret.png", "../private/secret.png", "link.png"])
def test_reference_images_outside_the_roots_are_refused(server, value):
    (server.input / "link.png").symlink_to(server.secret_picture)
    value = value.format(private=server.private)
    with pytest.raises(ValueError, match=f"reference_images {value!r} {OUTSIDE}"):
        server.nodes.clusters.SelectClusters().select(fake_frames(server), "reference", "", 1, "", f"\n{value}\n")


@pytest.mark.parametrize("value", ["{private}", "../private", "tags_link"])
def test_tags_folder_outside_the_roots_is_refused(server, value):
    (server.input / "tags_link").symlink_to(server.private, target_is_directory=True)
    value = value.format(private=server.private)
    with pytest.raises(ValueError, match=f"tags_folder {value!r} {OUTSIDE}"):
        server.nodes.captions.BuildCaptions().build(fake_frames(server), "character", "sks", "", "SDXL", 0.4,
                                                    tags_folder=value)
    assert server.nodes.captions.BuildCaptions.IS_CHANGED(tags_folder=value) == value


def test_operator_roots_come_from_the_user_folder_only(server):
    """An operator may list another folder; then (and only then) it can be read."""
    with pytest.raises(ValueError, match=OUTSIDE):
        load_folder(server, str(server.private / "photos"))
    config = server.output / ".user" / "lora_foundry" / "read_roots.json"
    listed = json.loads(config.read_text())["read_roots"]
    config.write_text(json.dumps({"read_roots": [*listed, str(server.private / "photos")]}))
    _, report = load_folder(server, str(server.private / "photos"))
    assert json.loads(report)["images"] == 1
    with pytest.raises(ValueError, match=OUTSIDE):
        load_folder(server, str(server.private))


def test_a_refusal_shows_the_operators_read_roots_by_number_not_by_path(server):
    """The refusal lists the folders a workflow may read; the operator's own read roots (from
    read_roots.json) appear as ``<read root N>``, never as absolute server paths (issue 23)."""
    config = server.output / ".user" / "lora_foundry" / "read_roots.json"
    config.write_text(json.dumps({"read_roots": [str(server.private / "photos")]}))
    with pytest.raises(ValueError, match=OUTSIDE) as refused:
        load_folder(server, "../private")
    assert "<read root 1>" in str(refused.value)
    assert str(server.private) not in str(refused.value) and str(server.tmp) not in str(refused.value)


def test_a_folder_inside_input_still_loads(server):
    server.picture(server.input / "ok" / "a.png")
    os.symlink(server.input / "ok" / "a.png", server.input / "ok" / "b.png")  # a link that stays inside
    _, report = load_folder(server, "ok")
    assert json.loads(report)["images"] == 2


def test_literal_dataset_is_refused_and_nothing_is_written(server):
    training = server.nodes.training
    with pytest.raises(TypeError, match="LF Kohya Train LoRA: input 'dataset' must be connected to the dataset "
                                        "output of LF Write Kohya Dataset; got str"):
        training.KohyaTrainLoRA().train("sd15", "character", "base.safetensors", "evil", "lora", 4, 0.0, 0, 0.0,
                                        64, 1, True, False, dataset=str(server.private))
    assert not list(server.output.rglob("dataset.toml")) and not list(server.output.rglob("*.toml"))


@pytest.mark.parametrize("literal", ["/some/dir", {"workspace": "/", "stage_key": "x"}, ["a", "b"], 3])
def test_literal_frames_are_refused(server, literal):
    with pytest.raises(TypeError, match="LF Preview Frames: input 'frames' must be connected to an LF_FRAMES"):
        server.nodes.frames.PreviewFrames().preview(literal, 4)


def test_literal_subsets_and_model_are_refused(server):
    frames = fake_frames(server)
    with pytest.raises(TypeError, match="input 'subsets' must be connected"):
        server.nodes.dataset.WriteKohyaDataset().write(frames, "x", "sks", "", 1, "png", 512, "error",
                                                       subsets=[str(server.private)])
    with pytest.raises(TypeError, match="input 'clip_model' must be connected"):
        server.nodes.clusters.SelectClusters().select(frames, "text", "", 1, "cat", "", "ViT-B-32")


def test_literal_lora_stack_cannot_reach_outside_models(server, monkeypatch):
    compose = server.nodes.compose
    loras = server.tmp / "models" / "loras"
    loras.mkdir(parents=True)
    monkeypatch.setattr(compose._comfy, "model_folder_paths", lambda folder: [loras] if folder == "loras" else [])
    with pytest.raises(TypeError, match="input 'lora_stack' must be connected"):
        compose.MergeLoRAStack().merge("../../private/secret.txt", "m", "concat", 4, "fp16", False)
    hostile = [["../../private/secret.txt", 1.0, 1.0], [str(server.private / "secret.txt"), 1.0, 1.0]]
    with pytest.raises(FileNotFoundError, match="2 LoRA file.s. not found: '../../private/secret.txt', "):
        compose.MergeLoRAStack().merge(hostile, "m", "concat", 4, "fp16", False)


@pytest.mark.parametrize("value", ["{private}", "../../../private", "/"])
def test_dataset_path_outside_the_datasets_is_refused(server, value):
    value = value.format(private=server.private)
    with pytest.raises(ValueError, match="dataset"):
        server.nodes.training.KohyaTrainLoRA().train("sd15", "character", "base.safetensors", "evil", "lora", 4, 0.0,
                                                     0, 0.0, 64, 1, True, False, dataset_path=value)
    assert not list(server.output.rglob("*.toml"))
