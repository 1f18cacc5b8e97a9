"""open_clip image/text embedder: where its weights live and how they open, offline.

Folder: ``models/open_clip``. ComfyUI's own ``models/clip`` holds text encoders for diffusion
models and ``models/clip_vision`` holds vision towers in ComfyUI's format; an open_clip checkpoint
is neither, so it gets its own folder. Two ways to install one:

1. a weights file plus an architecture name, e.g. ``models/open_clip/ViT-B-32__laion2b_s34b_b79k
   .safetensors`` (the text before ``__`` names the architecture, or pick it in the node);
2. a folder with ``open_clip_config.json`` and the weights next to it (a Hugging Face snapshot
   of e.g. ``laion/CLIP-ViT-B-32-laion2B-s34B-b79K`` as it is): ``models/open_clip/<folder>/``.

open_clip downloads by itself when ``pretrained`` is a tag or a hub name, so only an existing
absolute file or ``local-dir:`` ever reaches it, with ``HF_HUB_OFFLINE=1`` around every call.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..fileio import announce_read
from .device import ray_resources, worker_device
from .handle import ModelHandle
from .registry import (
    ModelMissingError,
    ModelNameError,
    ModelSpec,
    missing_message,
    model_identity,
    name_parts,
    not_installed_message,
    refuse_other_file,
    resolve,
    search_dirs,
)

CLIP_FOLDER = "open_clip"
CONFIG_NAME = "open_clip_config.json"
ARCH_SEPARATOR = "__"
LOCAL_DIR_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors",
                     "open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth", "model.safetensors",
                     "pytorch_model.bin", "pytorch_model.pth", "model.pth")

# Architecture -> (pretrained tag, licence, where to get it). Only weights whose licence we know
# (and that allow use in a tool like this) are offered; MetaCLIP (CC-BY-NC) is deliberately absent.
KNOWN_WEIGHTS: dict[str, tuple[str, str, str]] = {
    "ViT-B-32": ("laion2b_s34b_b79k", "MIT", "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
    "ViT-B-16": ("laion2b_s34b_b88k", "MIT", "https://huggingface.co/laion/CLIP-ViT-B-16-laion2B-s34B-b88K"),
    "ViT-L-14": ("laion2b_s32b_b82k", "MIT", "https://huggingface.co/laion/CLIP-ViT-L-14-laion2B-s32B-b82K"),
    "ViT-H-14": ("laion2b_s32b_b79k", "MIT", "https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
    "ViT-B-32-quickgelu": ("openai", "MIT", "https://huggingface.co/timm/vit_base_patch32_clip_224.openai"),
    "ViT-L-14-quickgelu": ("openai", "MIT", "https://huggingface.co/timm/vit_large_patch14_clip_224.openai"),
}
ARCH_CHOICES: tuple[str, ...] = ("auto", *KNOWN_WEIGHTS)

CLIP_SPEC = ModelSpec(
    backend="open_clip",
    folder=CLIP_FOLDER,
    files={f"ViT-B-32{ARCH_SEPARATOR}laion2b_s34b_b79k.safetensors": ""},
    formats=(".safetensors", ".bin", ".pt", ".pth"),
    licence="MIT (LAION OpenCLIP / OpenAI CLIP weights listed in docs/understanding.md)",
    source=KNOWN_WEIGHTS["ViT-B-32"][2],
    # The repository's weights file, saved under the name above (the name says the architecture).
    urls={f"ViT-B-32{ARCH_SEPARATOR}laion2b_s34b_b79k.safetensors":
          KNOWN_WEIGHTS["ViT-B-32"][2] + "/resolve/main/open_clip_model.safetensors"},
    env_var="LORA_FOUNDRY_CLIP_MODEL",
)
CLIP_DIR_SPEC = ModelSpec(
    backend="open_clip",
    folder=CLIP_FOLDER,
    files={CONFIG_NAME: ""},
    formats=(".json",),
    licence=CLIP_SPEC.licence,
    source=CLIP_SPEC.source,
)


# Room asked for besides the weights (an estimate): a batch of up to 64 images through a ViT-L.
CLIP_WORK_BYTES = 1 << 30


@dataclass(frozen=True)
class ClipParts:
    """What open_clip needs besides the network, none of it on a device: the image preprocessing
    and the tokenizer (the ``details`` of a CLIP ``ModelHandle``)."""

    preprocess: Any
    tokenizer: Any
    source: ClipSource | None = None


@dataclass(frozen=True)
class ClipSource:
    """How to open the same CLIP somewhere else (a Ray worker): the resolved weights path (a file
    or a local-dir folder; it must exist at that path there too), the architecture, the device
    kind, and the identity the weights there must have."""

    path: str
    arch: str
    device: str
    identity: str

    @property
    def resources(self) -> dict[str, float]:
        """What a unit using this model asks a Ray cluster for: a GPU for a GPU model, else a CPU."""
        return ray_resources(self.device)


def source_of(clip: Any) -> ClipSource:
    """The ``ClipSource`` a worker opens for the CLIP handle ``clip``; refused for a model not opened
    from a file by LF CLIP Loader (nothing to open elsewhere)."""
    source = getattr(getattr(clip, "details", None), "source", None)
    if source is None:
        raise ValueError("this CLIP model cannot be opened on a Ray worker (it was not opened from a file by "
                         "LF CLIP Loader)")
    return source


def open_source(source: ClipSource) -> ModelHandle[ClipParts]:
    """In a worker: the model ``source`` names, through the registry, refused when the weights are
    missing here (the registry's put-FILE-in-FOLDER message) or are not the driver's weights."""
    import socket

    path = Path(source.path)
    if not path.exists():
        spec = CLIP_DIR_SPEC if source.path.endswith("/") else CLIP_SPEC
        raise ModelMissingError(f"on {socket.gethostname()}: "
                                + missing_message(spec, path.name, [path.parent])
                                + ". Every Ray node needs the weights at the same path (docs/scaling.md)")
    clip = load_clip(path, source.arch, worker_device(source.device))
    refuse_other_file(path, clip.identity, source.identity)
    return clip


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Force Hugging Face Hub offline for the duration (env var and, if imported, its constant)."""
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    saved_const = getattr(constants, "HF_HUB_OFFLINE", None) if constants else None
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_const


def installed_choices(extra_dirs: Sequence[Path] = ()) -> list[str]:
    """Weight files and ``<folder>/`` entries (with open_clip_config.json) for the loader combo."""
    from .registry import installed_files, search_dirs

    names = installed_files(CLIP_SPEC, extra_dirs)
    for folder in search_dirs(CLIP_SPEC, extra_dirs):
        if folder.is_dir():
            for sub in sorted(folder.iterdir()):
                if (sub / CONFIG_NAME).is_file() and f"{sub.name}/" not in names:
                    names.append(f"{sub.name}/")
    return names


def resolve_clip(name: str | None, extra_dirs: Sequence[Path] = ()) -> Path:
    """An existing weights file, or an existing folder holding open_clip_config.json, found by name
    inside the open_clip folders only (``registry.resolve``, the one resolver of model names).

    A name ending in "/" (or naming an installed folder) means a local-dir install; anything else a
    file. An outside, missing or malformed folder name gets the registry's one answer.
    """
    parts = name_parts(name) if name else None
    if parts and (name.endswith("/") or _installed_folder(parts, extra_dirs)):
        try:
            return resolve(CLIP_DIR_SPEC, "/".join((*parts, CONFIG_NAME)), extra_dirs).parent
        except ModelNameError:
            raise ModelNameError(not_installed_message(CLIP_SPEC, name)) from None
    return resolve(CLIP_SPEC, name or None, extra_dirs)


def _installed_folder(parts: tuple[str, ...], extra_dirs: Sequence[Path]) -> bool:
    """True when ``parts`` name a folder inside one of the open_clip folders."""
    return any(Path(os.path.abspath(folder)).joinpath(*parts).is_dir() for folder in search_dirs(CLIP_SPEC, extra_dirs))


def arch_for(path: Path, arch: str = "auto") -> str:
    """The architecture for a weights file: the explicit choice, else the file-name prefix."""
    if arch and arch != "auto":
        return arch
    stem = path.name.split(".")[0]
    if ARCH_SEPARATOR in stem:
        return stem.split(ARCH_SEPARATOR)[0]
    raise ModelMissingError(
        f"cannot tell the open_clip architecture of {path.name}: pick it in the loader or name the "
        f"file <architecture>{ARCH_SEPARATOR}<tag>{path.suffix} (e.g. ViT-B-32{ARCH_SEPARATOR}"
        f"laion2b_s34b_b79k.safetensors)"
    )


def local_dir_weights(folder: Path) -> Path:
    """The weights open_clip will pick in a local-dir folder; it silently uses random weights when
    there are none, so we refuse instead."""
    if not (folder / CONFIG_NAME).is_file():
        raise ModelMissingError(f"put {CONFIG_NAME} next to the weights in {folder}")
    found = sorted(p for suffix in (".safetensors", ".bin", ".pth") for p in folder.glob(f"*{suffix}"))
    if not found:
        raise ModelMissingError(
            f"{folder} has {CONFIG_NAME} but no weights: put open_clip_model.safetensors there "
            f"(from the same Hugging Face repository as the config)"
        )
    preferred = [p for p in found if p.name in LOCAL_DIR_WEIGHTS]
    return min(preferred, key=lambda p: LOCAL_DIR_WEIGHTS.index(p.name)) if preferred else found[0]


def clip_identity(path: Path, arch: str = "auto") -> str:
    """The model's identity: a weights file after its architecture, or a local-dir folder's weights
    after the folder name, with its config as the variant (editing either is another model)."""
    path = Path(path)
    if path.is_dir():
        return model_identity(local_dir_weights(path), arch=f"{path.name}/",
                              variant=model_identity(path / CONFIG_NAME))
    return model_identity(path, arch=arch_for(path, arch))


def load_clip(path: Path, arch: str = "auto", device: str = "cpu") -> ModelHandle[ClipParts]:
    """Open a resolved file (with ``arch``) or local-dir folder, never touching the network; the
    handle rests on the CPU and works on ``device`` inside ``on_device()``."""
    import open_clip

    path = Path(path)
    if not path.exists():
        raise ModelMissingError(f"open_clip weights {path} do not exist (resolve them first)")
    identity = clip_identity(path, arch)
    announce_read(path)
    with hub_offline():
        if path.is_dir():
            model_name = f"local-dir:{path}"
            model, _, preprocess = open_clip.create_model_and_transforms(model_name, device="cpu")
        else:
            model_name = arch_for(path, arch)
            if model_name not in open_clip.list_models():
                raise ValueError(f"{model_name!r} is not an open_clip architecture")
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(path.resolve()), device="cpu"
            )
        tokenizer = open_clip.get_tokenizer(model_name)
    model.eval()
    source = ClipSource(str(path.resolve()) + ("/" if path.is_dir() else ""), arch, str(device), identity)
    return ModelHandle(model, device, identity, "open_clip", name=path.name,
                       details=ClipParts(preprocess, tokenizer, source), work_bytes=CLIP_WORK_BYTES)


