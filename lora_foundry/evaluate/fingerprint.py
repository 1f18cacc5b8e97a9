"""The identity of the MODEL / CLIP / VAE objects a rendering node receives: everything that changes
an image, so a cached cell is reused only when the same image would be rendered again.

A node gets ComfyUI objects, not file names, and what reaches it may already be changed upstream
in the graph: a LoRA loaded at some strength, a second LoRA, ModelSamplingDiscrete, FreeU, a CFG
function, CLIP Set Last Layer. So the identity covers, for each object: a sample of its weights,
and what its patcher carries — the weight patches with their strengths, offsets and the patch
tensors (shape, dtype, sum and a sample of values), the object patches, the model options (sampler
and CFG functions by name and by the values their closures hold), and the CLIP's last layer.
Random identifiers ComfyUI makes per load (``patches_uuid``) are left out: the same graph after a
restart has the same identity. Duck-typed: no ComfyUI import (the engine never imports it).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

PATCHER_FIELDS = ("patches", "object_patches", "model_options", "weight_wrapper_patches", "hook_patches",
                  "forced_hooks")
OBJECT_FIELDS = ("layer_idx",)  # CLIP Set Last Layer
MAX_DEPTH = 7
SAMPLE_VALUES = 2048
WEIGHT_BYTES = 65536


def is_tensor(value: Any) -> bool:
    return all(hasattr(value, name) for name in ("shape", "dtype", "detach"))


def tensor_digest(tensor: Any) -> list[Any]:
    """Shape, dtype, sum and a strided sample of values: a changed tensor changes this."""
    flat = tensor.detach().reshape(-1)
    step = max(1, int(flat.shape[0]) // SAMPLE_VALUES) if flat.shape[0] else 1
    sample = flat[::step][:SAMPLE_VALUES].float().cpu().numpy().tobytes()
    total = float(flat.float().sum()) if flat.shape[0] else 0.0
    return ["tensor", list(tensor.shape), str(tensor.dtype), round(total, 6), hashlib.sha256(sample).hexdigest()[:16]]


def describe(value: Any, depth: int = 0) -> Any:
    """A stable, JSON-able description of ``value`` (tensors digested, callables by name and
    closure values, objects by type and attributes); deep or cyclic structures are cut at a depth."""
    if depth > MAX_DEPTH:
        return f"<{type(value).__name__}>"
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if is_tensor(value):
        return tensor_digest(value)
    if isinstance(value, Mapping):
        return {str(k): describe(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=str) if isinstance(value, set | frozenset) else value
        return [describe(v, depth + 1) for v in items]
    if isinstance(value, functools.partial):
        return ["partial", describe(value.func, depth + 1), describe(value.args, depth + 1),
                describe(value.keywords, depth + 1)]
    if callable(value) and hasattr(value, "__qualname__"):
        closure = [c.cell_contents for c in (getattr(value, "__closure__", None) or ()) if _filled(c)]
        bound = getattr(value, "__self__", None)  # a bound method: its object by type (it may be the model)
        return [f"{getattr(value, '__module__', '')}.{value.__qualname__}", describe(closure, depth + 1),
                None if bound is None else type(bound).__qualname__]
    if callable(getattr(value, "state_dict", None)):  # a torch module (e.g. a patched model_sampling)
        return [type(value).__qualname__, describe(dict(value.state_dict()), depth + 1),
                describe({k: v for k, v in vars(value).items() if not k.startswith("_")}, depth + 1)]
    attributes = getattr(value, "__dict__", None)
    if attributes is not None:
        return [type(value).__qualname__, describe({k: v for k, v in attributes.items() if not k.startswith("_")},
                                                   depth + 1)]
    return type(value).__qualname__


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def weights_sample(module: Any) -> str:
    """The first two tensors of a module's state dict (enough to tell two checkpoints apart)."""
    digest = hashlib.sha256(type(module).__name__.encode())
    if module is not None and hasattr(module, "state_dict"):
        for _, tensor in zip(range(2), module.state_dict().values(), strict=False):
            head = tensor.detach().reshape(-1)[: WEIGHT_BYTES // 4]  # the fp32 bytes kept: no copy of the rest
            digest.update(head.float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def object_identity(thing: Any) -> dict[str, Any]:
    """What one MODEL, CLIP or VAE contributes to an image."""
    patcher = getattr(thing, "patcher", thing)  # CLIP and VAE hold a ModelPatcher or the module
    module = getattr(patcher, "model", None) or getattr(thing, "first_stage_model", None)
    found = {"weights": weights_sample(module)}
    for name in PATCHER_FIELDS:
        if getattr(patcher, name, None):
            found[name] = describe(getattr(patcher, name))
    for name in OBJECT_FIELDS:
        if getattr(thing, name, None) is not None:
            found[name] = describe(getattr(thing, name))
    return found


def fingerprint(*objects: Any) -> str:
    """One short identity for the objects a node renders with (MODEL, CLIP, VAE)."""
    payload = json.dumps([object_identity(thing) for thing in objects], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]
