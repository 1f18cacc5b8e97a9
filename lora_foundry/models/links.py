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

from dataclasses import dataclass

from .clip_model import CLIP_SPEC
from .expression_model import EXPRESSION_SPEC
from .face_model import FACE_SPEC
from .lama_model import LAMA_SPEC
from .pose_model import POSE_SPEC
from .registry import ModelSpec
from .sam2_model import SAM2_SPEC
from .wd14_model import WD14_SPEC

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
