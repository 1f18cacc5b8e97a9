"""Broken, hostile and missing model files, through the loader, compose and training nodes.

A pickle renamed to .safetensors, corrupt and truncated headers, a pickled SAM 2 checkpoint,
LoRAs for two base models merged together, symlinked files from a shared model store, missing
weights, a missing sd-scripts and a trainer that crashes: each must fail with the file named and
what is wrong (never the advice to unpickle), or work when it is the user's legitimate setup.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from fixtures_fake_trainer import make_base_model, make_dataset
from hostile.hostile_fixtures import operator_trainer

from lora_foundry.lora.synthetic import SD15_MODULES, SDXL_MODULES, write_kohya_lora


@pytest.fixture()
def models(server, monkeypatch):
    """ComfyUI's model folders under ``tmp/models``, a shared store elsewhere on the disk."""
    root = server.tmp / "models"
    for folder in ("loras", "checkpoints", "diffusion_models", "sam2", "text_encoders", "vae"):
        (root / folder).mkdir(parents=True)
    comfy = server.nodes._comfy
    monkeypatch.setattr(comfy, "model_folder_paths", lambda folder: [root / folder])
    monkeypatch.setattr(comfy, "list_models", lambda folder: sorted(p.name for p in (root / folder).iterdir()))
    monkeypatch.delenv("LORA_FOUNDRY_MODELS", raising=False)
    compose = server.nodes.compose
    compose.CACHES.infos = type(compose.CACHES.infos)(16)
    return root


def info(server, name):
    return server.nodes.compose.LoRAInfo().info(name)


