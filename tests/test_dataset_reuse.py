"""A new dataset version that only changes captions links the images it would encode the same."""

from __future__ import annotations

import json

import pytest

from lora_foundry.kohya import dataset
from lora_foundry.kohya.report import dataset_report
from lora_foundry.stages.frames import ingest_stage as ingest
from lora_foundry.workspace import Workspace


def _frames(tmp_path, media_dir):
    ws = Workspace.open(tmp_path / "ws")
    handle = ingest.ingest_video(ws, media_dir / "signer_book.mkv",
                                 ingest.VideoIngestOptions(mode="interval", interval_s=0.5, long_side=160))
    return ws, handle


def _write(ws, handle, root, **changes):
    spec = dataset.DatasetSpec(**{"name": "signer", "trigger": "sgnr", "if_exists": "new_version",
                                  "image_format": "jpg", **changes})
    return dataset.write_kohya_dataset(ws, handle, spec, root)


def _images(written):
    return sorted(p for p in (written.path / "img").rglob("*.jpg"))


def test_a_caption_edit_links_the_earlier_versions_images(tmp_path, media_dir):
    ws, handle = _frames(tmp_path, media_dir)
    first = _write(ws, handle, tmp_path / "datasets")
    second = _write(ws, handle, tmp_path / "datasets", caption_template="{trigger}, a person signing")
    assert second.path.name == "signer_v2" and len(_images(first)) == len(_images(second)) >= 4
    for old, new in zip(_images(first), _images(second), strict=True):
        assert new.stat().st_ino == old.stat().st_ino  # the same file, not a re-encoded copy
        assert new.with_suffix(".txt").read_text() == "sgnr, a person signing\n"
        assert old.with_suffix(".txt").read_text() == "sgnr\n"
    fresh = _write(ws, handle, tmp_path / "elsewhere", caption_template="{trigger}, a person signing")
    assert [p.read_bytes() for p in _images(fresh)] == [p.read_bytes() for p in _images(second)]
    report = json.loads(second.report_path.read_text())
    fresh_report = json.loads(fresh.report_path.read_text())
    drop_time = lambda r: {k: v for k, v in r.items() if k not in ("written_at", "identity")}  # noqa: E731
    assert drop_time(report) == drop_time(fresh_report)


def test_other_encoding_settings_or_a_changed_source_are_encoded_again(tmp_path, media_dir):
    ws, handle = _frames(tmp_path, media_dir)
    first = _write(ws, handle, tmp_path / "datasets")
    other_quality = _write(ws, handle, tmp_path / "datasets", quality=80)
    assert all(a.stat().st_ino != b.stat().st_ino for a, b in zip(_images(first), _images(other_quality), strict=True))
    assert _images(first)[0].read_bytes() != _images(other_quality)[0].read_bytes()
    source = ws.items(handle)[0].path
    source.write_bytes(source.read_bytes())  # rewritten: a new modification time
    again = _write(ws, handle, tmp_path / "datasets", caption_template="{trigger}, again")
    inodes = {p.stat().st_ino for p in _images(first)}
    assert _images(again)[0].stat().st_ino not in inodes
    assert all(p.stat().st_ino in inodes for p in _images(again)[1:])


def test_a_rewritten_record_in_an_earlier_version_links_nothing_from_elsewhere(tmp_path, media_dir):
    """Datasets lie in the output folder, where any client can upload files: an earlier version's
    record is only a hint, never a way to pull a server file into a new dataset or to crash it."""
    ws, handle = _frames(tmp_path, media_dir)
    first = _write(ws, handle, tmp_path / "datasets")
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(_images(first)[0].read_bytes())
    record = json.loads(first.report_path.read_text())
    record["images"][0]["file"] = str(secret)  # the right key, a file outside the dataset
    first.report_path.write_text(json.dumps(record))
    second = _write(ws, handle, tmp_path / "datasets", caption_template="{trigger}, again")
    assert secret.stat().st_nlink == 1 and _images(second)[0].stat().st_ino != secret.stat().st_ino
    first.report_path.write_text("[" * 5000 + "]" * 5000)
    third = _write(ws, handle, tmp_path / "datasets", caption_template="{trigger}, third")
    assert third.path.name == "signer_v3" and len(_images(third)) == len(_images(first))
    with pytest.raises(ValueError, match="dataset signer/lora_foundry_dataset.json is nested") as refused:
        dataset_report(first.path)
    assert str(tmp_path) not in str(refused.value)


@pytest.mark.parametrize("forge", [lambda r: r.pop("trigger"), lambda r: r.update(subset="../../elsewhere"),
                                   lambda r: r.update(image_count="many")], ids=["no trigger", "subset outside", "count"])
def test_a_reused_dataset_whose_record_was_forged_is_refused_by_name(tmp_path, media_dir, forge):
    """The same settings again return the dataset already written, from its record: a record a client
    rewrote (a field gone, a subset folder outside the dataset) is refused naming the dataset, never
    read halfway into a KeyError or a subset folder elsewhere on the server."""
    ws, handle = _frames(tmp_path, media_dir)
    first = _write(ws, handle, tmp_path / "datasets")
    record = json.loads(first.report_path.read_text())
    forge(record)
    first.report_path.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="dataset signer/lora_foundry_dataset.json is not a record") as refused:
        _write(ws, handle, tmp_path / "datasets")
    assert str(tmp_path) not in str(refused.value)
