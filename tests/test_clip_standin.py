"""A tiny random open_clip model, saved like a user would install one, opened by OUR loader."""

from __future__ import annotations

import json

import numpy as np
import pytest
from clip_standin import TINY_CFG, save_tiny_local_dir
from PIL import Image

from lora_foundry.models import clip_model as CM
from lora_foundry.models.registry import ModelMissingError


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models") / "open_clip"
    save_tiny_local_dir(root / "tiny-clip")
    return root


def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)) for _ in range(3)]


def test_local_dir_loads_through_the_registry(models_dir, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert "tiny-clip/" in CM.installed_choices([models_dir])
    folder = CM.resolve_clip("tiny-clip/", [models_dir])
    clip = CM.load_clip(folder, device="cpu")
    rows = CM.embed_pil_batch(clip, images())
    assert rows.shape == (3, 32)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    text = CM.embed_texts(clip, ["a boy with brown hair", "a meadow"])
    assert text.shape == (2, 32)
    labels = CM.zero_shot(clip, images(), ["smiling", "sad"])
    assert [label for label, _ in labels] and all(label in ("smiling", "sad") for label, _ in labels)
    # The offline switch is only set around our calls, not left behind.
    import os

    assert "HF_HUB_OFFLINE" not in os.environ


def test_loaded_weights_are_the_saved_ones(models_dir):
    from safetensors.torch import load_file

    clip = CM.load_clip(CM.resolve_clip("tiny-clip/", [models_dir]))
    saved = load_file(str(models_dir / "tiny-clip" / "open_clip_model.safetensors"))
    loaded = clip.model.state_dict()
    assert all(np.allclose(saved[k].numpy(), loaded[k].numpy()) for k in saved)


def test_file_plus_architecture(tmp_path):
    """A weights file named <arch>__<tag>.safetensors (smallest built-in arch, random weights)."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    model = open_clip.create_model("ViT-S-32", pretrained=None)
    folder = tmp_path / "open_clip"
    folder.mkdir()
    path = folder / "ViT-S-32__random.safetensors"
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, str(path))
    clip = CM.load_clip(CM.resolve_clip("ViT-S-32__random.safetensors", [folder]), "auto", "cpu")
    assert clip.identity.startswith("ViT-S-32:")
    assert CM.embed_pil_batch(clip, images()[:1]).shape == (1, 384)
    with torch.no_grad():
        assert torch.allclose(clip.model.visual.conv1.weight, model.visual.conv1.weight.half().float())
    renamed = folder / "mystery.safetensors"
    path.rename(renamed)
    with pytest.raises(ModelMissingError, match="architecture"):
        CM.load_clip(renamed, "auto")


def test_missing_weights_fail_at_once_and_never_download(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelMissingError, match="put ViT-B-32__laion2b_s34b_b79k.safetensors in"):
        CM.resolve_clip(None, [tmp_path / "open_clip"])
    with pytest.raises(ModelMissingError):
        CM.resolve_clip("openai", [tmp_path / "open_clip"])  # a tag is not a file: no download


def test_local_dir_without_weights_is_refused(tmp_path):
    folder = tmp_path / "open_clip" / "half-installed"
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG}))
    with pytest.raises(ModelMissingError, match="no weights"):
        CM.load_clip(CM.resolve_clip("half-installed/", [tmp_path / "open_clip"]))