BROKEN_LORAS = {
    "pickled": (lambda p: torch.save({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, p),
                "not a safetensors file but a PyTorch checkpoint"),
    "raw_pickle": (lambda p: p.write_bytes(b"\x80\x04\x95" + b"\x00" * 40), "not a safetensors file but a Python pickle"),
    "huge_header": (lambda p: p.write_bytes(struct.pack("<Q", 2**40) + b"{}"), "corrupt safetensors header"),
    "not_json_header": (lambda p: p.write_bytes(struct.pack("<Q", 6) + b"{nope}"), r"corrupt safetensors header \(not JSON"),
    "zero_bytes": (lambda p: p.write_bytes(b""), "empty or truncated"),
}


@pytest.mark.parametrize("kind", list(BROKEN_LORAS))
def test_broken_lora_files_name_the_file_and_the_fault(server, models, kind):
    build, fault = BROKEN_LORAS[kind]
    build(models / "loras" / f"{kind}.safetensors")
    with pytest.raises(ValueError, match=f"{kind}.safetensors: {fault}") as refused:
        info(server, f"{kind}.safetensors")
    assert "weights_only" not in str(refused.value)


def test_a_truncated_lora_names_the_file(server, models):
    whole = models / "loras" / "whole.safetensors"
    write_kohya_lora(whole, SD15_MODULES, seed=1)
    data = whole.read_bytes()
    (models / "loras" / "cut.safetensors").write_bytes(data[: len(data) - 64])
    with pytest.raises(ValueError, match="cut.safetensors: truncated"):
        server.nodes.compose.MergeLoRAStack().merge([["cut.safetensors", 1.0, 1.0]], "m", "concat", 4, "fp16",
                                                    False)


def test_merging_loras_of_two_base_models_is_refused_naming_both(server, models):
    write_kohya_lora(models / "loras" / "one.safetensors", SD15_MODULES, seed=1,
                     metadata={"ss_base_model_version": "sd_v1"})
    write_kohya_lora(models / "loras" / "xl.safetensors", SDXL_MODULES, seed=2,
                     metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    with pytest.raises(ValueError, match="different base models: .*one.safetensors is SD1.x.*xl.safetensors is "
                                         "SDXL"):
        server.nodes.compose.MergeLoRAStack().merge([["one.safetensors", 1.0, 1.0], ["xl.safetensors", 1.0, 1.0]],
                                                    "m", "concat", 4, "fp16", False)
    assert not list((models / "loras").rglob("m.safetensors"))


def test_a_symlinked_lora_from_a_shared_store_is_followed(server, models):
    store = server.made / "store"
    write_kohya_lora(store / "shared.safetensors", SD15_MODULES, seed=3, metadata={"ss_base_model_version": "sd_v1"})
    (models / "loras" / "shared.safetensors").symlink_to(store / "shared.safetensors")
    text, _, base = info(server, "shared.safetensors")["result"]
    assert base == "SD1.x"


def test_missing_sam2_weights_say_which_file_and_where(server, models):
    with pytest.raises(FileNotFoundError, match=f"put sam2.1_hiera_tiny.pt in {models / 'sam2'}"):
        server.nodes.loaders.SAM2Loader().load("sam2.1_hiera_tiny.pt", "auto (from file name)", "cpu")


def test_a_pickled_sam2_checkpoint_is_refused_naming_it(server, models):
    torch.save({"model": {"x": torch.zeros(1)}, "payload": Path("/")}, models / "sam2" / "sam2.1_hiera_tiny.pt")
    with pytest.raises(ValueError, match="sam2.1_hiera_tiny.pt: holds Python objects besides tensors") as refused:
        server.nodes.loaders.SAM2Loader().load("sam2.1_hiera_tiny.pt", "auto (from file name)", "cpu")
    assert "weights_only" not in str(refused.value)


@pytest.fixture()
def trainer(server, models, monkeypatch):
    """A fake sd-scripts set up by the operator, one base model and one dataset."""
    config = operator_trainer(server, monkeypatch)
    make_base_model(models / "checkpoints")
    make_dataset(server.output / "lora_foundry" / "datasets" / "hero")
    return config


def train(server, **overrides):
    values = dict(architecture="sd15", lora_type="character", base_model="base.safetensors", output_name="hero",
                  network_variant="lora", steps=4, learning_rate=0.0, rank=0, alpha=0.0, resolution=64, train_seed=1,
                  dry_run=True, resume=False, dataset_path="hero")
    values.update(overrides)
    return server.nodes.training.KohyaTrainLoRA().train(**values)


def test_a_symlinked_base_model_is_followed(server, trainer, models):
    make_base_model(server.made / "store", "big.safetensors")
    (models / "checkpoints" / "linked.safetensors").symlink_to(server.made / "store" / "big.safetensors")
    assert train(server, base_model="linked.safetensors")["result"][2].startswith("dry run")


def test_every_missing_training_model_is_named_at_once(server, trainer):
    with pytest.raises(FileNotFoundError, match="2 model files are missing: base model not found: put gone."
                                                "safetensors .*t5xxl not found: put t5.safetensors"):
        train(server, architecture="flux", base_model="gone.safetensors", t5xxl="t5.safetensors")


def test_missing_sd_scripts_says_how_to_configure_it(server, trainer):
    trainer.unlink()
    with pytest.raises(RuntimeError, match="sd-scripts"):
        train(server)


def test_a_crashing_trainer_fails_with_its_log_and_publishes_nothing(server, trainer, monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "crash")
    with pytest.raises(RuntimeError, match="(?i)exit|crash|fail"):
        train(server, dry_run=False)
    assert not list(server.tmp.joinpath("models", "loras").rglob("hero*.safetensors"))


@pytest.mark.parametrize("name", ["/etc/passwd", "../../private/secret.png", "..\\..\\x.pt"])
def test_a_loader_takes_a_file_name_never_a_path(server, models, name):
    with pytest.raises(OSError, match="model_name .* is not one of the files in models/sam2$"):
        server.nodes.loaders.SAM2Loader().load(name, "auto (from file name)", "cpu")


def test_a_real_safetensors_file_whose_header_length_starts_with_0x80_loads(tmp_path):
    """A header of 0x..80 bytes makes a valid file start with the byte a pickle starts with: it must
    still be taken for what it is (the stand-in composition LoRA had exactly this header length)."""
    import struct

    import numpy as np
    from safetensors.numpy import save_file

    from lora_foundry.models.weights_file import check_safetensors

    path = tmp_path / "lora.safetensors"
    for padding in range(300):  # grow the metadata until the header length ends in 0x80
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(path), metadata={"pad": "x" * padding})
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80 and struct.unpack("<Q", path.read_bytes()[:8])[0] % 256 == 0x80
    check_safetensors(path)  # no error
