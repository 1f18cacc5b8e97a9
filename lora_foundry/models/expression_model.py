"""A facial-expression classifier the user supplies: any ONNX image classifier, on onnxruntime.

Folder: ``models/expression``. CLIP zero-shot knows expressions only as well as its captions did;
a classifier trained for faces (FER+, AffectNet models, the user's own fine-tune) is often better,
and for anime or 3D faces the user may have trained one. So we accept any ONNX file with one image
input and one score output, and read everything else from the file:

- labels: ``NAME.txt`` next to ``NAME.onnx`` (one per line) or the ONNX metadata key ``labels``
  (comma separated); their count must match the output's width.
- input: size and layout from the input shape (NCHW, or NHWC when the last dim is 1 or 3; one
  channel means greyscale); dynamic sizes default to 224.
- normalisation: metadata keys ``mean`` / ``std`` (three, or one, comma-separated numbers on the
  0..1 scale), ImageNet's when absent. Scores that are not already probabilities get a softmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import one_of
from ..fileio import announce_read
from .handle import ModelHandle, reopen_on
from .registry import ModelSpec, model_identity

EXPRESSION_FOLDER = "expression"
FERPLUS = "emotion-ferplus-8.onnx"
EXPRESSION_SPEC = ModelSpec(
    backend="expression classifier",
    folder=EXPRESSION_FOLDER,
    files={FERPLUS: ""},
    formats=(".onnx",),
    licence="MIT for FER+ (ONNX Model Zoo); your own classifier: its own licence",
    source="https://github.com/onnx/models/tree/main/validated/vision/body_analysis/emotion_ferplus",
    urls={FERPLUS: "https://github.com/onnx/models/tree/main/validated/vision/body_analysis/emotion_ferplus"
          " (add labels in emotion-ferplus-8.txt and metadata mean=0, std=0.00392156862745098)"},
    env_var="LORA_FOUNDRY_EXPRESSION_MODEL",
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_SIZE = 224
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
NUMPY_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64"}
# Room asked for besides the file's size when a CUDA session opens (an estimate; one crop a run).
EXPRESSION_WORK_BYTES = 256 << 20


@dataclass(frozen=True)
class ClassifierFacts:
    """What a classifier's file declares (the ``details`` of its handle)."""

    input_name: str
    labels: list[str]
    size: tuple[int, int]  # (width, height)
    channels: int  # 3 = RGB, 1 = greyscale
    channels_last: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dtype: str


def labels_file(path: Path) -> Path:
    """The same-name ``.txt`` that may hold the labels."""
    return Path(path).with_suffix(".txt")


def model_state(path: Path) -> str:
    """Identity of the ONNX file and its labels file: editing either must reload and re-tag."""
    txt = labels_file(path)
    return model_identity(path, variant=model_identity(txt) if txt.is_file() else "")


