"""Our dataset.toml is what sd-scripts accepts: in CI against a schema derived from sd-scripts'
config_util.py, and against the real loader when ``KOHYA_SD_SCRIPTS`` names a checkout."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest

from lora_foundry.kohya import dataset, sdscripts_check
from lora_foundry.kohya.toml_schema import DatasetConfigError, check_dataset_config, validate_dataset_config
from lora_foundry.workspace import NewItem, Workspace


def _frames(ws: Workspace, name: str, n: int, alpha: bool = False, seed: int = 0):
    rng = np.random.default_rng(seed)
    with ws.stage(name, 1, {"n": n, "alpha": alpha}) as st:
        for position, unit in st.pending_units([str(i) for i in range(n)]):
            pixels = rng.integers(0, 255, (96, 128, 4 if alpha else 3), dtype=np.uint8)
            rel = st.write_image(pixels, f"{position}.png")
            st.emit(unit, position, [NewItem(kind="frame", relpath=rel, width=128, height=96,
                                             annotations={"caption": f"sks woman, look {position}"})])
    return st.handle


def _written(tmp_path: Path, image_format: str = "png", alpha: bool = True, reg: bool = True) -> dataset.Dataset:
    ws = Workspace.open(tmp_path / "ws")
    extra = [dataset.SubsetSource(_frames(ws, "b", 2, seed=1), trigger="zkx", class_word="man")]
    if reg:
        extra.append(dataset.SubsetSource(_frames(ws, "r", 2, seed=2), class_word="woman", is_reg=True))
    spec = dataset.DatasetSpec(name=f"d_{image_format}", trigger="sks", class_word="woman", resolution=128,
                               image_format=image_format)
    return dataset.write_kohya_dataset(ws, _frames(ws, "a", 3, alpha=alpha), spec, tmp_path / "datasets", extra=extra)


@pytest.mark.parametrize("image_format,reg", [("png", True), ("webp", True), ("jpg", False)])
def test_written_toml_passes_the_schema(tmp_path, image_format, reg):
    config = tomllib.loads(_written(tmp_path, image_format, reg=reg).toml_path.read_text())
    assert validate_dataset_config(config) == []
    subsets = config["datasets"][0]["subsets"]
    assert config["general"]["caption_extension"] == ".txt"
    assert all(Path(s["image_dir"]).is_dir() for s in subsets)
    if image_format == "jpg":
        assert all("conditioning_data_dir" in s and "class_tokens" not in s for s in subsets)
    else:
        assert subsets[0]["alpha_mask"] is True and subsets[-1]["is_reg"] is True


GOOD = {"general": {"caption_extension": ".txt", "keep_tokens": 1},
        "datasets": [{"resolution": 512, "enable_bucket": True, "subsets": [
            {"image_dir": "/d/img/10_sks", "num_repeats": 10, "alpha_mask": True},
            {"image_dir": "/d/reg/1_woman", "is_reg": True, "class_tokens": "woman"}]}]}


@pytest.mark.parametrize("change,message", [
    (lambda c: c["datasets"][0]["subsets"][0].pop("image_dir"), "image_dir is required"),
    (lambda c: c["datasets"][0]["subsets"][0].update(image_folder="/x"), "'image_folder' is not accepted"),
    (lambda c: c["datasets"][0]["subsets"][0].update(num_repeats="10"), "num_repeats = '10' has the wrong type"),
    (lambda c: c["datasets"][0]["subsets"][0].update(num_repeats=True), "has the wrong type"),
    (lambda c: c["datasets"][0].update(is_reg=True), "'is_reg' is not accepted here"),
    (lambda c: c["general"].update(image_dir="/x"), "'image_dir' is not accepted here"),
    (lambda c: c.update(dataset=[]), "'dataset' is not accepted"),
    (lambda c: c["datasets"][0].update(resolution=[512]), "resolution"),
    (lambda c: c["datasets"][0].update(resolution=128), "min_bucket_reso (256) <= resolution 128"),
    (lambda c: c["datasets"][0]["subsets"][0].update(conditioning_data_dir="/m"), "cannot share a dataset"),
    (lambda c: c["datasets"][0]["subsets"].pop(0), "only is_reg subsets"),
    (lambda c: c["datasets"][0]["subsets"][0].update(num_repeats=0), "num_repeats must be at least 1"),
    (lambda c: c["datasets"][0].update(resize_interpolation="fancy"), "datasets[0]: resize_interpolation 'fancy' is "
     "not one of area, bicubic, bilinear, box, cubic, lanczos, linear, nearest"),
])
def test_schema_refuses_what_sd_scripts_refuses(change, message):
    config = json.loads(json.dumps(GOOD))
    assert validate_dataset_config(config) == []
    change(config)
    problems = validate_dataset_config(config)
    assert any(message in p for p in problems), problems
    with pytest.raises(DatasetConfigError):
        check_dataset_config(config)


def test_schema_accepts_conditioning_subsets_and_pairs():
    config = {"general": {}, "datasets": [{"resolution": [512, 768], "enable_bucket": True,
                                           "max_bucket_reso": 1024, "subsets": [
        {"image_dir": "/i", "conditioning_data_dir": "/m", "caption_extension": ".txt"}]}]}
    assert validate_dataset_config(config) == []
    config["datasets"][0]["subsets"][0]["class_tokens"] = "sks"
    assert validate_dataset_config(config) == ["datasets[0].subsets[0]: key 'class_tokens' is not accepted here"]


def _kohya() -> tuple[Path, Path]:
    root = Path(os.environ["KOHYA_SD_SCRIPTS"])
    python = Path(os.environ.get("KOHYA_PYTHON") or root / "venv" / "bin" / "python")
    return root, python


@pytest.mark.skipif(not os.environ.get("KOHYA_SD_SCRIPTS"), reason="set KOHYA_SD_SCRIPTS (and KOHYA_PYTHON) "
                    "to check against sd-scripts' own config loader")
@pytest.mark.parametrize("image_format,reg", [("png", True), ("jpg", False)])
def test_real_sd_scripts_loader_accepts_and_counts(tmp_path, image_format, reg):
    written = _written(tmp_path, image_format, reg=reg)
    root, python = _kohya()
    run = subprocess.run([str(python), sdscripts_check.__file__, "--sd-scripts", str(root), "--config",
                          str(written.toml_path), "--masked-loss"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    line = next(x for x in run.stdout.splitlines() if x.startswith("LF_CHECK "))
    found = json.loads(line.removeprefix("LF_CHECK "))["datasets"][0]
    # 3 images x 10 repeats, 2 images x 15 (balanced by image count), reg images only with reg
    assert found["num_train_images"] == 3 * 10 + 2 * 15
    assert found["num_reg_images"] == (2 if reg else 0)
    subsets = found["subsets"]
    assert [s["img_count"] for s in subsets] == [3, 2] + ([2] if reg else [])
    assert [s["num_repeats"] for s in subsets] == [10, 15] + ([1] if reg else [])
    assert found["captions"][0] == "sks woman, look 0"
    if image_format == "png":
        assert found["kind"] == "DreamBoothDataset" and subsets[0]["alpha_mask"] and subsets[-1]["is_reg"]
    else:
        assert found["kind"] == "ControlNetDataset"