def embed_pil_batch(clip: ModelHandle[ClipParts], images: Sequence[Any]) -> Any:
    """L2-normalised image embeddings (float32 numpy, one row per PIL image), computed where the
    model is now (inside ``clip.on_device()``: the compute device)."""
    import torch

    preprocess = clip.details.preprocess
    batch = torch.stack([preprocess(img.convert("RGB")) for img in images]).to(clip.device)
    with torch.inference_mode():
        feats = clip.model.encode_image(batch).float()
    feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return feats.cpu().numpy()


def embed_texts(clip: ModelHandle[ClipParts], texts: Sequence[str]) -> Any:
    """L2-normalised text embeddings (float32 numpy, one row per text), computed where the model is now."""
    import torch

    with hub_offline():
        tokens = clip.details.tokenizer(list(texts)).to(clip.device)
    with torch.inference_mode():
        feats = clip.model.encode_text(tokens).float()
    feats = feats / feats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return feats.cpu().numpy()


def zero_shot(clip: ModelHandle[ClipParts], images: Sequence[Any], labels: Sequence[str], template: str = "{}"
              ) -> list[tuple[str, float]]:
    """For each image the best label and its softmax probability over ``labels``."""
    import numpy as np

    text = embed_texts(clip, [template.format(label) for label in labels])
    image = embed_pil_batch(clip, images)
    logits = 100.0 * image @ text.T
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    best = probs.argmax(axis=1)
    return [(labels[int(b)], float(probs[i, b])) for i, b in enumerate(best)]


