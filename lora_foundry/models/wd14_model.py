"""WD14-style taggers (SmilingWolf's wd-v1-4 and wd-v3 ONNX models) on onnxruntime.

Folder: ``models/wd14``. A model is either a folder per model, as Hugging Face publishes it
(``wd-vit-tagger-v3/model.onnx`` beside ``wd-vit-tagger-v3/selected_tags.csv``), or two files named
after the model (``wd-vit-tagger-v3.onnx`` + ``wd-vit-tagger-v3.csv``). The CSV (``tag_id, name,
category, count``; category 0 general, 4 character, 9 rating) names the model's outputs in order.

What the model expects is read from the file, never assumed: the input's name, its NHWC layout and
its square size (448 for the whole family; ``[batch, 448, 448, 3]`` float32, BGR, 0-255, padded to
a square with white, as SmilingWolf's own demo prepares it), whether the batch is fixed, and the
output's width (which must equal the CSV's rows). A model whose input is not a square NHWC colour
image is refused with its shape in the message: we would otherwise feed it the wrong tensor and
get confident nonsense.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import one_of
from ..fileio import announce_read
from .handle import ModelHandle, reopen_on
from .registry import ModelMissingError, ModelSpec, model_identity

WD14_FOLDER = "wd14"
HF = "https://huggingface.co/SmilingWolf/"
# (model name, architecture): the ones the family publishes, v3 first (trained on newer data).
WD14_MODELS = (
    ("wd-vit-tagger-v3", "ViT"), ("wd-swinv2-tagger-v3", "SwinV2"), ("wd-convnext-tagger-v3", "ConvNeXt"),
    ("wd-vit-large-tagger-v3", "ViT-Large"), ("wd-eva02-large-tagger-v3", "EVA02-Large"),
    ("wd-v1-4-moat-tagger-v2", "MOAT"), ("wd-v1-4-swinv2-tagger-v2", "SwinV2"),
    ("wd-v1-4-convnext-tagger-v2", "ConvNeXt"), ("wd-v1-4-convnextv2-tagger-v2", "ConvNeXtV2"),
    ("wd-v1-4-vit-tagger-v2", "ViT"),
)
MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"
LICENCE = "Apache-2.0 (SmilingWolf's WD taggers, per each model card)"
WD14_SPEC = ModelSpec(
    backend="wd14 tagger",
    folder=WD14_FOLDER,
    files={f"{name}/{MODEL_FILE}": "" for name, _ in WD14_MODELS},
    formats=(".onnx",),
    licence=LICENCE,
    source=f"{HF}wd-vit-tagger-v3",
    urls={f"{name}/{MODEL_FILE}": f"{HF}{name}/resolve/main/{MODEL_FILE} (and {TAGS_FILE} beside it)"
          for name, _ in WD14_MODELS},
    env_var="LORA_FOUNDRY_WD14_MODEL",
)
PROVIDERS = {"cpu": ["CPUExecutionProvider"], "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
GENERAL, CHARACTER, RATING = 0, 4, 9
# Room asked for besides the file's size when a CUDA session opens (an estimate: activations of a
# batch of 448 px images in a ViT/ConvNeXt-Base sized network).
WD14_WORK_BYTES = 1 << 30


@dataclass(frozen=True)
class TaggerFacts:
    """What a tagger's files declare (the ``details`` of its handle)."""

    input_name: str
    output_name: str
    size: int  # the square side the model takes (448 for the family)
    batch: int | None  # a fixed batch size the graph declares, None when dynamic
    names: tuple[str, ...]  # raw CSV names, in output order
    categories: tuple[int, ...]  # CSV category per output

    def indices(self, category: int) -> list[int]:
        """Output positions of one category (ratings, characters); general = everything else."""
        if category == GENERAL:
            return [i for i, c in enumerate(self.categories) if c not in (CHARACTER, RATING)]
        return [i for i, c in enumerate(self.categories) if c == category]


def tags_file(path: Path) -> Path:
    """The CSV naming ``path``'s outputs: ``NAME.csv`` beside ``NAME.onnx``, else the folder's
    ``selected_tags.csv`` (Hugging Face's layout); the latter when neither exists (for the message)."""
    path = Path(path)
    same_name = path.with_suffix(".csv")
    return same_name if same_name.is_file() else path.with_name(TAGS_FILE)


def model_state(path: Path) -> str:
    """Identity of the ONNX file (with its folder, when it is a ``model.onnx``) and its CSV:
    replacing either must reload and re-tag."""
    csv_path = tags_file(path)
    folder = Path(path).parent.name if Path(path).name == MODEL_FILE else ""  # every folder holds a model.onnx
    return model_identity(path, arch=folder, variant=model_identity(csv_path) if csv_path.is_file() else "")


