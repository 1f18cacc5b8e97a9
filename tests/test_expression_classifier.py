"""A classifier the user supplies tags face expressions: a tiny ONNX classifier exported here, whose
answer is decided by mean brightness (bright → smiling, middle → neutral, dark → angry), opened by
the same loader users run, on real footage crops and through LF Detect Faces."""

from __future__ import annotations

import numpy as np
import pytest
from test_faces_standin import MOBILE, save_random_retinaface

from lora_foundry.models import expression_model as EM
from lora_foundry.models.registry import ModelMissingError, resolve

LABELS = ["smiling", "neutral", "angry"]
HEIGHT, WIDTH = 48, 64  # not square: a loader that swapped them would fail at run time
AMBIGUOUS = 0.03  # crops this close to a threshold are not asserted (resizing moves the mean a little)


def expected_label(rgb: np.ndarray) -> str | None:
    """The stand-in's rule on the crop itself: brightness > 2/3 smiling, < 1/3 angry, else neutral."""
    brightness = float(rgb[..., :3].astype(np.float64).mean() / 255.0)
    if min(abs(brightness - 1 / 3), abs(brightness - 2 / 3)) < AMBIGUOUS:
        return None
    return "smiling" if brightness > 2 / 3 else "angry" if brightness < 1 / 3 else "neutral"


