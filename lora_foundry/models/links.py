"""Where each model file a workflow may name comes from, in the form ComfyUI's front end reads.

ComfyUI's templates carry, on each node that loads a model, ``properties.models``: entries
``{name, url, directory}``. Front end 1.27.10 (the one ComfyUI 0.3.64 pins) collects the entries
whose ``name`` equals one of that node's widget values when a workflow opens, looks ``directory``
up among the server's model folders (ours are registered by the loader nodes) and lists every
file not found there in its Missing Models dialog, with where it goes and a download link.
``scripts/embed_model_links.py`` writes these entries into ``example_workflows/*.json`` from this
table, which is built from the registry's ``ModelSpec``s plus the few base models the training and
composition examples name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .clip_model import CLIP_SPEC
from .expression_model import EXPRESSION_SPEC
from .face_model import FACE_SPEC
from .lama_model import LAMA_SPEC
from .pose_model import POSE_SPEC
from .registry import ModelSpec
from .sam2_model import SAM2_SPEC
from .wd14_model import HF as WD14_HF
from .wd14_model import MODEL_FILE as WD14_MODEL_FILE
from .wd14_model import TAGS_FILE, WD14_FOLDER, WD14_SPEC

SPECS: tuple[ModelSpec, ...] = (SAM2_SPEC, LAMA_SPEC, CLIP_SPEC, POSE_SPEC, FACE_SPEC, EXPRESSION_SPEC, WD14_SPEC)
# ComfyUI's own model files that the training and composition examples name (not ours to load).
BASE_MODELS: dict[str, tuple[str, str]] = {
    "v1-5-pruned-emaonly.safetensors": (
        "checkpoints",
        "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/v1-5-pruned-emaonly.safetensors",
    ),
}


@dataclass(frozen=True)
class ModelLink:
    """One file: its name, the models/ sub-folder it goes in, and where to get it."""

    name: str
    directory: str
    url: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "url": self.url, "directory": self.directory}


def _url(spec: ModelSpec, name: str) -> str:
    """The link itself: registry URLs may carry a note after the address ("... (unzip, rename)")."""
    return spec.urls.get(name, spec.source).split()[0]


def model_links() -> dict[str, ModelLink]:
    """Every published model file by name."""
    links = {name: ModelLink(name, spec.folder, _url(spec, name)) for spec in SPECS for name in spec.files}
    links.update({name: ModelLink(name, folder, url) for name, (folder, url) in BASE_MODELS.items()})
    return links


def companion_links(link: ModelLink) -> list[ModelLink]:
    """Files that must sit beside ``link``'s file to use it: WD14's ``selected_tags.csv`` beside each
    ``model.onnx`` (the tagger's labels; same Hugging Face repository)."""
    folder, _, file = link.name.rpartition("/")
    if link.directory == WD14_FOLDER and file == WD14_MODEL_FILE and folder:
        return [ModelLink(f"{folder}/{TAGS_FILE}", WD14_FOLDER, f"{WD14_HF}{folder}/resolve/main/{TAGS_FILE}")]
    return []


def missing_links(entries: Iterable[dict[str, str]], folder_paths: Callable[[str], list[Path]]) -> list[dict[str, str]]:
    """Of a workflow node's ``properties.models`` entries, the files a user still has to get: each
    known file and its companions that no folder of its ``directory`` holds, once each.

    Front ends 1.27.10 and 1.35.9 decide "missing" from ComfyUI's model list, which only lists
    .ckpt/.pt/.pth/.bin/.safetensors/... files: an installed .onnx model or .csv label file would
    always be reported missing, and a companion never. Only names from ``model_links()`` are looked
    up on disk (a workflow's names are names, never paths); other entries are returned as they are.
    """
    known = model_links()
    missing: dict[str, dict[str, str]] = {}
    for entry in entries:
        link = known.get(str(entry.get("name", "")))
        if link is None or link.directory != entry.get("directory"):
            missing.setdefault(f"{entry.get('directory')}/{entry.get('name')}", dict(entry))
            continue
        for needed in (link, *companion_links(link)):
            if not any((Path(root) / needed.name).is_file() for root in folder_paths(needed.directory)):
                missing.setdefault(f"{needed.directory}/{needed.name}", needed.as_dict())
    return list(missing.values())
