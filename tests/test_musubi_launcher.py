"""The musubi-tuner launcher on the sd-scripts launcher core, against a stand-in that prints
musubi-tuner's own lines (tests/fixtures_fake_musubi.py): the two caching steps run and are
checked, live loss per step, cancel, honest success, failures named by step."""

from __future__ import annotations

import json
import tomllib
from dataclasses import replace

import pytest
from fixtures_fake_musubi import make_fake_musubi

from lora_foundry.kohya.launcher import TrainingFailed
from lora_foundry.kohya.log_parse import LossPoint
from lora_foundry.kohya.operator_config import TrainerNotConfigured
from lora_foundry.musubi.install import load_musubi_install, preset_for
from lora_foundry.musubi.launcher import MusubiRequest, cache_directories, cached, train_video_lora
from lora_foundry.progress import CallbackProgress

CLIPS = 3


def _dataset(root):
    videos = root / "set" / "videos"
    videos.mkdir(parents=True)
    for i in range(CLIPS):
        (videos / f"shot{i:04d}_00.mp4").write_bytes(b"not decoded by the stand-in")
        (videos / f"shot{i:04d}_00.txt").write_text("ohwx woman, walking\n")
    toml = root / "set" / "dataset.toml"
    toml.write_text(f'[general]\nresolution = [640, 352]\ncaption_extension = ".txt"\n\n[[datasets]]\n'
                    f'video_directory = "{videos}"\ncache_directory = "{root / "set" / "cache"}"\n'
                    'frame_extraction = "full"\nmax_frames = 61\nsource_fps = 16.0\n')
    return toml


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    monkeypatch.delenv("FAKE_MUSUBI_MODE", raising=False)
    return make_fake_musubi(tmp_path / "ext"), _dataset(tmp_path), tmp_path / "runs"


def _request(toml, epochs=2):
    return MusubiRequest("wan21_t2v_1.3B", toml, "hero_wan", CLIPS, max_train_epochs=epochs)


def test_caches_then_trains_with_live_loss_and_an_honest_lora(setup):
    install, toml, runs = setup
    events = []
    outcome = train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs, on_event=events.append)
    assert outcome.steps == {"cache_latents": "done", "cache_text": "done", "train": "done"}
    assert cached(cache_directories(toml), preset_for("wan21_t2v_1.3B"), "cache_latents") == CLIPS
    assert cached(cache_directories(toml), preset_for("wan21_t2v_1.3B"), "cache_text") == CLIPS
    losses = [(e.step, e.loss) for e in events if isinstance(e, LossPoint)]
    assert losses == [(step, float(f"{1.0 / step:.3g}")) for step in range(1, 2 * CLIPS + 1)]
    assert outcome.lora_path == runs / "hero_wan" / "hero_wan.safetensors" and outcome.lora_path.is_file()
    report = json.loads(outcome.report_path.read_text())
    assert report["status"] == "success" and report["steps_done"] == 2 * CLIPS
    log = (runs / "hero_wan" / "train.log").read_text()
    assert "--network_module networks.lora_wan" in log and "--task t2v-1.3B" in log
    again = train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs)
    assert again.steps == {"cache_latents": "skipped", "cache_text": "skipped", "train": "done"}


def test_the_dataset_toml_is_read_once_for_all_three_steps(setup, monkeypatch):
    """The launcher parses the dataset TOML once for the cache checks before and after both caching
    steps (it parsed it four times a run); counted on the real ``tomllib.loads`` (musubi's own
    scripts read it in their own processes)."""
    install, toml, runs = setup
    text, parsed, real_loads = toml.read_text(), [], tomllib.loads
    monkeypatch.setattr(tomllib, "loads", lambda source, **more: parsed.append(source) or real_loads(source, **more))
    outcome = train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs)
    assert outcome.steps == {"cache_latents": "done", "cache_text": "done", "train": "done"}
    assert parsed.count(text) == 1


