"""Preflight refuses, before any model loads, what sd-scripts would only refuse minutes later:
a LyCORIS version that cannot train SD1.5, shuffled captions with cached text-encoder outputs,
tokenizer folders without the files sd-scripts reads, and resolutions its bucketing cannot place."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from fixtures_fake_trainer import make_base_model, make_dataset, make_fake_install, write_tokenizer_files
from PIL import Image

from lora_foundry.kohya import train_config
from lora_foundry.kohya.operator_config import TrainerInstall
from lora_foundry.kohya.preflight import PreflightError, tokenizer_problems
from lora_foundry.kohya.presets import get_preset
from lora_foundry.kohya.sdscripts_buckets import BucketRefused, BucketSettings, sdscripts_bucket
from lora_foundry.kohya.tokenizer_cache import build_clip_l, clip_vocabulary, open_clip_bpe

ALL_TOKENIZERS = ("openai_clip-vit-large-patch14", "google_t5-v1_1-xxl")


def venv_install(root: Path, lycoris: str | None) -> TrainerInstall:
    """A fake install whose python sits in a venv layout, with lycoris-lora ``lycoris`` installed."""
    install = make_fake_install(root, tokenizers=ALL_TOKENIZERS)
    bindir = root / "venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(sys.executable)
    site = root / "venv" / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    if lycoris:
        (site / f"lycoris_lora-{lycoris}.dist-info").mkdir()
        (site / "lycoris").mkdir()
    return TrainerInstall(install.sd_scripts_dir, bindir / "python", tokenizer_cache_dir=install.tokenizer_cache_dir,
                          source="test")


def request(dataset: Path, base: Path, architecture: str = "sd15", variant: str = "lora", resolution: int = 64,
            **kwargs) -> train_config.TrainRequest:
    preset = get_preset(architecture, "character").with_overrides(max_train_steps=4, resolution=resolution)
    return train_config.TrainRequest(architecture=architecture, dataset_dir=dataset,
                                     dataset_toml=dataset / "dataset.toml", base_model=base, output_name="hero",
                                     preset=preset, variant=variant, **kwargs)


@pytest.fixture()
def parts(tmp_path):
    return make_dataset(tmp_path / "dataset"), make_base_model(tmp_path / "models" / "checkpoints"), tmp_path


@pytest.mark.parametrize("variant", ["loha", "lokr", "locon"])
def test_lycoris_4_is_refused_for_sd15_naming_the_version_and_the_fix(parts, variant):
    dataset, base, tmp = parts
    install = venv_install(tmp / "kohya", "4.1.3")
    with pytest.raises(PreflightError) as info:
        train_config.plan_run(request(dataset, base, variant=variant), install, tmp / "runs", tmp / "loras")
    message = str(info.value)
    assert "lycoris-lora 4.1.3" in message and "duplicated lora name" in message
    assert f"{install.python} -m pip install --no-deps lycoris-lora==3.4.0" in message
    assert not (tmp / "runs" / "hero" / "run.toml").exists()


def test_lycoris_3_4_passes_and_4_is_fine_where_it_works(parts):
    dataset, base, tmp = parts
    plan = train_config.plan_run(request(dataset, base, variant="loha"), venv_install(tmp / "a", "3.4.0"),
                                 tmp / "runs_a", tmp / "loras")
    assert plan.config["training"]["network_module"] == "lycoris.kohya"
    sdxl = request(dataset, base, architecture="sdxl", variant="lokr", resolution=256)
    install = venv_install(tmp / "b", "4.1.3")
    (install.tokenizer_cache_dir / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k").mkdir()
    write_tokenizer_files(install.tokenizer_cache_dir / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k")
    assert train_config.plan_run(sdxl, install, tmp / "runs_b", tmp / "loras").config["training"]["network_args"]


def test_missing_lycoris_names_the_pinned_install_and_a_dry_run_reports_it(parts):
    dataset, base, tmp = parts
    install = venv_install(tmp / "kohya", None)
    with pytest.raises(PreflightError, match=r"--no-deps lycoris-lora==3\.4\.0"):
        train_config.plan_run(request(dataset, base, variant="lokr"), install, tmp / "runs", tmp / "loras")
    plan = train_config.plan_run(request(dataset, base, variant="lokr"), install, tmp / "runs", tmp / "loras",
                                 dry_run=True)
    assert any("would be refused" in w and "lycoris-lora==3.4.0" in w for w in plan.warnings)


def flux_request(dataset: Path, base: Path, tmp: Path, **options) -> train_config.TrainRequest:
    extras = {key: make_base_model(tmp / "models" / "text_encoders", f"{key}.safetensors") for key in ("clip_l", "t5xxl", "ae")}
    return request(dataset, base, architecture="flux", resolution=256, extra_models=extras, extra_options=options)


def tag_dataset(dataset: Path, extra: str = "") -> None:
    """The writer's TOML for tag-style captions: shuffle_caption on (plus ``extra`` lines)."""
    toml = dataset / "dataset.toml"
    toml.write_text(toml.read_text().replace("keep_tokens = 1\n", f"keep_tokens = 1\nshuffle_caption = true\n{extra}"))


