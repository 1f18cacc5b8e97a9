"""SAM 2 / 2.1 weights: where they go, which config builds each file, and a loader that is safe.

sam2's own ``build_sam2(cfg, ckpt)`` would read the checkpoint itself; we build the network with
``ckpt=None`` and load the state dict ourselves, so the only file reader is
``torch.load(weights_only=True)`` (tensors only, no arbitrary pickled objects) or safetensors, and a
checkpoint that does not match the chosen config fails with a message that says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .device import ray_resources, worker_device
from .handle import ModelHandle
from .registry import ModelFormatError, ModelMissingError, ModelSpec, model_identity, refuse_other_file
from .weights_file import load_safetensors, torch_load_weights

_SIZES = {"tiny": "t", "small": "s", "base_plus": "b+", "large": "l"}
_RELEASES = ("sam2.1", "sam2")
# Meta publishes each checkpoint on its CDN (dl.fbaipublicfiles.com/segment_anything_2/<date>/<file>)
# and the same file under the same name in its Hugging Face repos (facebook/sam2.1-hiera-tiny, ...;
# SAM 2.1 sizes checked against the CDN release: tiny 156,008,466 bytes, small 184,416,285, base_plus
# 323,606,802, large 898,083,611). We link Hugging Face: ComfyUI's Missing Models dialog offers
# "Download" only for huggingface.co and civitai.com addresses.
_HF = "https://huggingface.co/facebook"
# The .safetensors conversions ComfyUI users share (Kijai/sam2-safetensors, same names, sizes as Meta's
# files): the only SAM 2 files that dialog can download (it also wants a .safetensors/.sft name).
_KIJAI = "https://huggingface.co/Kijai/sam2-safetensors/resolve/main"
# Room asked for besides the weights (an estimate, as ComfyUI's upscale node makes one): the image
# encoder's activations at 1024 px, the automatic generator's point batches, a tracking state.
SAM2_WORK_BYTES = 2 << 30


def _published_names() -> dict[str, str]:
    """Checkpoint stem -> config path, for every file Meta publishes (SAM 2.1 first, tiny first)."""
    names: dict[str, str] = {}
    for release in _RELEASES:
        for size, short in _SIZES.items():
            names[f"{release}_hiera_{size}"] = f"configs/{release}/{release}_hiera_{short}.yaml"
    return names


CONFIG_FOR_STEM: dict[str, str] = _published_names()
CONFIGS: tuple[str, ...] = tuple(CONFIG_FOR_STEM.values())

SAM2_SPEC = ModelSpec(
    backend="SAM 2",
    folder="sam2",
    # sha256 unknown: Meta publishes no checksums for these files.
    files={f"{stem}{ext}": "" for ext in (".pt", ".safetensors") for stem in CONFIG_FOR_STEM},
    formats=(".pt", ".safetensors"),
    licence="Apache-2.0",
    source="https://github.com/facebookresearch/sam2#download-checkpoints",
    urls={
        **{f"{stem}.pt": f"{_HF}/{stem.replace('_hiera_', '-hiera-').replace('_', '-')}/resolve/main/{stem}.pt"
           for stem in CONFIG_FOR_STEM},
        **{f"{stem}.safetensors": f"{_KIJAI}/{stem}.safetensors" for stem in CONFIG_FOR_STEM},
    },
)


def config_for_file(path: Path | str) -> str:
    """The sam2 config that builds the network for checkpoint ``path``, judged by its name.

    Exact published names map directly; other names (``sam2.1_hiera_base_plus-fp16.safetensors``)
    map when they contain one release and one size. Anything else must be given explicitly.
    """
    stem = Path(path).name.rsplit(".", 1)[0].lower()
    if stem in CONFIG_FOR_STEM:
        return CONFIG_FOR_STEM[stem]
    release = "sam2.1" if "sam2.1" in stem or "sam2_1" in stem else "sam2" if "sam2" in stem else None
    sizes = [size for size in _SIZES if size in stem.replace("base-plus", "base_plus")]
    if release and len(sizes) == 1:
        return CONFIG_FOR_STEM[f"{release}_hiera_{sizes[0]}"]
    raise ValueError(
        f"cannot tell which SAM 2 config builds {Path(path).name}; choose one of: {', '.join(CONFIGS)}"
    )


def sam2_identity(path: Path | str, config: str | None = None) -> str:
    """The model's identity: its file, and the config that builds it (the same file built by
    another config is another network)."""
    return model_identity(Path(path), variant=config or config_for_file(path))


def open_sam2(path: Path | str, compute_device: str, config: str | None = None,
              hydra_overrides: Sequence[str] = ()) -> ModelHandle:
    """SAM 2 for ``path`` as a handle: built and resting on the CPU, working on ``compute_device``
    only inside ``on_device()`` (see ``handle``)."""
    path = Path(path)
    config_name = config or config_for_file(path)
    model = load_sam2(path, "cpu", config_name, hydra_overrides)
    identity = sam2_identity(path, config_name)
    source = Sam2Source(str(path.resolve()), config_name, tuple(hydra_overrides), str(compute_device), identity)
    return ModelHandle(model, compute_device, identity, "sam2", name=path.name, details=source,
                       work_bytes=SAM2_WORK_BYTES)


@dataclass(frozen=True)
class Sam2Source:
    """How to open the same SAM 2 somewhere else (a Ray worker): the resolved checkpoint path (it
    must exist at that path there too), the config and overrides that build the network, the
    device kind, and the identity the file there must have (the ``details`` of a SAM 2 handle)."""

    path: str
    config: str
    overrides: tuple[str, ...]
    device: str
    identity: str

    @property
    def resources(self) -> dict[str, float]:
        """What a unit using this model asks a Ray cluster for: a GPU for a GPU model, else a CPU."""
        return ray_resources(self.device)


def open_sam2_source(source: Sam2Source) -> ModelHandle:
    """In a worker: the SAM 2 ``source`` names, on its device for the worker's life (it is kept
    there between units), refused when the file is missing here or is not the driver's file."""
    import socket

    path = Path(source.path)
    if not path.is_file():
        raise ModelMissingError(f"on {socket.gethostname()}: SAM 2 checkpoint {path} does not exist; every Ray "
                                "node needs the weights at the same path (docs/scaling.md)")
    refuse_other_file(path, sam2_identity(path, source.config), source.identity)
    device = worker_device(source.device)
    model = load_sam2(path, device, source.config, source.overrides)
    return ModelHandle(model, device, source.identity, "sam2", name=path.name, offload_device=device,
                       details=source, work_bytes=SAM2_WORK_BYTES)