def test_caches_made_for_another_task_or_other_model_files_are_made_again(setup):
    """A dataset is reused now (the same clips again are the dataset already written), and so are its
    caches: only caches made by the same step with the same flags and model files are skipped. Wan's
    image-to-video latents hold the first frame's latents too (musubi's ``--i2v``) under the same file
    names as text-to-video ones, and a replaced VAE makes other latents: both are cached again."""
    install, toml, runs = setup
    outcome = train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml, epochs=1), runs)
    assert outcome.steps["cache_latents"] == "done"
    i2v = preset_for("wan21_i2v_14B")
    request = MusubiRequest(i2v.name, toml, "hero_i2v", CLIPS, max_train_epochs=1)
    again = train_video_lora(install, i2v, request, runs)
    assert again.steps["cache_latents"] == "done", "t2v latents were taken for an i2v run"
    assert "--i2v" in (runs / "hero_i2v" / "cache_latents.log").read_text().splitlines()[0]
    assert train_video_lora(install, i2v, replace(request, output_name="hero_i2v_2"), runs).steps == {
        "cache_latents": "skipped", "cache_text": "skipped", "train": "done"}
    vae = install.models[i2v.name]["vae"]
    vae.write_bytes(b"another VAE, same file name")
    replaced = train_video_lora(install, i2v, replace(request, output_name="hero_i2v_3"), runs)
    assert replaced.steps == {"cache_latents": "done", "cache_text": "skipped", "train": "done"}
    assert str(vae.parent) not in (toml.parent / "cache" / "lora_foundry_cache_latents.json").read_text()


def test_an_awkward_output_name_names_the_run_folder_and_the_lora_alike(setup):
    install, toml, runs = setup
    request = MusubiRequest("wan21_t2v_1.3B", toml, "hero wan?", CLIPS, max_train_epochs=1)
    outcome = train_video_lora(install, preset_for("wan21_t2v_1.3B"), request, runs)
    assert outcome.lora_path == runs / "hero wan_" / "hero wan_.safetensors" and outcome.lora_path.is_file()

def test_a_failed_latent_cache_is_reported_by_name_and_nothing_trains(setup, monkeypatch):
    install, toml, runs = setup
    monkeypatch.setenv("FAKE_MUSUBI_MODE", "latents_crash")
    with pytest.raises(TrainingFailed, match=r"step cache_latents failed: musubi-tuner wan_cache_latents.py "
                                             r"exited with code 1") as failed:
        train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs)
    assert "CUDA out of memory" in str(failed.value)
    assert not (runs / "hero_wan" / "train.log").exists()
    report = json.loads((runs / "hero_wan" / "report.json").read_text())
    assert report["steps"]["cache_latents"].startswith("failed")


def test_a_text_cache_step_that_exits_0_without_caches_is_a_failure(setup, monkeypatch):
    install, toml, runs = setup
    monkeypatch.setenv("FAKE_MUSUBI_MODE", "text_nocache")
    with pytest.raises(TrainingFailed, match=r"step cache_text failed: .*cached 0 of 3 clips"):
        train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs)


def test_cancel_during_training_stops_the_run_and_publishes_nothing(setup, monkeypatch):
    install, toml, runs = setup
    monkeypatch.setenv("FAKE_MUSUBI_MODE", "slow")  # training holds before step 3 until stopped
    seen = []
    progress = CallbackProgress(lambda done, total: seen.append(done), should_stop=lambda: bool(seen) and seen[-1] >= 2)
    outcome = train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs, progress=progress)
    assert outcome.steps["train"] == "cancelled" and outcome.lora_path is None
    assert outcome.result.status == "cancelled" and outcome.result.steps_done == 2
    assert not (runs / "hero_wan" / "hero_wan.safetensors").exists()


def test_hunyuan_preset_passes_its_two_text_encoders_and_vae_options(setup):
    install, toml, runs = setup
    train_video_lora(install, preset_for("hunyuan_video"), MusubiRequest("hunyuan_video", toml, "hero_hv", CLIPS,
                                                                         max_train_epochs=1), runs)
    assert "--text_encoder1" in (runs / "hero_hv" / "cache_text.log").read_text()
    assert "--vae_tiling" in (runs / "hero_hv" / "cache_latents.log").read_text()
    assert "--network_module networks.lora " in (runs / "hero_hv" / "train.log").read_text()