class Embedder(Protocol):
    """The one embedder type: pictures (Pillow RGB images or RGB uint8 arrays) to rows, and texts to
    rows when there is a text tower (else None); ``identity`` goes into stage and cell keys.
    Implemented by ``ClipEmbedder`` (open_clip), ``stages.clusters.embedders.PixelEmbedder`` and the
    nodes' ``ClipVisionEmbedder`` (ComfyUI's CLIP_VISION)."""

    identity: str

    def images(self, pictures: Sequence[Any]) -> Any: ...

    def texts(self, texts: Sequence[str]) -> Any: ...


class ClipEmbedder:
    """``Embedder`` over an open_clip ``ModelHandle``: the weights visit the compute device once per
    call (inside an outer ``on_device`` they are already there), images go in batches of 32."""

    BATCH = 32

    def __init__(self, handle: ModelHandle[ClipParts]) -> None:
        self.handle = handle
        self.identity = str(handle.identity)

    def images(self, pictures: Sequence[Any]) -> Any:
        import numpy as np
        from PIL import Image

        pil = [p if isinstance(p, Image.Image) else Image.fromarray(np.ascontiguousarray(p)) for p in pictures]
        with self.handle.on_device():
            return np.concatenate([embed_pil_batch(self.handle, pil[i:i + self.BATCH])
                                   for i in range(0, len(pil), self.BATCH)])

    def texts(self, texts: Sequence[str]) -> Any:
        with self.handle.on_device():
            return embed_texts(self.handle, list(texts))