def test_flux_with_tag_captions_turns_shuffle_caption_off_with_a_warning(parts):
    dataset, base, tmp = parts
    tag_dataset(dataset)
    plan = train_config.plan_run(flux_request(dataset, base, tmp), make_fake_install(tmp / "k", ALL_TOKENIZERS),
                                 tmp / "runs", tmp / "loras")
    assert plan.config["training"]["cache_text_encoder_outputs"] is True
    written = tomllib.loads(plan.dataset_toml.read_text())
    assert written["general"]["shuffle_caption"] is False
    assert any("shuffle_caption turned off" in w for w in plan.warnings)


def test_shuffle_is_kept_when_text_encoder_outputs_are_not_cached(parts):
    dataset, base, tmp = parts
    tag_dataset(dataset)
    plan = train_config.plan_run(flux_request(dataset, base, tmp, cache_text_encoder_outputs=False),
                                 make_fake_install(tmp / "k", ALL_TOKENIZERS), tmp / "runs", tmp / "loras")
    assert tomllib.loads(plan.dataset_toml.read_text())["general"]["shuffle_caption"] is True and not plan.warnings


def test_caption_dropout_with_cached_outputs_is_refused(parts):
    dataset, base, tmp = parts
    tag_dataset(dataset, "caption_dropout_rate = 0.1\n")
    with pytest.raises(PreflightError, match="caption_dropout_rate in general"):
        train_config.plan_run(flux_request(dataset, base, tmp), make_fake_install(tmp / "k", ALL_TOKENIZERS),
                              tmp / "runs", tmp / "loras")


def test_an_empty_t5_folder_is_refused_naming_the_files_sd_scripts_reads(parts):
    dataset, base, tmp = parts
    install = make_fake_install(tmp / "k", ("openai_clip-vit-large-patch14",))
    (install.tokenizer_cache_dir / "google_t5-v1_1-xxl").mkdir()
    with pytest.raises(PreflightError) as info:
        train_config.plan_run(flux_request(dataset, base, tmp), install, tmp / "runs", tmp / "loras")
    assert "google_t5-v1_1-xxl has no tokenizer.json or spiece.model" in str(info.value)


def test_empty_clip_folder_is_refused_and_the_built_cache_passes(parts):
    dataset, base, tmp = parts
    install = make_fake_install(tmp / "k", ())
    (install.tokenizer_cache_dir / "openai_clip-vit-large-patch14").mkdir(parents=True)
    with pytest.raises(PreflightError, match="has no vocab.json.*has no merges.txt.*lora-foundry tokenizers"):
        train_config.plan_run(request(dataset, base), install, tmp / "runs", tmp / "loras")
    build_clip_l(install.tokenizer_cache_dir)
    assert train_config.plan_run(request(dataset, base), install, tmp / "runs", tmp / "loras").image_count == 4