def read_labels(path: Path, metadata: dict[str, str]) -> list[str]:
    """Labels from ``NAME.txt`` (preferred) or the ``labels`` metadata key; ValueError if neither."""
    txt = labels_file(path)
    if txt.is_file():
        labels = [line.strip() for line in txt.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        labels = [part.strip() for part in metadata.get("labels", "").split(",") if part.strip()]
    if not labels:
        raise ValueError(f"{path.name} has no labels: put {txt.name} next to it (one label per line) "
                         "or add a 'labels' metadata key (comma separated) to the ONNX file")
    return labels


def _numbers(text: str | None, default: tuple[float, ...], key: str) -> tuple[float, ...]:
    if not text:
        return default
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError as error:
        raise ValueError(f"metadata {key}={text!r} is not a list of numbers") from error
    if len(values) not in (1, 3):
        raise ValueError(f"metadata {key}={text!r}: give one or three numbers")
    return values


def _layout(shape: Sequence[Any]) -> tuple[tuple[int, int], int, bool]:
    """((width, height), channels, channels_last) from a rank-4 input shape with maybe-named dims."""
    if len(shape) != 4:
        raise ValueError(f"expected a 4-d image input (NCHW or NHWC), got shape {list(shape)}")
    channels_last = shape[1] not in (1, 3) and shape[3] in (1, 3)
    channels = shape[3] if channels_last else shape[1]
    if channels not in (1, 3):
        raise ValueError(f"image input must have 1 or 3 channels, got shape {list(shape)}")
    height, width = (shape[1], shape[2]) if channels_last else (shape[2], shape[3])

    def known(dim: Any) -> int:
        return int(dim) if isinstance(dim, int) and dim > 0 else DEFAULT_SIZE

    return (known(width), known(height)), int(channels), bool(channels_last)


def load_expression(path: Path, device: str = "cpu") -> ModelHandle[ClassifierFacts]:
    """Open a resolved ONNX classifier on onnxruntime (``device`` "cpu" or "cuda") and check it.

    As for pose models, the handle keeps a CPU session and opens a CUDA one only inside
    ``on_device()`` (an onnxruntime session cannot move between devices).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"expression model {path} does not exist (resolve it first)")
    one_of(device, PROVIDERS, "expression model device")
    session = _session(path, "cpu")
    metadata = dict(session.get_modelmeta().custom_metadata_map or {})
    first = session.get_inputs()[0]
    size, channels, channels_last = _layout(first.shape)
    labels = read_labels(path, metadata)
    width = session.get_outputs()[0].shape[-1]
    if isinstance(width, int) and width > 0 and width != len(labels):
        raise ValueError(f"{path.name} outputs {width} scores but has {len(labels)} labels")
    facts = ClassifierFacts(first.name, labels, size, channels, channels_last,
                            _numbers(metadata.get("mean"), IMAGENET_MEAN, "mean"),
                            _numbers(metadata.get("std"), IMAGENET_STD, "std"),
                            NUMPY_TYPES.get(first.type, "float32"))
    return ModelHandle(session, device, model_state(path), "classifier", name=path.name, details=facts,
                       placer=reopen_on(lambda target: _session(path, target)),
                       weight_bytes=path.stat().st_size, work_bytes=EXPRESSION_WORK_BYTES)


def _session(path: Path, device: str) -> Any:
    """A new onnxruntime session for ``path`` on ``device`` (CPU when its provider is missing)."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    providers = [p for p in PROVIDERS[device] if p in available] or ["CPUExecutionProvider"]
    announce_read(path)
    return onnxruntime.InferenceSession(str(path), providers=providers)


def _tensor(facts: ClassifierFacts, rgb: Any) -> Any:
    """One RGB uint8 crop → the model's input tensor (batch of one)."""
    import numpy as np
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(rgb[..., :3])).convert("RGB" if facts.channels == 3 else "L")
    array = np.asarray(image.resize(facts.size, Image.BILINEAR), np.float32) / 255.0
    if facts.channels == 1:
        array = array[..., None]
    mean = np.asarray(facts.mean[: facts.channels] if len(facts.mean) > 1 else facts.mean, np.float32)
    std = np.asarray(facts.std[: facts.channels] if len(facts.std) > 1 else facts.std, np.float32)
    array = (array - mean) / std
    if not facts.channels_last:
        array = array.transpose(2, 0, 1)
    return array[None].astype(facts.dtype)


def _probabilities(scores: Any) -> Any:
    """Softmax, unless the model already returns probabilities (non-negative, summing to one)."""
    import numpy as np

    scores = np.asarray(scores, np.float64).reshape(-1)
    if scores.min() >= 0.0 and abs(scores.sum() - 1.0) < 1e-3:
        return scores
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


def classify(model: ModelHandle[ClassifierFacts], crops: Sequence[Any]) -> list[tuple[str, float]]:
    """(top label, its probability) per RGB uint8 crop, one crop per run (many models fix batch 1)."""
    facts, results = model.details, []
    for crop in crops:
        scores = model.model.run(None, {facts.input_name: _tensor(facts, crop)})[0]
        probabilities = _probabilities(scores)
        if len(probabilities) != len(facts.labels):
            raise ValueError(f"{model.name} returned {len(probabilities)} scores for {len(facts.labels)} labels")
        best = int(probabilities.argmax())
        results.append((facts.labels[best], float(probabilities[best])))
    return results
