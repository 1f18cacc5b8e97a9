"""Every loader says "put FILE in FOLDER" at validation, before anything runs: ComfyUI validates all
nodes of a prompt first, so a workflow needing SAM 2 and LaMa names both missing files in one answer."""

from __future__ import annotations

import pytest


@pytest.fixture()
def no_models(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_FOUNDRY_MODELS", str(tmp_path / "models"))
    monkeypatch.delenv("LAMA_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "models"


def test_each_loader_of_the_background_example_names_its_missing_file(pack, no_models):
    loaders = pack.nodes.loaders
    sam = loaders.SAM2Loader.VALIDATE_INPUTS(model_name="sam2.1_hiera_tiny.pt")
    lama = pack.nodes._checks.refusal(loaders.LaMaLoader.VALIDATE_INPUTS, model_name="big-lama.pt", if_missing="error")
    assert isinstance(sam, str) and "put sam2.1_hiera_tiny.pt in" in sam and "sam2" in sam
    assert isinstance(lama, str) and "put big-lama.pt in" in lama and "lama" in lama


def test_an_installed_file_or_the_fallback_passes(pack, no_models):
    folder = no_models / "sam2"
    folder.mkdir(parents=True)
    (folder / "sam2.1_hiera_tiny.pt").write_bytes(b"0")
    loaders = pack.nodes.loaders
    assert loaders.SAM2Loader.VALIDATE_INPUTS(model_name="sam2.1_hiera_tiny.pt") is True
    assert loaders.LaMaLoader.VALIDATE_INPUTS(model_name="big-lama.pt", if_missing="opencv fallback") is True


@pytest.mark.parametrize("name", ["SAM2Loader", "CLIPLoader", "PoseLoader", "FaceLoader",
                                  "ExpressionClassifierLoader"])
def test_every_loader_validates_its_file(pack, no_models, name):
    cls = getattr(pack.nodes.loaders, name)
    problem = cls.VALIDATE_INPUTS(model_name=cls.SPEC.default_file())
    assert isinstance(problem, str) and cls.SPEC.default_file() in problem
