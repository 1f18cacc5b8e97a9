"""A random RetinaFace saved under facexlib's file name, opened by OUR loader (weights_only)."""

from __future__ import annotations

import numpy as np
import pytest

from lora_foundry.models import face_model as FM
from lora_foundry.models.registry import ModelMissingError, resolve
from lora_foundry.stages.tagging.faces import crop_box, parse_vocabulary

MOBILE = "detection_mobilenet0.25_Final.pth"


def save_random_retinaface(folder, prefix="module."):
    """facexlib's mobile0.25 RetinaFace with random weights, keys prefixed as in the real file."""
    import torch
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    net = RetinaFace(network_name="mobile0.25", half=False, device=torch.device("cpu"))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({prefix + k: v for k, v in net.state_dict().items()}, folder / MOBILE)
    return net


@pytest.fixture(scope="module")
def face_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models") / "facedetection"
    save_random_retinaface(folder)
    return folder


def test_random_retinaface_loads_and_detects(face_dir, monkeypatch):
    import facexlib.utils.misc as misc

    monkeypatch.setattr(misc, "download_url_to_file", lambda *a, **k: pytest.fail("facexlib tried to download"))
    face = FM.load_face(resolve(FM.FACE_SPEC, MOBILE, [face_dir]), "cpu")
    assert face.model.backbone == "mobilenet0.25" and face.name == MOBILE
    image = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    faces = FM.detect(face, image, threshold=0.0)
    assert faces, "with threshold 0 a random net proposes boxes"
    assert all(len(f.landmarks) == 5 and 0.0 <= f.score <= 1.0 for f in faces)
    assert faces == sorted(faces, key=lambda f: -f.score)


def test_weights_match_the_saved_file(face_dir):
    import torch

    face = FM.load_face(face_dir / MOBILE)
    saved = torch.load(face_dir / MOBILE, weights_only=True)
    for key, value in face.model.state_dict().items():
        assert torch.equal(value, saved["module." + key])


def test_files_with_arbitrary_objects_are_refused(tmp_path):
    """A .pth holding a Python object (not just tensors) is refused by weights_only loading."""
    import argparse

    import torch

    folder = tmp_path / "facedetection"
    folder.mkdir()
    torch.save({"weights": argparse.Namespace(run="something")}, folder / MOBILE)
    with pytest.raises(ValueError, match=f"{MOBILE}: holds Python objects besides tensors") as refused:
        FM.load_face(folder / MOBILE)
    assert "weights_only" not in str(refused.value)


def test_missing_face_model_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelMissingError, match=r"put detection_Resnet50_Final.pth in .*facedetection"):
        resolve(FM.FACE_SPEC, None, [tmp_path / "facedetection"])


def test_crop_box_margin_and_limits():
    assert crop_box([100, 100, 200, 200], 0.3, 1000, 1000) == (70, 70, 230, 230)
    assert crop_box([0, 0, 50, 80], 0.3, 1000, 1000)[:2] == (0, 0)  # pushed inside, not cut
    left, top, right, bottom = crop_box([900, 10, 1000, 110], 0.5, 1000, 600)
    assert right == 1000 and right - left == bottom - top == 200
    assert parse_vocabulary("") and parse_vocabulary("happy, sad\nangry") == ["happy", "sad", "angry"]
