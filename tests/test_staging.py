"""Both dataset writers (kohya's and musubi's) assemble a dataset in a staging folder and rename it
into place through ``staging.write_staged``: nothing half-written is ever left under the datasets
folder, whether the write fails, is cancelled or loses a race to another writer of the same name."""

from __future__ import annotations

import pytest

from lora_foundry.kohya.staging import STAGING_PREFIX, WRITER_FILE, write_staged


def _leftovers(root):
    return sorted(p.name for p in root.iterdir() if p.name.startswith(STAGING_PREFIX))


def test_a_written_dataset_is_renamed_into_place_without_its_writer_record(tmp_path):
    target = tmp_path / "hero"

    def write(staging):
        (staging / "dataset.toml").write_text("[general]\n")
        return "written"

    assert write_staged(tmp_path, target, write) == ("written", True)
    assert sorted(p.name for p in target.iterdir()) == ["dataset.toml"] and not (target / WRITER_FILE).exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["failure", "cancel"])
def test_a_write_that_stops_midway_leaves_nothing_behind(tmp_path, error):
    def write(staging):
        (staging / "half.png").write_bytes(b"x" * 1000)
        raise error

    with pytest.raises(type(error)):
        write_staged(tmp_path, tmp_path / "hero", write)
    assert list(tmp_path.iterdir()) == []


def test_losing_the_race_to_another_writer_keeps_theirs_and_removes_ours(tmp_path):
    target = tmp_path / "hero"

    def write(staging):
        (staging / "ours.txt").write_text("ours")
        target.mkdir()  # another writer of the same name publishes first
        (target / "theirs.txt").write_text("theirs")
        return "ours"

    assert write_staged(tmp_path, target, write) == ("ours", False)
    assert [p.name for p in target.iterdir()] == ["theirs.txt"]
    assert _leftovers(tmp_path) == []