def save_brightness_classifier(path, mean=EM.IMAGENET_MEAN, std=EM.IMAGENET_STD, labels_txt=True,
                               metadata=None, channels=3):
    """Export the stand-in: it undoes the (mean, std) normalisation it expects, so it only answers by
    the rule when the loader normalises as the file says."""
    import onnx
    import torch

    class Brightness(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, x):
            level = (x * self.std + self.mean).mean(dim=(1, 2, 3))
            return torch.stack([60 * (level - 2 / 3), level * 0.0, 60 * (1 / 3 - level)], dim=1)

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(Brightness().eval(), (torch.zeros(1, channels, HEIGHT, WIDTH),), str(path), input_names=["image"],
                      output_names=["logits"], dynamo=False, opset_version=17)
    if metadata:
        model = onnx.load(str(path))
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(path))
    if labels_txt:
        path.with_suffix(".txt").write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def real_crops(media_dir):
    """Face-sized (112 px) crops of a real frame, plus darkened, mid-grey and brightened copies."""
    import av

    with av.open(str(media_dir / "signer_book.mkv")) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    height, width = frame.shape[:2]
    crops = [frame[y:y + 112, x:x + 112] for y in range(0, height - 112, height // 3)
             for x in range(0, width - 112, width // 4)]
    variants = []
    for crop in crops[:6]:
        base = crop.astype(np.float32)
        variants += [base * 0.2, base * 0.2 + 0.4 * 255, 255 - (255 - base) * 0.2]
    return crops + [np.clip(v, 0, 255).astype(np.uint8) for v in variants]


def test_bright_mid_and_dark_crops_get_the_classifiers_labels(tmp_path, real_crops):
    folder = tmp_path / "expression"
    save_brightness_classifier(folder / "mine.onnx", mean=(0.9, 0.9, 0.9), std=(0.05, 0.05, 0.05),
                               labels_txt=False, metadata={"labels": ", ".join(LABELS), "mean": "0.9,0.9,0.9",
                                                           "std": "0.05"})
    model = EM.load_expression(resolve(EM.EXPRESSION_SPEC, "mine.onnx", [folder]), "cpu")
    assert model.details.labels == LABELS and model.details.size == (WIDTH, HEIGHT) and model.details.std == (0.05,)
    results = EM.classify(model, real_crops)
    checked = [(label, expected_label(crop)) for (label, _), crop in zip(results, real_crops, strict=True)
               if expected_label(crop)]
    assert len(checked) >= len(real_crops) - 4
    assert all(label == wanted for label, wanted in checked), checked
    assert {label for label, _ in checked} == set(LABELS)
    assert all(0.34 <= probability <= 1.0 for _, probability in results)


def test_labels_from_the_txt_file_with_imagenet_defaults(tmp_path):
    path = save_brightness_classifier(tmp_path / "expression" / "plain.onnx")
    model = EM.load_expression(path)
    assert model.details.labels == LABELS and model.details.mean == EM.IMAGENET_MEAN
    grey = lambda value: np.full((90, 70, 3), value, np.uint8)  # noqa: E731
    assert [label for label, _ in EM.classify(model, [grey(240), grey(128), grey(20)])] == LABELS
    path.with_suffix(".txt").write_text("happy\ncalm\ncross\n", encoding="utf-8")
    assert EM.load_expression(path).details.labels == ["happy", "calm", "cross"]  # edited labels are read
    assert EM.model_state(path) != EM.model_identity(path)  # the .txt is part of the identity


def test_greyscale_classifier_with_raw_pixel_scale(tmp_path):
    """FER+-style input: one channel, pixels 0..255 (metadata mean 0, std 1/255)."""
    path = save_brightness_classifier(tmp_path / "grey.onnx", mean=(0.0,), std=(1 / 255,), channels=1,
                                      metadata={"mean": "0", "std": str(1 / 255)})
    model = EM.load_expression(path)
    assert model.details.channels == 1 and not model.details.channels_last
    colours = [np.full((64, 64, 3), (250, 240, 230), np.uint8), np.full((64, 64, 3), (10, 30, 20), np.uint8)]
    assert [label for label, _ in EM.classify(model, colours)] == ["smiling", "angry"]


def test_files_without_matching_labels_are_refused(tmp_path):
    path = save_brightness_classifier(tmp_path / "expression" / "bare.onnx", labels_txt=False)
    with pytest.raises(ValueError, match=r"put bare.txt next to it"):
        EM.load_expression(path)
    path.with_suffix(".txt").write_text("happy\nsad\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"outputs 3 scores but has 2 labels"):
        EM.load_expression(path)


def test_missing_classifier_gives_the_registry_error(pack, models_root):
    loader = pack.nodes.loaders.ExpressionClassifierLoader
    missing = pack.lora_foundry.models.registry.ModelMissingError
    with pytest.raises(missing, match=r"put emotion-ferplus-8.onnx in .*expression .*from https://"):
        loader().load("emotion-ferplus-8.onnx", "cpu")
    with pytest.raises(missing, match=r"model_name 'mine.onnx' is not one of the files in models/expression"):
        loader().load("mine.onnx", "auto")
    assert loader.IS_CHANGED("mine.onnx") == "missing|auto"
    with pytest.raises(ModelMissingError, match=r"expression"):
        resolve(EM.EXPRESSION_SPEC, None, [models_root / "expression"])


def test_detect_faces_writes_the_classifiers_label(pack, media_dir, output_root, models_root):
    save_random_retinaface(models_root / "facedetection")
    save_brightness_classifier(models_root / "expression" / "tiny-expression.onnx")
    tagging = pack.nodes.tagging
    assert "expression_model" in tagging.DetectFaces.INPUT_TYPES()["optional"]
    frames, _ = pack.nodes.frames.LoadVideoFrames().load(
        str(media_dir / "montage_6_shots.mp4"), "expressions", mode="interval", interval_s=1.0, per_shot=1,
        start_s=0.0, end_s=0.0, max_frames=6, long_side=256, frame_format="png")
    loaders = pack.nodes.loaders
    face = loaders.FaceLoader().load(MOBILE, "cpu")[0]
    classifier = loaders.ExpressionClassifierLoader().load("tiny-expression.onnx", "cpu")[0]
    assert loaders.ExpressionClassifierLoader().load("tiny-expression.onnx", "cpu")[0] is classifier
    crops, report = tagging.DetectFaces().detect(frames, face, 0.0, 0.3, 8, 3, "sad, surprised", None,
                                                 classifier)["result"]
    Workspace = pack.lora_foundry.workspace.Workspace
    load_image = pack.lora_foundry.media.images.load_image
    with Workspace.from_handle(crops) as ws:
        faces = ws.items(crops)
        expressions, tags = ws.annotations(crops, "expression"), ws.annotations(crops, "tags")
        assert faces and "face crops" in report
        checked = 0
        for item in faces:
            label = expressions[item.id]["label"]
            assert label in LABELS and label in tags[item.id]  # the classifier's labels, not the vocabulary
            wanted = expected_label(load_image(item.path))
            if wanted:
                assert label == wanted, (item.path, label, wanted)
                checked += 1
        assert checked >= len(faces) // 2
