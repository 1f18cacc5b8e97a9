"""LaMa (big-lama) weights and their loader, without simple-lama-inpainting.

simple-lama-inpainting pins numpy<2 and pillow<10 (installing it downgrades ComfyUI) and downloads
the file with no timeout when it is missing. All it really does is ``torch.jit.load`` the
TorchScript export ``big-lama.pt``; we do that here, on a file ``registry.resolve`` found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fileio import announce_read
from .handle import ModelHandle
from .registry import ModelMissingError, ModelSpec, model_identity

LAMA_URL = "https://github.com/enesmsahin/simple-lama-inpainting/releases/download/v0.1.0/big-lama.pt"

LAMA_SPEC = ModelSpec(
    backend="LaMa",
    folder="lama",
    files={"big-lama.pt": ""},  # no checksum published by the LaMa authors
    formats=(".pt",),
    licence="Apache-2.0 (LaMa, advimman/lama)",
    source=LAMA_URL,
    urls={"big-lama.pt": LAMA_URL},
    env_var="LAMA_MODEL",
)
# Room asked for besides the weights (an estimate): big-lama's activations on a window of up to
# 1024 px a side (the inpaint node's default max_side).
LAMA_WORK_BYTES = 2 << 30


def open_lama(path: Path | str, compute_device: str) -> ModelHandle:
    """LaMa as a handle: loaded and resting on the CPU, working on ``compute_device`` only inside
    ``on_device()`` (a TorchScript module moves like any torch module)."""
    path = Path(path)
    return ModelHandle(load_lama(path, "cpu"), compute_device, model_identity(path), "lama", name=path.name,
                       work_bytes=LAMA_WORK_BYTES)


def load_lama(path: Path | str, device: str) -> Any:
    """Load the TorchScript LaMa network from an existing local file onto ``device``.

    Why ``torch.jit.load`` is acceptable where ``torch.load`` without ``weights_only`` is not: a
    TorchScript archive holds tensors and TorchScript code, which is compiled by torch's own
    TorchScript compiler and can only call torch operators; its pickled parts are read by a
    restricted unpickler that rebuilds tensors and constants, never arbitrary Python classes. It is
    still code from the file's author, so only a file the user installed is loaded: ``path`` must
    already exist locally (resolved by the registry); nothing is ever fetched. The model is called
    as ``model(image[1,3,H,W] float 0..1, mask[1,1,H,W] {0,1})`` and returns ``[1,3,H,W]`` in 0..1.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelMissingError(f"LaMa model file {path} does not exist")
    import torch

    announce_read(path)
    model = torch.jit.load(str(path), map_location=device)
    model.eval()
    return model
