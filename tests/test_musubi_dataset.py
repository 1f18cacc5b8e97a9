"""The musubi-tuner dataset: clips + captions + dataset.toml, read by musubi-tuner's own loader.

The gated test runs musubi-tuner's ``dataset/config_utils.py`` and dataset code in its own venv:
set ``MUSUBI_TUNER`` to a musubi-tuner checkout and ``MUSUBI_PYTHON`` to that venv's python (needs
toml, voluptuous, torch CPU, av, pillow, opencv, safetensors, einops, tqdm).
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_dataset_writer import _frames

from lora_foundry import names
from lora_foundry.kohya.dataset import DatasetSpec, write_kohya_dataset
from lora_foundry.media import images
from lora_foundry.musubi.dataset import REPORT_NAME, VideoDatasetSpec, write_video_dataset
from lora_foundry.stages.clips.cut_stage import cut_clips_stage
from lora_foundry.stages.clips.rules import ClipOptions
from lora_foundry.stages.frames.ingest_stage import VideoIngestOptions, ingest_folder, ingest_video
from lora_foundry.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
MONTAGE = REPO / "lora_foundry" / "data" / "lf_example_montage.mp4"


@pytest.fixture(scope="module")
def montage(tmp_path_factory):
    ws = Workspace.open(tmp_path_factory.mktemp("musubi") / "ws")
    frames = ingest_video(ws, MONTAGE, VideoIngestOptions(mode="scene"))
    return ws, frames


def _write(ws, frames, model: str, root: Path, images=None):
    clips = cut_clips_stage(ws, frames, ClipOptions(model=model, preset="ultrafast"))
    spec = VideoDatasetSpec(name=f"{model}_set", trigger="ohwx", class_word="woman")
    return clips, write_video_dataset(ws, clips, spec, root, image_frames=images)


def test_dataset_pairs_every_clip_with_a_caption_and_a_toml_musubi_understands(montage, tmp_path):
    ws, frames = montage
    clips, dataset = _write(ws, frames, "wan", tmp_path, images=frames)
    config = tomllib.loads(dataset.toml_path.read_text("utf-8"))
    video, image = config["datasets"]
    assert video["frame_extraction"] == "full" and video["source_fps"] == 16.0
    assert all((count - 1) % 4 == 0 for count in video["target_frames"])
    assert video["cache_directory"] != image["cache_directory"]
    videos = sorted(Path(video["video_directory"]).glob("*.mp4"))
    assert len(videos) == dataset.clips == len(ws.items(clips)) == 6
    assert all(path.with_suffix(".txt").read_text("utf-8").strip() == "ohwx woman" for path in videos)
    pictures = [p for p in Path(image["image_directory"]).iterdir() if p.suffix != ".txt"]
    assert len(pictures) == dataset.images == ws.count(frames)
    pipe = tomllib.loads((dataset.path / "diffusion_pipe_dataset.toml").read_text("utf-8"))
    assert [d["path"] for d in pipe["directory"]] == [video["video_directory"], image["image_directory"]]
    assert pipe["frame_buckets"] == [1, *video["target_frames"]] and pipe["ar_buckets"] == [config["general"]["resolution"]]
    again = write_video_dataset(ws, clips, VideoDatasetSpec(name="wan_set", trigger="ohwx"), tmp_path)
    assert again.path.name == "wan_set_v2" and dataset.path.is_dir(), "a second write never overwrites"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def _as_musubi_reads(path: Path) -> np.ndarray:
    """musubi-tuner's image read (dataset/datasources.py): Pillow, RGB kept, RGBA kept, else RGB."""
    with Image.open(path) as picture:
        return np.asarray(picture if picture.mode in ("RGB", "RGBA") else picture.convert("RGB"))


def _kohya_pictures(ws, handle, root: Path) -> list[np.ndarray]:
    """What the kohya dataset writer trains on for the same frames (no masked loss, no bucketing)."""
    spec = DatasetSpec(name="kohya_set", trigger="ohwx", bucket=False, mask_mode="none")
    written = write_kohya_dataset(ws, handle, spec, root)
    return [_as_musubi_reads(p) for p in sorted(written.subset_dir.glob("*.png"))]