def read_state_dict(path: Path) -> dict[str, Any]:
    """The checkpoint's tensors, read without executing anything from the file.

    ``.pt``: Meta's ``{"model": state_dict}`` through ``torch.load(weights_only=True)``.
    ``.safetensors``: the state dict itself (a leading ``model.`` prefix on every key is removed).
    """
    if path.suffix == ".safetensors":
        state = load_safetensors(path)
        if state and all(key.startswith("model.") for key in state):
            state = {key[len("model."):]: value for key, value in state.items()}
        return state
    if path.suffix == ".pt":
        checkpoint = torch_load_weights(path)
        if not isinstance(checkpoint, Mapping) or "model" not in checkpoint:
            raise ModelFormatError(f"{path} is not a SAM 2 checkpoint (expected a dict with key 'model')")
        return dict(checkpoint["model"])
    raise ModelFormatError(f"{path} is not a SAM 2 file we load (.pt, .safetensors)")


def load_sam2(
    path: Path | str,
    device: str,
    config: str | None = None,
    hydra_overrides: Sequence[str] = (),
) -> Any:
    """Build the SAM 2 network for ``config`` (or the one the file name implies) and load ``path``.

    The state dict must match exactly (strict): a wrong config is reported as such, never run
    half-loaded. ``hydra_overrides`` change the architecture (tests shrink it); ``device`` is
    always explicit because sam2 defaults to "cuda".

    The network is built as sam2's video predictor class (a ``SAM2Base`` subclass with the same
    weights and sam2's video post-processing settings), so one loaded model serves single images,
    the automatic mask generator and tracking through a shot.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelMissingError(f"SAM 2 checkpoint {path} does not exist")
    config_name = config or config_for_file(path)
    state = read_state_dict(path)
    from sam2.build_sam import build_sam2_video_predictor

    model = build_sam2_video_predictor(config_name, None, device=device,
                                       hydra_overrides_extra=list(hydra_overrides))
    if not _has_cuda_extension():
        model.fill_hole_area = 0
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ModelFormatError(
            f"{path.name} does not match config {config_name}: pick the config of the same size and "
            f"release as the checkpoint ({str(error).splitlines()[0]})"
        ) from error
    model.eval()
    return model


def _has_cuda_extension() -> bool:
    """Whether sam2 was built with its optional CUDA extension. Without it (``SAM2_BUILD_CUDA=0``)
    sam2 skips filling small holes in tracked masks anyway, but warns on every run; switching the
    step off (``fill_hole_area = 0``) gives the same masks without the warning."""
    from importlib.util import find_spec

    try:
        return find_spec("sam2._C") is not None
    except (ImportError, ValueError):
        return False
