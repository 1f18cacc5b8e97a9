"""Captions and datasets a user's data must never be silently spoiled by.

Multi-line triggers and templates, empty and malformed templates, tag files in every encoding
Windows and taggers produce, hostile dataset and workspace names, two writers of one dataset at
once, staging folders of dead writers, and a CLI facing a busy workspace.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from lora_foundry.kohya import dataset, staging
from lora_foundry.workspace import NewItem, Workspace
from lora_foundry.workspace.files import writer_lock


def tagged_frames(root, tags=("brown hair", "smiling"), n: int = 2):
    ws = Workspace.open(root)
    rng = np.random.default_rng(0)
    with ws.stage("src", 1, {"n": n}) as st:
        for position, unit in st.pending_units([str(i) for i in range(n)]):
            rel = st.write_image(rng.integers(0, 255, (48, 64, 3), np.uint8), f"{position:04d}.png")
            st.emit(unit, position, [NewItem(kind="image", relpath=rel, width=64, height=48,
                                             annotations={"tags": list(tags)})])
    return ws, st.handle


def write(server, frames, **overrides):
    values = dict(dataset_name="hero", trigger="sks", class_word="", repeats=2, image_format="png", resolution=64,
                  if_exists="error", caption_template="{trigger}, {class_word}")
    values.update(overrides)
    return server.nodes.dataset.WriteKohyaDataset().write(frames, **values)


def captions_written(server) -> list[str]:
    return [p.read_text("utf-8") for p in sorted(server.output.rglob("img/*/*.txt"))]


@pytest.mark.parametrize("trigger", ["sks\nwoman", "sks\rwoman", "sks\u2028x", "sk\x1bs"])
def test_a_multi_line_trigger_is_refused_by_the_caption_builder(server, trigger):
    _, frames = tagged_frames(server.output / "ws")
    with pytest.raises(ValueError, match="trigger .* contains a line break or control character"):
        server.nodes.captions.BuildCaptions().build(frames, "character", trigger, "", "SDXL", 0.4)


@pytest.mark.parametrize("field,value,message", [
    ("trigger", "sks\nwoman", "trigger .* line break"),
    ("caption_template", "{trigger}\n{class_word}", "caption_template .* line break"),
    ("caption_template", "", "caption_template is empty"),
    ("caption_template", "   ", "caption_template is empty"),
    ("caption_template", "{0}", r"caption_template '\{0\}': only \{trigger\} and \{class_word\}"),
    ("caption_template", "{trigger} {nope}", r"caption_template .*only \{trigger\} and \{class_word\}"),
    ("caption_template", "a photo", r"caption_template 'a photo' has no \{trigger\}"),
    ("dataset_name", "", "dataset name is empty"),
    ("dataset_name", "x" * 500, "longer than"),
    ("dataset_name", "../../private", "dataset name"),
])
def test_bad_writer_inputs_fail_naming_the_input_and_write_nothing(server, field, value, message):
    _, frames = tagged_frames(server.output / "ws")
    with pytest.raises(ValueError, match=message):
        write(server, frames, **{field: value})
    assert not (server.output / "lora_foundry" / "datasets").exists() or not any(
        (server.output / "lora_foundry" / "datasets").iterdir())


def test_a_newline_in_a_dataset_name_is_normalised_never_a_path_with_a_newline(server):
    _, frames = tagged_frames(server.output / "ws")
    written = write(server, frames, dataset_name="my\nlora")["result"][0]
    assert written.path.name == "my_lora"
    assert not [p for p in server.output.rglob("*") if "\n" in p.name]


@pytest.mark.parametrize("name", ["", "x" * 500, "../x", "/abs"])
def test_bad_workspace_names_are_refused(server, name):
    server.picture(server.input / "anything" / "a.png")
    with pytest.raises(ValueError, match="workspace name"):
        server.nodes.frames.LoadImageFolder().load("anything", name, 0, False)


TAG_FILES = {
    "utf16_bom": ("blue_eyes, café".encode("utf-16"), "utf-16", "café"),
    "utf16_no_bom": ("blue_eyes, café".encode("utf-16-le"), "utf-16-le", "café"),
    "latin1": ("blue_eyes, café".encode("latin-1"), "Windows-1252", "café"),
    "utf8_bom": ("blue_eyes, café".encode("utf-8-sig"), None, "café"),
    "control_chars": (b"blue_eyes,\x00 caf\xc3\xa9\x1b[31m, red\x7fdress", "control", "café"),
}


@pytest.mark.parametrize("kind", list(TAG_FILES))
def test_tag_files_in_any_encoding_become_clean_one_line_captions(server, kind, without_open_clip):
    data, warned, word = TAG_FILES[kind]
    _, frames = tagged_frames(server.output / "ws")
    tags = server.input / "tags"
    tags.mkdir()
    (tags / "0000.txt").write_bytes(data)
    built, summary = server.nodes.captions.BuildCaptions().build(frames, "style", "sks", "", "SDXL", 1.0,
                                                                  tags_folder="tags")
    if warned:
        assert f"warning: tag file {tags / '0000.txt'}" in summary and warned in summary
    else:
        assert "tag file" not in summary
    write(server, built)
    captions = captions_written(server)
    assert any(word in c for c in captions), captions
    for caption in captions:
        assert caption.endswith("\n") and caption.count("\n") == 1
        assert not any(unicodedata.category(ch) == "Cc" for ch in caption[:-1]), repr(caption)
        assert "\ufffd" not in caption


def test_two_writers_of_one_name_get_the_sequential_outcome(server, monkeypatch):
    """Writer B has chosen its folder when writer A publishes the same name: B gets "dataset
    exists" (other frames) exactly as if it had run second, never ``OSError: [Errno 39]``."""
    ws_a, frames_a = tagged_frames(server.output / "a")
    ws_b, frames_b = tagged_frames(server.output / "b")
    root = dataset.datasets_root(server.output)
    spec = dataset.DatasetSpec(name="hero", trigger="sks", resolution=64)
    raced = []

    def publish_a_meanwhile(done, total):
        if not raced:
            raced.append(dataset.write_kohya_dataset(ws_a, frames_a, spec, root))

    from lora_foundry.progress import CallbackProgress

    with pytest.raises(dataset.DatasetExistsError, match="already exists"):
        dataset.write_kohya_dataset(ws_b, frames_b, spec, root, CallbackProgress(callback=publish_a_meanwhile))
    assert raced and sorted(p.name for p in root.iterdir()) == ["hero"]
    raced.clear()  # same frames: the loser returns the winner's dataset
    same = dataset.DatasetSpec(name="same", trigger="sks", resolution=64)
    spec = same
    loser = dataset.write_kohya_dataset(ws_a, frames_a, same, root, CallbackProgress(callback=publish_a_meanwhile))
    assert loser == raced[0] and sorted(p.name for p in root.iterdir()) == ["hero", "same"]