def test_mixed_in_images_are_the_pictures_the_kohya_writer_trains_on(montage, tmp_path):
    ws, frames = montage
    rgba = np.zeros((48, 64, 4), np.uint8)
    rgba[..., 0] = 255  # pure red hidden under full transparency
    rgba[8:40, 16:48] = (20, 90, 200, 255)
    rgba[8:40, :16] = (0, 200, 0, 128)  # half transparent green
    (tmp_path / "cutout").mkdir()
    images.save_image(rgba, tmp_path / "cutout" / "cutout.png")
    cutout = ingest_folder(ws, tmp_path / "cutout")
    _, dataset = _write(ws, frames, "wan", tmp_path / "musubi", images=cutout)
    [written] = [p for p in (dataset.path / "images").iterdir() if p.suffix != ".txt"]
    [kohya] = _kohya_pictures(ws, cutout, tmp_path / "kohya")
    assert np.array_equal(_as_musubi_reads(written), kohya), "transparency flattened as the kohya writer does"
    assert tuple(_as_musubi_reads(written)[0, 40]) == (255, 255, 255), "no red, no grey under the transparency"

    _, dataset = _write(ws, frames, "wan", tmp_path / "musubi_jpeg", images=frames)
    sources = [item.path for item in ws.items(frames)]
    copies = sorted(p for p in (dataset.path / "images").iterdir() if p.suffix != ".txt")
    assert [p.suffix for p in copies] == [".jpg"] * len(sources)
    assert all(copy.read_bytes() == source.read_bytes() for copy, source in zip(copies, sources, strict=True))
    assert np.array_equal(_as_musubi_reads(copies[0]), _kohya_pictures(ws, frames, tmp_path / "kohya_jpeg")[0])


def _kohya_writer(montage, root: Path):
    ws = Workspace.open(root / "ws")
    frames = _frames(ws)

    def write(trigger: str) -> Path:
        spec = DatasetSpec(name="hero", trigger=trigger, if_exists="new_version")
        return write_kohya_dataset(ws, frames, spec, root / "datasets").report_path

    return write


def _musubi_writer(montage, root: Path):
    ws, frames = montage
    clips = cut_clips_stage(ws, frames, ClipOptions(model="wan", preset="ultrafast"))

    def write(trigger: str) -> Path:
        spec = VideoDatasetSpec(name="hero", trigger=trigger)
        return write_video_dataset(ws, clips, spec, root / "datasets").path / REPORT_NAME

    return write


@pytest.mark.parametrize("make_writer", [_kohya_writer, _musubi_writer], ids=["kohya", "musubi"])
def test_both_dataset_writers_version_a_taken_name_by_one_rule(montage, tmp_path, make_writer):
    """kohya's rule for both (musubi's writer once made a new version on every run, so a re-queued
    workflow copied every clip again and lost musubi's latent cache): the same sources and settings
    are the dataset already written, untouched; others are the next _vN; nothing is overwritten."""
    write = make_writer(montage, tmp_path)
    first = write("ohwx")
    stamp = first.stat().st_mtime_ns
    assert write("ohwx") == first and first.stat().st_mtime_ns == stamp, "a re-queue wrote the dataset again"
    second = write("sks")
    assert second.parent.name == "hero_v2" and first.parent.name == "hero"
    assert write("ohwx") == first and write("sks") == second
    assert write("zzz").parent.name == "hero_v3"
    assert first.stat().st_mtime_ns == stamp


def test_clips_without_a_shot_are_refused_with_a_clear_error(montage, tmp_path):
    ws, frames = montage
    with pytest.raises(ValueError, match="holds no clips"):
        write_video_dataset(ws, frames, VideoDatasetSpec(name="x", trigger="ohwx"), tmp_path)


MUSUBI = os.environ.get("MUSUBI_TUNER")
MUSUBI_PYTHON = os.environ.get("MUSUBI_PYTHON")


@pytest.mark.skipif(not (MUSUBI and MUSUBI_PYTHON), reason="set MUSUBI_TUNER and MUSUBI_PYTHON")
@pytest.mark.parametrize(("model", "architecture", "fps"), [("wan", "wan", 16.0), ("hunyuan_video", "hv", 24.0)])
def test_musubi_tuners_own_loader_accepts_the_toml_and_enumerates_one_item_per_clip(
        montage, tmp_path, model, architecture, fps):
    ws, frames = montage
    clips, dataset = _write(ws, frames, model, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(MUSUBI) / "src")}
    run = subprocess.run([MUSUBI_PYTHON, str(REPO / "tests" / "musubi_enumerate.py"), str(dataset.toml_path),
                          architecture], env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"musubi-tuner ({architecture}): {found['datasets']} dataset(s), {len(found['items'])} items:",
          *(f"{item['key']} {item['frames']} frames {item['size']} {item['caption']!r}" for item in found["items"]),
          sep="\n  ")
    expected = {Path(item.relpath).stem: item.meta[names.META_CLIP]["frames"] for item in ws.items(clips)}
    got = {Path(item["key"]).stem.rsplit("_", 1)[0]: item["frames"] for item in found["items"]}
    assert got == expected and len(found["items"]) == len(expected), "one training item per clip, at its length"
    assert dataset.fps == fps
    assert all(item["caption"] == "ohwx woman" for item in found["items"])
