"""Which torch device a model runs on: CUDA, then Apple's MPS, else the CPU.

sam2 and facexlib default to ``device="cuda"`` and fail (or hang in CUDA init) on machines without
it, so every opener takes the device explicitly and nodes pass what this module picks.
"""

from __future__ import annotations

from ..choices import one_of

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def pick_device(preference: str = "auto") -> str:
    """The device name to pass to a backend: ``preference`` if it is not "auto", else the best.

    "auto" means CUDA when torch sees a GPU, then MPS, else "cpu". An explicit device that is not
    available raises at once rather than failing deep inside a backend.
    """
    one_of(preference, DEVICE_CHOICES, "device")
    import torch

    cuda_ok = torch.cuda.is_available()
    mps_ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if preference == "auto":
        return "cuda" if cuda_ok else "mps" if mps_ok else "cpu"
    if preference == "cuda" and not cuda_ok:
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    if preference == "mps" and not mps_ok:
        raise RuntimeError("device 'mps' was asked for but torch sees no MPS device; use 'auto' or 'cpu'")
    return preference


def pick_onnx_device(preference: str = "auto") -> str:
    """The device for an onnxruntime model: "cuda" when asked for (or "auto" with the CUDA provider
    installed), else "cpu" (onnxruntime has no MPS provider in the packages we install)."""
    if preference == "cuda":
        return "cuda"
    if preference == "auto":
        import onnxruntime

        return "cuda" if "CUDAExecutionProvider" in onnxruntime.get_available_providers() else "cpu"
    return "cpu"


def ray_resources(device: str) -> dict[str, float]:
    """What a unit using a model on ``device`` asks a Ray cluster for: a GPU for a CUDA model, else a
    CPU (one rule for every model source a worker re-opens: CLIP, SAM 2)."""
    return {"num_gpus": 1} if device.startswith("cuda") else {"num_cpus": 1}


def worker_device(device: str) -> str:
    """The device a worker opens a driver's model on: "cuda" for any CUDA device (Ray gives the
    worker its own GPU, numbered from 0 there, so the driver's ``cuda:N`` would name the wrong one),
    else the driver's device."""
    return "cuda" if device.startswith("cuda") else device
