"""The first kohya writer: layout, captions, dataset.toml, no silent overwrite, nothing outside."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from lora_foundry.kohya import dataset
from lora_foundry.paths import UnsafeNameError
from lora_foundry.progress import CallbackProgress, Cancelled
from lora_foundry.workspace import NewItem, Workspace


def _frames(ws: Workspace, n: int = 4, seed: int = 0, captions: dict[int, str] | None = None):
    rng = np.random.default_rng(seed)
    with ws.stage("synthetic", 1, {"n": n, "seed": seed}) as st:
        for position, unit in st.pending_units([str(i) for i in range(n)]):
            pixels = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
            rel = st.write_image(pixels, f"{position}.png")
            notes = {"caption": captions[position]} if captions and position in captions else {}
            st.emit(unit, position, [NewItem(kind="frame", relpath=rel, width=64, height=48,
                                             frame_index=position, shot=0, annotations=notes)])
    return st.handle


def test_writes_kohya_layout_with_captions_toml_and_report(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    frames = _frames(ws, captions={1: "mychar, smiling, close-up"})
    spec = dataset.DatasetSpec(name="hero", trigger="mychar", class_word="person", repeats=8)
    written = dataset.write_kohya_dataset(ws, frames, spec, tmp_path / "datasets")
    assert written.subset_dir.name == "8_mychar person"
    pngs = sorted(written.subset_dir.glob("*.png"))
    txts = sorted(written.subset_dir.glob("*.txt"))
    assert len(pngs) == len(txts) == 4 == written.image_count
    assert [p.stem for p in pngs] == [t.stem for t in txts]
    assert txts[0].read_text().strip() == "mychar, person"
    assert txts[1].read_text().strip() == "mychar, smiling, close-up"
    config = tomllib.loads(written.toml_path.read_text())
    subset = config["datasets"][0]["subsets"][0]
    assert subset["image_dir"] == str(written.subset_dir)
    assert subset["num_repeats"] == 8 and subset["caption_extension"] == ".txt"
    assert config["general"]["caption_extension"] == ".txt"
    report = json.loads(written.report_path.read_text())
    assert report["image_count"] == 4 and len(report["images"]) == 4


def test_same_source_is_a_cache_hit_other_source_is_refused(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    spec = dataset.DatasetSpec(name="hero", trigger="mychar")
    first = dataset.write_kohya_dataset(ws, _frames(ws, seed=0), spec, tmp_path / "datasets")
    stamp = first.report_path.stat().st_mtime_ns
    again = dataset.write_kohya_dataset(ws, _frames(ws, seed=0), spec, tmp_path / "datasets")
    assert again.path == first.path and first.report_path.stat().st_mtime_ns == stamp
    with pytest.raises(dataset.DatasetExistsError, match="already exists"):
        dataset.write_kohya_dataset(ws, _frames(ws, seed=1), spec, tmp_path / "datasets")
    versioned = dataset.write_kohya_dataset(
        ws, _frames(ws, seed=1), dataset.DatasetSpec(name="hero", trigger="mychar", if_exists="new_version"),
        tmp_path / "datasets")
    assert versioned.path.name == "hero_v2"
    assert first.report_path.stat().st_mtime_ns == stamp


def test_cancel_leaves_no_half_dataset(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    frames = _frames(ws, n=6)
    calls = []
    progress = CallbackProgress(callback=lambda d, t: calls.append(d), should_stop=lambda: len(calls) >= 3)
    with pytest.raises(Cancelled):
        dataset.write_kohya_dataset(ws, frames, dataset.DatasetSpec(name="hero", trigger="t"),
                                    tmp_path / "datasets", progress)
    assert list((tmp_path / "datasets").iterdir()) == []


@pytest.mark.parametrize("field,value", [("trigger", "../../x"), ("name", "../escape"), ("name", "/abs"),
                                         ("trigger", "NUL"), ("class_word", "a/b")])
def test_hostile_names_are_refused_and_nothing_is_written(tmp_path, field, value):
    ws = Workspace.open(tmp_path / "ws")
    frames = _frames(ws)
    spec = dataset.DatasetSpec(**{"name": "ok", "trigger": "ok", field: value})
    with pytest.raises(UnsafeNameError):
        dataset.write_kohya_dataset(ws, frames, spec, tmp_path / "datasets")
    assert not (tmp_path / "datasets").exists() or list((tmp_path / "datasets").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]