def _published_name(path: Path) -> str:
    """The Hugging Face model a file stands for (its folder, or its own stem), if it is one."""
    path = Path(path)
    for candidate in (path.parent.name, path.stem):
        if any(candidate == name for name, _ in WD14_MODELS):
            return candidate
    return ""


def read_tags(path: Path) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(names, categories) from the model's CSV, or ``ModelMissingError`` saying where to put it."""
    csv_path = tags_file(path)
    if not csv_path.is_file():
        name = _published_name(path)
        where = f"{HF}{name}/resolve/main/{TAGS_FILE}" if name else "the same Hugging Face repository as the model"
        raise ModelMissingError(f"wd14 tags not found: put {csv_path.name} in {csv_path.parent} (from {where}; "
                                f"licence: {LICENCE}); {path.name} needs the tag list it was trained with")
    names, categories = [], []
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"name", "category"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{csv_path} has no {', '.join(sorted(missing))} column (expected tag_id,name,category,count)")
        for row in reader:
            names.append(str(row["name"]).strip())
            try:
                categories.append(int(row["category"]))
            except (TypeError, ValueError) as error:
                raise ValueError(f"{csv_path}: category {row['category']!r} of {row['name']!r} is not a number") from error
    if not names:
        raise ValueError(f"{csv_path} lists no tags")
    return tuple(names), tuple(categories)


def input_layout(shape: list[Any], name: str) -> tuple[int, int | None]:
    """(square side, fixed batch or None) of an NHWC colour input, or ValueError naming the shape."""
    if len(shape) != 4 or shape[3] != 3 or not all(isinstance(d, int) and d > 0 for d in shape[1:3]):
        raise ValueError(f"{name}: input shape {list(shape)} is not the WD14 layout [batch, size, size, 3] "
                         "(NHWC, BGR); this model's preprocessing is unknown, so it is not used")
    if shape[1] != shape[2]:
        raise ValueError(f"{name}: input {shape[1]}x{shape[2]} is not square; WD14 taggers take a padded square")
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    return int(shape[1]), batch


def load_wd14(path: Path, device: str = "cpu") -> ModelHandle[TaggerFacts]:
    """Open a resolved tagger (its CSV beside it) on onnxruntime, ``device`` "cpu" or "cuda".

    Like the other ONNX models, the handle keeps a CPU session (what loader caches hold) and opens a
    CUDA one only inside ``on_device()``, dropping it afterwards.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"wd14 model {path} does not exist (resolve it first)")
    one_of(device, PROVIDERS, "wd14 device")
    names, categories = read_tags(path)
    session = _session(path, "cpu")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(float)":
        raise ValueError(f"{path.name}: expected one float32 image input, got "
                         f"{[(i.name, i.type) for i in inputs]}")
    size, batch = input_layout(list(inputs[0].shape), path.name)
    width = outputs[0].shape[-1] if outputs and outputs[0].shape else None
    if isinstance(width, int) and width > 0 and width != len(names):
        raise ValueError(f"{path.name} outputs {width} scores but {tags_file(path).name} lists {len(names)} tags")
    facts = TaggerFacts(inputs[0].name, outputs[0].name, size, batch, names, categories)
    return ModelHandle(session, device, model_state(path), "wd14", name=_display_name(path), details=facts,
                       placer=reopen_on(lambda target: _session(path, target)),
                       weight_bytes=path.stat().st_size, work_bytes=WD14_WORK_BYTES)


def _display_name(path: Path) -> str:
    """``wd-vit-tagger-v3`` for ``wd-vit-tagger-v3/model.onnx``, else the file's name."""
    return path.parent.name if path.name == MODEL_FILE else path.name


def _session(path: Path, device: str) -> Any:
    """A new onnxruntime session for ``path`` on ``device`` (CPU when its provider is missing)."""
    import onnxruntime

    available = set(onnxruntime.get_available_providers())
    providers = [p for p in PROVIDERS[device] if p in available] or ["CPUExecutionProvider"]
    announce_read(path)
    return onnxruntime.InferenceSession(str(path), providers=providers)


def scores(model: ModelHandle[TaggerFacts], batch: Any) -> Any:
    """Sigmoid scores ``[N, tags]`` for a ``[N, size, size, 3]`` float32 BGR batch; a graph with a
    fixed batch size is run that many images at a time (the last chunk padded)."""
    import numpy as np

    facts = model.details
    step = facts.batch or len(batch)
    out = []
    for start in range(0, len(batch), max(1, step)):
        chunk = batch[start:start + step]
        real = len(chunk)
        if facts.batch and real < facts.batch:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], facts.batch - real, axis=0)])
        out.append(np.asarray(model.model.run([facts.output_name], {facts.input_name: chunk})[0])[:real])
    return np.concatenate(out) if out else np.zeros((0, len(facts.names)), np.float32)