def test_staging_folders_of_dead_writers_are_removed_by_the_next_run(server):
    root = dataset.datasets_root(server.output)
    root.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def staged(name, pid, host):
        folder = root / f".tmp-{name}-x"
        (folder / "img").mkdir(parents=True)
        (folder / staging.WRITER_FILE).write_text(json.dumps({"pid": pid, "host": host, "started": 0}))
        return folder

    dead_one = staged("dead", dead.pid, socket.gethostname())
    alive_one = staged("alive", os.getppid(), socket.gethostname())
    remote = staged("remote", dead.pid, "another-host")
    old_orphan = root / ".tmp-old-y"
    old_orphan.mkdir()
    os.utime(old_orphan, (0, 0))
    _, frames = tagged_frames(server.output / "ws")
    write(server, frames)
    assert not dead_one.exists() and not old_orphan.exists()
    assert alive_one.exists() and remote.exists()
    assert not list((root / "hero").glob(staging.WRITER_FILE))


def test_cli_busy_workspace_is_one_line_and_a_non_zero_exit(server, tmp_path):
    from test_media import _video

    video = _video(server.input / "v.mp4")
    ws_root = server.output / "lora_foundry" / "workspaces" / "busy"
    ws_root.mkdir(parents=True)
    with writer_lock(ws_root / ".writer.lock"):
        run = subprocess.run([sys.executable, "-m", "lora_foundry.cli", "ingest", str(video), "--out",
                              str(server.output), "--workspace", "busy", "--mode", "interval"],
                             capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lora-foundry: workspace") and "another run" in lines[0]