def test_sd2_tokenizer_is_read_from_the_folder_itself_not_a_tokenizer_subfolder(tmp_path):
    folder = tmp_path / "stabilityai_stable-diffusion-2"
    write_tokenizer_files(folder / "tokenizer")
    assert tokenizer_problems(tmp_path, "stabilityai/stable-diffusion-2")  # subfolder only: sd-scripts fails
    write_tokenizer_files(folder)
    assert tokenizer_problems(tmp_path, "stabilityai/stable-diffusion-2") == []


def test_the_built_clip_l_cache_is_clips_own_vocabulary(tmp_path):
    """Same tokens in the same order and the same merges as open_clip's CLIP tokenizer (open_clip 3
    spells the two special tokens differently from the Hugging Face files sd-scripts loads)."""
    from open_clip.tokenizer import SimpleTokenizer

    reference = SimpleTokenizer()
    folder = build_clip_l(tmp_path)
    import json

    vocab = json.loads((folder / "vocab.json").read_text())
    assert list(vocab)[:-2] == list(reference.encoder)[:-2] and len(vocab) == 49408
    assert list(vocab)[-2:] == ["<|startoftext|>", "<|endoftext|>"]
    merges = (folder / "merges.txt").read_text().splitlines()[1:]
    assert [tuple(m.split()) for m in merges] == list(reference.bpe_ranks)
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 77
    assert clip_vocabulary(open_clip_bpe())[0] == vocab


def frames_dataset(root: Path, size: tuple[int, int]) -> Path:
    """A dataset of video-frame-shaped images with the writer's bucket settings (no upscale)."""
    dataset = make_dataset(root, images=2)
    for png in dataset.glob("*/*.png"):
        Image.new("RGB", size, (90, 120, 150)).save(png)
    toml = dataset / "dataset.toml"
    toml.write_text(toml.read_text().replace("enable_bucket = true\n", "enable_bucket = true\nbucket_no_upscale = true\n"
                                             "bucket_reso_steps = 64\nmin_bucket_reso = 256\nmax_bucket_reso = 2048\n"))
    return dataset


def test_resolution_64_with_16_9_frames_is_refused_and_128_works(tmp_path):
    dataset = frames_dataset(tmp_path / "d", (1024, 576))
    base = make_base_model(tmp_path / "models")
    install = make_fake_install(tmp_path / "k")
    with pytest.raises(PreflightError) as info:
        train_config.plan_run(request(dataset, base, resolution=64), install, tmp_path / "runs", tmp_path / "loras")
    message = str(info.value)
    assert "resolution 64" in message and "1024x576" in message and "ZeroDivisionError" in message
    assert "use resolution 128 or more" in message
    plan = train_config.plan_run(request(dataset, base, resolution=128), install, tmp_path / "runs", tmp_path / "loras")
    assert plan.image_count == 2


def test_bucket_rule_follows_sd_scripts_arithmetic():
    wide = BucketSettings(128, 128, 2048, 64, no_upscale=True)
    assert sdscripts_bucket(1024, 576, wide) == (128, 64)
    assert sdscripts_bucket(1920, 1080, BucketSettings(512, 256, 1024, 64, True)) == (640, 384)  # 683x384 after scaling, cropped to steps
    with pytest.raises(BucketRefused):
        sdscripts_bucket(576, 1024, BucketSettings(64, 64, 2048, 64, True))  # portrait frames too
    assert sdscripts_bucket(1024, 576, BucketSettings(64, 64, 2048, 64, False)) == (64, 64)  # upscaling buckets work
    with pytest.raises(BucketRefused, match="below one bucket step"):
        sdscripts_bucket(1024, 576, BucketSettings(32, 32, 2048, 64, False))

