"""LF Build Captions re-runs when its tag files change.

ComfyUI caches a node's output while its widget values and its ``IS_CHANGED`` value stay the same;
``tags_folder`` is one unchanged text while the files in it are edited, so without an
``IS_CHANGED`` that sees the files, edited tags would never reach the captions.
"""

from __future__ import annotations

import os

from lora_foundry.workspace import NewItem, Workspace


def test_build_captions_is_changed_follows_the_tag_files(pack, output_root):
    node = pack.nodes.captions.BuildCaptions
    tags = output_root / "my_tags"
    tags.mkdir()
    (tags / "0001.txt").write_text("blue_eyes, red_dress")
    (tags / "notes.md").write_text("not a tag file")
    first = node.IS_CHANGED(tags_folder="my_tags", trigger="sks")
    assert node.IS_CHANGED(tags_folder="my_tags", trigger="sks") == first, "stable while nothing changed"

    (tags / "notes.md").write_text("edited, but the build never reads it")
    assert node.IS_CHANGED(tags_folder="my_tags") == first

    (tags / "0001.txt").write_text("blue_eyes, tan_dress")
    os.utime(tags / "0001.txt", ns=(1, 1))  # same size, only the mtime differs
    edited = node.IS_CHANGED(tags_folder="my_tags")
    assert edited != first

    (tags / "0002.TXT").write_text("smiling")
    added = node.IS_CHANGED(tags_folder="my_tags")
    assert added != edited
    (tags / "0002.TXT").unlink()
    assert node.IS_CHANGED(tags_folder="my_tags") == edited


def test_build_captions_is_changed_never_raises(pack, output_root):
    node = pack.nodes.captions.BuildCaptions
    assert node.IS_CHANGED(tags_folder="") == node.IS_CHANGED()
    assert node.IS_CHANGED(tags_folder="missing") == "missing"
    assert node.IS_CHANGED(tags_folder="../outside") == "../outside"


def test_a_re_run_after_a_tag_edit_gives_new_captions(pack, tmp_path, output_root):
    """IS_CHANGED makes ComfyUI run the node again; the caption stage must then not reuse its cache."""
    ws = Workspace.open(tmp_path / "ws")
    with ws.stage("src", 1, {}) as st:
        for position, unit in st.pending_units(["0"]):
            rel = st.write_file(f"{position:04d}.png", lambda h: h.write(b"x"))
            st.emit(unit, position, [NewItem(kind="image", relpath=rel, width=1, height=1)])
    tags = output_root / "my_tags"
    tags.mkdir()
    (tags / "0000.TXT").write_text("red_dress")
    node = pack.nodes.captions.BuildCaptions()

    def caption() -> str:
        frames, _ = node.build(st.handle, "character", "sks", "", "SDXL", 1.0, tags_folder="my_tags")
        return next(iter(Workspace.from_handle(frames).annotations(frames, "caption").values()))

    assert caption() == "sks, red dress"
    (tags / "0000.TXT").write_text("tan_dress")
    assert caption() == "sks, tan dress"
