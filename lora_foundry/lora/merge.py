"""Merge a LoRA stack into one kohya-format LoRA file.

Applying LoRA ``i`` at strength ``s_i`` adds ``s_i * (alpha_i / rank_i) * up_i @ down_i`` to each
weight it touches (ComfyUI and kohya agree: a missing alpha means scale 1). A stack is the sum of
those terms, so it is itself low rank: concatenating the factors along the rank axis, with each
``up_i`` pre-multiplied by ``s_i * alpha_i / rank_i`` and the merged alpha set equal to the merged
rank (scale 1), reproduces the stack exactly. SVD mode re-factors that sum to a target rank
(smaller file, faster apply) and reports the relative error it cost, computed on the small
``R x R`` core (QR of both factors) rather than on the full weight-sized matrix.

Text-encoder modules (``lora_te*``) take the clip strength, everything else the model strength.
Conv modules keep their kernel: down ``[r, in, kh, kw]`` and up ``[out, r, 1, 1]`` concatenate on
the rank axis like linear ones.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..choices import one_of
from ..models.weights_file import load_safetensors
from ..progress import Progress, ensure_progress
from .files import SAVE_DTYPES, lora_path, write_lora
from .metadata import TRIGGER_KEY, module_prefix

MERGE_MODES = ("concat", "svd")
_SUPPORTED_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")


class MergeError(ValueError):
    """A stack that cannot be merged exactly as asked (unsupported keys, mismatched shapes)."""


@dataclass(frozen=True)
class MergePart:
    """One LoRA of the stack, loaded: path, strengths, and its display name."""

    name: str
    path: str
    model_strength: float
    clip_strength: float


@dataclass
class MergeReport:
    mode: str
    modules: int = 0
    rank: int = 0
    svd_error: float = 0.0
    svd_max_module_error: float = 0.0
    parts: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.mode} merge of {len(self.parts)} LoRAs: {self.modules} modules, rank {self.rank}"
        if self.mode == "svd":
            text += (f"; SVD relative error {self.svd_error:.4%} overall, "
                     f"{self.svd_max_module_error:.4%} worst module")
        return text


def _is_text_encoder(prefix: str) -> bool:
    return prefix.startswith(("lora_te", "text_encoder"))


def _load_modules(path: str) -> dict[str, dict[str, Any]]:
    """``{prefix: {"up", "down", "alpha"}}`` from a kohya LoRA file, refusing other formats."""
    tensors = load_safetensors(path)
    modules: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        if not key.endswith(_SUPPORTED_SUFFIXES):
            raise MergeError(f"{Path(path).name}: key {key!r} is not a plain kohya LoRA key "
                             "(lora_down/lora_up/alpha); LoCon mid, DoRA and PEFT files cannot be merged")
        prefix = module_prefix(key)
        slot = {".lora_down.weight": "down", ".lora_up.weight": "up", ".alpha": "alpha"}[key[len(prefix):]]
        modules.setdefault(prefix, {})[slot] = tensor
    for prefix, parts in modules.items():
        if "up" not in parts or "down" not in parts:
            raise MergeError(f"{Path(path).name}: module {prefix} lacks lora_up or lora_down")
    return modules


def _scaled_factors(module: dict[str, Any], strength: float) -> tuple[Any, Any]:
    """(up * strength * alpha/rank, down), both float32."""
    down = module["down"].float()
    up = module["up"].float()
    rank = down.shape[0]
    alpha = float(module["alpha"].float().reshape(-1)[0]) if "alpha" in module else float(rank)
    return up * (strength * alpha / rank), down


def _match_ndim(ups: list[Any], downs: list[Any], prefix: str) -> tuple[list[Any], list[Any]]:
    """Give linear-shaped factors a 1x1 kernel when another LoRA stored the module as conv."""
    if len({d.dim() for d in downs}) == 1:
        return ups, downs
    ups = [u.reshape(*u.shape[:2], 1, 1) if u.dim() == 2 else u for u in ups]
    downs = [d.reshape(*d.shape[:2], 1, 1) if d.dim() == 2 else d for d in downs]
    if len({tuple(d.shape[1:]) for d in downs}) != 1:
        raise MergeError(f"module {prefix}: the LoRAs disagree on its shape "
                         f"({[tuple(d.shape) for d in downs]})")
    return ups, downs


def _concat(ups: list[Any], downs: list[Any], prefix: str) -> tuple[Any, Any]:
    import torch

    ups, downs = _match_ndim(ups, downs, prefix)
    if len({tuple(d.shape[1:]) for d in downs}) != 1 or len({u.shape[0] for u in ups}) != 1:
        raise MergeError(f"module {prefix}: the LoRAs disagree on its shape "
                         f"({[tuple(d.shape) for d in downs]} / {[tuple(u.shape) for u in ups]})")
    return torch.cat(ups, dim=1), torch.cat(downs, dim=0)


def _svd(up: Any, down: Any, rank: int) -> tuple[Any, Any, float, float]:
    """Best rank-``rank`` factors of ``up @ down``; returns (up, down, error², norm²)."""
    import torch

    total_rank = down.shape[0]
    up2 = up.reshape(up.shape[0], total_rank)
    down2 = down.reshape(total_rank, -1)
    q_up, r_up = torch.linalg.qr(up2.double())
    q_down, r_down = torch.linalg.qr(down2.double().T)
    u, s, vh = torch.linalg.svd(r_up @ r_down.T)
    keep = min(rank, s.shape[0])
    root = s[:keep].sqrt()
    new_up = (q_up @ u[:, :keep]) * root
    new_down = root[:, None] * (vh[:keep] @ q_down.T)
    error2 = float((s[keep:] ** 2).sum())
    norm2 = float((s ** 2).sum())
    up_shape = (up.shape[0], keep, *up.shape[2:])
    down_shape = (keep, *down.shape[1:])
    return new_up.float().reshape(up_shape), new_down.float().reshape(down_shape), error2, norm2


def merge_stack(parts: Sequence[MergePart], mode: str = "concat", rank: int = 32,
                progress: Progress | None = None) -> tuple[dict[str, Any], MergeReport]:
    """The merged kohya state dict (float32) and a report; see the module docstring for the math."""
    import torch

    one_of(mode, MERGE_MODES, "merge mode", MergeError)
    if not parts:
        raise MergeError("the stack is empty: nothing to merge")
    progress = ensure_progress(progress)
    loaded = [(_load_modules(p.path), p) for p in parts]
    prefixes = sorted({prefix for modules, _ in loaded for prefix in modules})
    report = MergeReport(mode=mode, parts=[{"name": p.name, "model_strength": p.model_strength,
                                            "clip_strength": p.clip_strength} for p in parts])
    out: dict[str, Any] = {}
    error2_total = norm2_total = 0.0
    for done, prefix in enumerate(prefixes, 1):
        ups, downs = [], []
        for modules, part in loaded:
            strength = part.clip_strength if _is_text_encoder(prefix) else part.model_strength
            if prefix in modules and strength != 0:
                up, down = _scaled_factors(modules[prefix], strength)
                ups.append(up)
                downs.append(down)
        if ups:
            up, down = _concat(ups, downs, prefix)
            if mode == "svd" and down.shape[0] > rank:
                up, down, error2, norm2 = _svd(up, down, rank)
                error2_total += error2
                norm2_total += norm2
                if norm2 > 0:
                    report.svd_max_module_error = max(report.svd_max_module_error, math.sqrt(error2 / norm2))
            elif mode == "svd":
                norm2_total += float(torch.linalg.matrix_norm(
                    up.reshape(up.shape[0], -1) @ down.reshape(down.shape[0], -1)) ** 2)
            out[f"{prefix}.lora_up.weight"] = up.contiguous()
            out[f"{prefix}.lora_down.weight"] = down.contiguous()
            out[f"{prefix}.alpha"] = torch.tensor(float(down.shape[0]))
            report.rank = max(report.rank, down.shape[0])
            report.modules += 1
        progress.update(done, len(prefixes))
    if not out:
        raise MergeError("every strength in the stack is 0: the merged LoRA would be empty")
    report.svd_error = math.sqrt(error2_total / norm2_total) if norm2_total > 0 else 0.0
    return out, report


def check_same_base(infos: Sequence[Any]) -> None:
    """Refuse to merge LoRAs made for different base models (the result would be neither), naming
    each file and its base; LoRAs whose base cannot be told are let through."""
    families: dict[str, list[str]] = {}
    for info in infos:
        if info.base_model != "unknown":
            families.setdefault(info.base_model, []).append(Path(info.path).name)
    if len(families) > 1:
        parts = "; ".join(f"{', '.join(files)} is {base}" for base, files in sorted(families.items()))
        raise MergeError(f"cannot merge LoRAs for different base models: {parts}; merge LoRAs of one base only")


def merged_metadata(report: MergeReport, infos: Sequence[Any], name: str) -> dict[str, str]:
    """Metadata naming the parts and their strengths; base model kept when all parts agree."""
    bases = {getattr(i, "base_model", "unknown") for i in infos}
    versions = {i.metadata.get("ss_base_model_version", "") for i in infos if hasattr(i, "metadata")}
    triggers: list[str] = []
    for info in infos:
        triggers += [t for t in getattr(info, "triggers", ()) if t not in triggers]
    meta = {
        "lora_foundry.merged_from": json.dumps(report.parts),
        "lora_foundry.merge_mode": report.mode,
        "ss_network_dim": str(report.rank),
        "ss_network_alpha": str(report.rank),
        "ss_network_module": "networks.lora",
        "ss_output_name": name,
        "modelspec.title": name,
        TRIGGER_KEY: ", ".join(triggers),
    }
    if report.mode == "svd":
        meta["lora_foundry.svd_relative_error"] = f"{report.svd_error:.6f}"
    if len(versions) == 1 and "" not in versions:
        meta["ss_base_model_version"] = versions.pop()
    if len(bases) == 1:
        meta["lora_foundry.base_model"] = bases.pop()
    return meta


def save_lora(state_dict: dict[str, Any], metadata: dict[str, str], dest_dir: Path, name: str,
              dtype: str = "fp16", overwrite: bool = False) -> Path:
    """Write ``<dest_dir>/<name>.safetensors`` atomically; never replace a file unless asked."""
    one_of(dtype, SAVE_DTYPES, "dtype", MergeError)
    return write_lora(lora_path(dest_dir, name), state_dict, metadata, dtype, overwrite)
