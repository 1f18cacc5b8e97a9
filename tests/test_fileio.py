"""Atomic files: a writer that fails midway leaves the file a user had (or none) and no temporary
file, whether it writes in one block (``atomic_write``) or frame by frame (``Mp4Writer``)."""

from __future__ import annotations

import stat

import numpy as np
import pytest

from lora_foundry.fileio import AtomicFile, atomic_write, atomic_write_text
from lora_foundry.media.video_writer import Mp4Writer


class Broken(Exception):
    pass


def _fail_midway(handle):
    handle.write(b"half of a file")
    raise Broken("the disk filled up")


def test_a_writer_that_raises_midway_leaves_no_temp_and_no_partial_file(tmp_path):
    with pytest.raises(Broken):
        atomic_write(tmp_path / "new.txt", _fail_midway)
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_raises_midway_keeps_the_file_it_would_have_replaced(tmp_path):
    kept = atomic_write_text(tmp_path / "kept.txt", "the old caption")
    with pytest.raises(Broken):
        atomic_write(kept, _fail_midway)
    assert kept.read_text() == "the old caption" and list(tmp_path.iterdir()) == [kept]


def test_atomic_file_renames_a_finished_file_readable_by_other_users(tmp_path):
    target = tmp_path / "sub" / "clip.bin"
    with AtomicFile(target) as temp:
        assert temp.parent == target.parent and temp.name.startswith(".tmp-") and not target.exists()
        temp.write_bytes(b"done")
    # 0644 (docs/ARCHITECTURE.md): mkstemp's 0600 would hide it from a trainer or web server running as
    # another user; checked against the documented mode, not the module's own constant
    assert target.read_bytes() == b"done" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert list(target.parent.iterdir()) == [target]


def test_atomic_file_removes_the_temp_when_the_block_raises(tmp_path):
    with pytest.raises(Broken), AtomicFile(tmp_path / "clip.bin") as temp:
        temp.write_bytes(b"half")
        raise Broken("cancelled")
    assert list(tmp_path.iterdir()) == []


def _frames(writer: Mp4Writer, count: int) -> None:
    for index in range(count):
        writer.write(np.full((32, 48, 3), index * 20, np.uint8))


def test_a_clip_whose_writing_fails_midway_leaves_no_temp_and_no_partial_clip(tmp_path):
    writer = Mp4Writer(tmp_path / "clip.mp4", 48, 32, 8.0, preset="ultrafast")
    _frames(writer, 3)
    with pytest.raises(ValueError, match="frame is 10x10"):
        writer.write(np.zeros((10, 10, 3), np.uint8))  # the decoder handed over a broken frame
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_a_clip_that_cannot_be_moved_into_place_leaves_no_temp(tmp_path):
    (tmp_path / "clip.mp4").mkdir()  # something else already holds the name
    writer = Mp4Writer(tmp_path / "clip.mp4", 48, 32, 8.0, preset="ultrafast")
    _frames(writer, 3)
    with pytest.raises(OSError):
        writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"] and (tmp_path / "clip.mp4").is_dir()


def test_a_finished_clip_is_renamed_into_place(tmp_path):
    writer = Mp4Writer(tmp_path / "clip.mp4", 48, 32, 8.0, preset="ultrafast")
    _frames(writer, 4)
    path = writer.close()
    assert path == tmp_path / "clip.mp4" and path.stat().st_size > 0 and writer.frames == 4
    assert stat.S_IMODE(path.stat().st_mode) == 0o644, "a clip musubi-tuner, run as another user, can read"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]



@pytest.mark.parametrize("fps", [0.0, float("nan"), -5.0])
def test_a_clip_writer_refuses_a_frame_rate_no_clip_can_have_and_leaves_nothing(tmp_path, fps):
    """It divided by zero (0), failed to convert (NaN) or wrote a clip (-5), leaving a ``.tmp-*.mp4``."""
    with pytest.raises(ValueError, match="a clip needs a positive frame rate"):
        Mp4Writer(tmp_path / "clip.mp4", 48, 32, fps, preset="ultrafast")
    assert list(tmp_path.iterdir()) == []


def test_a_clip_writer_whose_set_up_fails_removes_its_temp(tmp_path):
    """A failure after the temporary file was made (here x264's options) removes it and closes the
    container: it once left a ``.tmp-*.mp4`` per failed clip beside the dataset."""
    with pytest.raises(ValueError):
        Mp4Writer(tmp_path / "clip.mp4", 48, 32, 8.0, crf="high", preset="ultrafast")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_a_link_copied_across_file_systems_is_readable_by_other_users_too(tmp_path, monkeypatch):
    """Where a hard link cannot be made (another file system) ``atomic_link`` copies: the copy gets
    0644 like every finished file, whatever the server's umask (it kept the umask's 0600)."""
    import errno
    import os

    from lora_foundry.fileio import atomic_link

    source = atomic_write_text(tmp_path / "earlier.png", "pixels")

    def cross_device(*_):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    (tmp_path / "new").mkdir()
    before = os.umask(0o077)
    try:
        copied = atomic_link(source, tmp_path / "new" / "00001.png")
    finally:
        os.umask(before)
    assert copied.read_text() == "pixels" and stat.S_IMODE(copied.stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["00001.png"]


def test_a_link_whose_temporary_name_another_writer_holds_still_links(tmp_path):
    """Two writers linking one target at once: each uses a temporary name of its own (a fixed
    ``.tmp-<name>`` made the second one copy over the first one's link, or fail)."""
    import os

    from lora_foundry.fileio import TMP_PREFIX, atomic_link

    source = atomic_write_text(tmp_path / "earlier.png", "pixels")
    (tmp_path / "new").mkdir()
    held = tmp_path / "new" / f"{TMP_PREFIX}00001.png"
    held.write_text("another writer's half")
    linked = atomic_link(source, tmp_path / "new" / "00001.png")
    assert linked.stat().st_ino == source.stat().st_ino and held.read_text() == "another writer's half"
    assert os.path.samefile(linked, source)