def test_the_presets_training_models_reach_the_training_command_line(setup):
    """Wan 2.2 trains its high-noise model too when the preset lists it (musubi-tuner's docs/wan.md:
    ``--dit`` low noise, ``--dit_high_noise`` high noise): every model role goes to the command."""
    install, toml, runs = setup
    preset = replace(preset_for("wan22_t2v_A14B"), train_models=("dit", "dit_high_noise"))
    high = install.models[preset.name]["dit"].with_name("wan22_high_noise.safetensors")
    high.write_bytes(b"placeholder")
    install = replace(install, models={**install.models, preset.name: {**install.models[preset.name],
                                                                          "dit_high_noise": high}})
    train_video_lora(install, preset, MusubiRequest(preset.name, toml, "hero_22", CLIPS, max_train_epochs=1), runs)
    command = (runs / "hero_22" / "train.log").read_text().splitlines()[0]
    assert f"--dit {install.models[preset.name]['dit']} " in command and f"--dit_high_noise {high} " in command
    assert "--dit" not in (runs / "hero_22" / "cache_latents.log").read_text().splitlines()[0]


def test_a_hostile_dataset_toml_is_refused_by_name_before_any_step(setup):
    """The TOML lies in the output folder, where clients can upload: nested to blow tomllib's stack,
    it is refused naming the dataset's file (no server path), and nothing runs."""
    install, toml, runs = setup
    toml.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ValueError, match="video dataset set/dataset.toml is nested more than") as refused:
        train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs)
    assert str(toml.parent) not in str(refused.value) and not (runs / "hero_wan" / "cache_latents.log").exists()


def test_the_install_comes_from_the_operator_and_names_what_is_missing(tmp_path):
    with pytest.raises(TrainerNotConfigured, match="musubi-tuner is not configured"):
        load_musubi_install(tmp_path, environ={})
    (tmp_path / "lora_foundry").mkdir()
    (tmp_path / "lora_foundry" / "musubi.json").write_text(json.dumps(
        {"musubi_tuner": str(tmp_path), "models": {"wan21_t2v_1.3B": {"dit": "/nowhere/dit.safetensors"}}}))
    install = load_musubi_install(tmp_path, environ={"MUSUBI_PYTHON": "/usr/bin/python3"})
    assert install.model(preset_for("wan21_t2v_1.3B"), "dit").name == "dit.safetensors"
    with pytest.raises(TrainerNotConfigured, match="no t5 model for wan21_t2v_1.3B"):
        install.model(preset_for("wan21_t2v_1.3B"), "t5")


def test_an_operator_file_that_is_not_an_object_is_named_not_crashed_on(tmp_path):
    """A ``musubi.json`` holding a list raised AttributeError (``.get`` on a list); it is the operator's
    mistake to fix, named like any other (one reader for trainer.json and musubi.json)."""
    (tmp_path / "lora_foundry").mkdir()
    (tmp_path / "lora_foundry" / "musubi.json").write_text("[1, 2]")
    with pytest.raises(TrainerNotConfigured, match="musubi.json is not valid: it must hold one JSON object"):
        load_musubi_install(tmp_path, environ={})


def test_a_published_name_is_refused_before_any_step_and_the_lora_is_published_once(setup, tmp_path):
    """The launch publishes the verified LoRA into the loras folder itself (as kohya's and LECO's do):
    the same name again is refused before musubi caches anything, and the first copy is untouched."""
    install, toml, runs = setup
    loras = tmp_path / "loras"
    published = loras / "hero_wan.safetensors"
    outcome = train_video_lora(install, preset_for("wan21_t2v_1.3B"), _request(toml), runs, published=published)
    assert outcome.published == published and published.read_bytes() == outcome.lora_path.read_bytes()
    assert json.loads(outcome.report_path.read_text())["published"] == str(published)
    before = published.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="a LoRA named hero_wan.safetensors already exists"):
        train_video_lora(install, preset_for("wan21_t2v_1.3B"), replace(_request(toml), output_name="hero_2"),
                         runs, published=published)
    assert not (runs / "hero_2").exists() and published.stat().st_mtime_ns == before
