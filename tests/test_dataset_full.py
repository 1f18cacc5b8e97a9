"""The complete writer: concepts, regularisation, masks, buckets, formats, report, nodes."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lora_foundry.captions.builder import CaptionSettings
from lora_foundry.captions.stage import caption_stage
from lora_foundry.kohya import dataset
from lora_foundry.kohya.buckets import BucketSpec, choose_bucket, make_buckets, resize_to_bucket
from lora_foundry.kohya.report import dataset_report, report_text
from lora_foundry.kohya.subsets import balanced_repeats
from lora_foundry.workspace import NewItem, Workspace


def _frames(ws: Workspace, name: str, n: int, shape: tuple[int, int], alpha: bool = False,
            tags: list[list[str]] | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    with ws.stage(name, 1, {"n": n, "shape": shape, "alpha": alpha, "tags": tags}) as st:
        for position, unit in st.pending_units([str(i) for i in range(n)]):
            pixels = rng.integers(0, 255, (*shape, 4 if alpha else 3), dtype=np.uint8)
            if alpha:
                pixels[..., 3] = 0
                pixels[shape[0] // 4: -shape[0] // 4, shape[1] // 4: -shape[1] // 4, 3] = 255
            rel = st.write_image(pixels, f"{position}.png")
            notes = {"tags": tags[position]} if tags else {}
            st.emit(unit, position, [NewItem(kind="cutout" if alpha else "frame", relpath=rel, width=shape[1],
                                             height=shape[0], annotations=notes)])
    return st.handle


def _toml(written: dataset.Dataset) -> dict:
    return tomllib.loads(written.toml_path.read_text())


def test_concepts_and_regularisation_in_one_dataset_with_balanced_repeats(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    main = _frames(ws, "main", 8, (96, 128))
    small = _frames(ws, "small", 2, (96, 128), seed=1)
    reg = _frames(ws, "reg", 3, (96, 128), seed=2)
    spec = dataset.DatasetSpec(name="duo", trigger="sks", class_word="woman", repeats=5, resolution=128)
    extra = [dataset.SubsetSource(small, trigger="zkx", class_word="man"),
             dataset.SubsetSource(reg, class_word="woman", is_reg=True)]
    written = dataset.write_kohya_dataset(ws, main, spec, tmp_path / "datasets", extra=extra)
    assert written.subsets == ("img/5_sks woman", "img/20_zkx man", "reg/1_woman")
    subsets = _toml(written)["datasets"][0]["subsets"]
    assert [s["num_repeats"] for s in subsets] == [5, 20, 1]  # 8 x 5 == 2 x 20 images per epoch
    assert subsets[2]["is_reg"] is True and "is_reg" not in subsets[0]
    assert (written.path / "reg" / "1_woman" / "00000.txt").read_text().strip() == "woman"
    assert (written.path / "img" / "20_zkx man" / "00001.txt").read_text().strip() == "zkx, man"
    assert written.image_count == 10  # training images only
    assert balanced_repeats([10, 40, 20, 5], [10, 0, 6, 0]) == [10, 2, 6, 20]  # large subsets get fewer


def test_alpha_cutouts_keep_alpha_and_set_alpha_mask(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    cutouts = _frames(ws, "cut", 3, (128, 96), alpha=True)
    written = dataset.write_kohya_dataset(ws, cutouts, dataset.DatasetSpec(
        name="a", trigger="sks", resolution=128), tmp_path / "datasets")
    subset = _toml(written)["datasets"][0]["subsets"][0]
    assert subset["alpha_mask"] is True
    with Image.open(next(written.subset_dir.glob("*.png"))) as image:
        assert image.mode == "RGBA"
        alpha = np.asarray(image)[..., 3]
    assert alpha.min() == 0 and alpha.max() == 255  # the cut-out's mask survived the resize


def test_jpeg_with_masks_writes_a_mask_folder(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    cutouts = _frames(ws, "cut", 3, (128, 96), alpha=True)
    written = dataset.write_kohya_dataset(ws, cutouts, dataset.DatasetSpec(
        name="j", trigger="sks", resolution=128, image_format="jpg"), tmp_path / "datasets")
    subset = _toml(written)["datasets"][0]["subsets"][0]
    mask_dir = Path(subset["conditioning_data_dir"])
    assert mask_dir == written.path / "masks" / written.subset_dir.name
    images = sorted(written.subset_dir.glob("*.jpg"))
    masks = sorted(mask_dir.glob("*.png"))
    assert [p.stem for p in images] == [p.stem for p in masks] and len(masks) == 3
    with Image.open(masks[0]) as mask, Image.open(images[0]) as image:
        assert mask.mode == "L" and mask.size == image.size
        assert np.asarray(mask).min() == 0 and np.asarray(mask).max() == 255
    reg = _frames(ws, "reg", 2, (64, 64))
    with pytest.raises(ValueError, match="regularisation images with mask-folder"):
        dataset.write_kohya_dataset(ws, cutouts, dataset.DatasetSpec(
            name="j2", trigger="sks", resolution=128, image_format="jpg"), tmp_path / "datasets",
            extra=[dataset.SubsetSource(reg, class_word="person", is_reg=True)])
    assert not (tmp_path / "datasets" / "j2").exists()


@pytest.mark.parametrize("fmt,mode", [("png", "RGB"), ("webp", "RGB"), ("jpg", "RGB")])
def test_formats_and_images_resized_to_their_bucket(tmp_path, fmt, mode):
    ws = Workspace.open(tmp_path / "ws")
    wide = _frames(ws, "wide", 2, (300, 600))
    written = dataset.write_kohya_dataset(ws, wide, dataset.DatasetSpec(
        name="w", trigger="sks", resolution=256, image_format=fmt), tmp_path / "datasets")
    files = sorted(written.subset_dir.glob(f"*.{fmt}"))
    assert len(files) == 2
    with Image.open(files[0]) as image:
        assert image.mode == mode
        width, height = image.size
    assert width % 64 == 0 and height % 64 == 0 and width * height <= 256 * 256
    assert 1.6 < width / height < 2.6  # a 2:1 picture stays wide, not squashed square
    config = _toml(written)["datasets"][0]
    assert config["enable_bucket"] is True and config["min_bucket_reso"] <= 256 <= config["max_bucket_reso"]
    record = json.loads(written.report_path.read_text())
    assert record["buckets"] == {f"{width}x{height}": 2}


def test_bucket_choice_matches_aspect_and_no_upscale_keeps_small_images():
    spec = BucketSpec(resolution=1024)
    buckets = make_buckets(spec)
    assert all(w % 64 == 0 and h % 64 == 0 and w * h <= 1024 * 1024 for w, h in buckets)
    assert choose_bucket(1920, 1080, spec, buckets) == (1344, 768)
    assert choose_bucket(1080, 1920, spec, buckets) == (768, 1344)
    assert choose_bucket(1000, 1000, spec, buckets) == (1024, 1024)
    small = BucketSpec(resolution=1024, no_upscale=True)
    assert choose_bucket(300, 200, small) == (256, 192)
    pixels = np.zeros((1080, 1920, 3), np.uint8)
    assert resize_to_bucket(pixels, (1344, 768)).shape == (768, 1344, 3)


def test_caption_stage_feeds_the_writer_with_keep_tokens(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    tags = [["brown hair", "blue eyes", e, "three quarter view"] for e in ("smiling", "serious", "laughing")]
    frames = _frames(ws, "f", 3, (64, 64), tags=tags)
    captioned = caption_stage(ws, frames, CaptionSettings("character", "sks", "woman", base_model="Pony",
                                                          pony_score=True, count_tokens=False))
    written = dataset.write_kohya_dataset(ws, captioned, dataset.DatasetSpec(
        name="c", trigger="sks", class_word="woman", resolution=64), tmp_path / "datasets")
    text = (written.subset_dir / "00000.txt").read_text().strip()
    assert text == "sks woman, score_9, score_8_up, score_7_up, smiling, three quarter view"
    general = _toml(written)["general"]
    assert general["keep_tokens"] == 4 and general["shuffle_caption"] is True


def test_report_counts_ranges_and_warns(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    tags = [["brown hair", "smiling"]] * 5 + [["brown hair", "serious"]] * 1
    frames = _frames(ws, "f", 6, (64, 64), tags=tags)
    captioned = caption_stage(ws, frames, CaptionSettings("character", "sks", force_keep=("brown hair",),
                                                          count_tokens=False))
    other = _frames(ws, "o", 2, (64, 64), seed=3)
    written = dataset.write_kohya_dataset(ws, captioned, dataset.DatasetSpec(
        name="r", trigger="sks", resolution=64, repeats=2), tmp_path / "datasets",
        extra=[dataset.SubsetSource(other, trigger="zkx", repeats=1)])
    report = dataset_report(written.path, count_tokens=True)
    rows = {r["path"]: r for r in report.subsets}
    assert rows["img/2_sks"]["images"] == 6 and rows["img/2_sks"]["recommended"] == [15, 50]
    text = report_text(report)
    assert "only 6 images; a character LoRA wants 15-50" in text
    assert "should bind to the trigger are captioned: brown hair (6)" in text  # identity leak
    assert "duplicate another" in text and "unbalanced concepts" in text
    assert report.tag_frequency[0] == ("brown hair", 6)
    assert report.caption_stats["tokens_max"] >= 4
    assert (written.path / report.contact_sheet).is_file()
    style = dataset_report(written.path, "style", make_contact_sheet=False)
    assert style.subsets[0]["recommended"] == [30, 200]


def test_nodes_write_subsets_and_report(pack, tmp_path, output_root):
    nodes = pack.nodes
    ws = Workspace.open(tmp_path / "ws")
    main, reg = _frames(ws, "m", 3, (64, 64)), _frames(ws, "r", 2, (64, 64), seed=4)
    (subsets,) = nodes.dataset.DatasetSubset().add(reg, "", "person", 0, True)
    result = nodes.dataset.WriteKohyaDataset().write(main, "node_ds", "sks", "person", 4, "png", 64, "error",
                                                    subsets=subsets)
    written = result["result"][0]
    assert written.path.is_relative_to(output_root) and written.subsets == ("img/4_sks person", "reg/1_person")
    out = nodes.captions.DatasetReport().report(written, "from dataset", False, 75)
    assert "img/4_sks person: 3 images x 4 repeats" in out["result"][0]
    assert out["ui"]["images"][0]["filename"] == "contact_sheet.jpg"
    prompts, captions, _ = nodes.captions.PromptSet().build("character", "red hair", 5, 1, "sks", "woman", "SDXL")
    assert len(prompts) == 5 and len(captions.splitlines()) == 5 and "red hair" not in captions



COMFY_ENV = ("LF_COMFYUI_URL", "LF_COMFYUI_INPUT", "LF_COMFYUI_CHECKPOINT")


def _comfy_run(url: str, graph: dict, timeout: float = 900) -> dict:
    import time
    import urllib.request

    body = json.dumps({"prompt": graph}).encode()
    request = urllib.request.Request(f"{url}/prompt", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a local test server)
        prompt_id = json.loads(response.read())["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/history/{prompt_id}", timeout=30) as response:  # noqa: S310
            entry = json.loads(response.read()).get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None and (
                entry["status"]["completed"] or entry["status"].get("status_str") == "error"):
            return entry
        time.sleep(1)
    raise TimeoutError(f"ComfyUI prompt {prompt_id} did not finish")


@pytest.mark.skipif(not all(os.environ.get(k) for k in COMFY_ENV),
                    reason="set LF_COMFYUI_URL, LF_COMFYUI_INPUT (its input dir) and LF_COMFYUI_CHECKPOINT")
def test_real_comfyui_loads_the_dataset(tmp_path):
    """ComfyUI's own LoadImageTextSetFromFolderNode reads img/ with repeats and captions, skips reg/."""
    url, input_dir = os.environ["LF_COMFYUI_URL"].rstrip("/"), Path(os.environ["LF_COMFYUI_INPUT"])
    ws = Workspace.open(tmp_path / "ws")
    tags = [["smiling"], ["serious"], ["laughing"]]
    main, other = _frames(ws, "m", 3, (96, 128), tags=tags), _frames(ws, "o", 2, (96, 128), seed=1)
    reg = _frames(ws, "r", 2, (96, 128), seed=2)
    captioned = caption_stage(ws, main, CaptionSettings("character", "sks", "woman", count_tokens=False))
    written = dataset.write_kohya_dataset(
        ws, captioned, dataset.DatasetSpec(name=f"lf_test_{tmp_path.name}", trigger="sks", class_word="woman",
                                           repeats=2, resolution=128, image_format="jpg", mask_mode="none"),
        input_dir / "lf_tests", extra=[dataset.SubsetSource(other, "zkx", repeats=3),
                                       dataset.SubsetSource(reg, class_word="woman", is_reg=True)])
    folder = written.image_root.relative_to(input_dir).as_posix()
    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": os.environ["LF_COMFYUI_CHECKPOINT"]}},
        "2": {"class_type": "LoadImageTextSetFromFolderNode",
              "inputs": {"folder": folder, "clip": ["1", 1], "resize_method": "None", "width": -1, "height": -1}},
        "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}},
    }
    entry = _comfy_run(url, graph)
    assert entry["status"]["status_str"] == "success", entry["status"]
    assert len(entry["outputs"]["3"]["images"]) == 3 * 2 + 2 * 3  # repeats applied, reg/ not read
