"""What a LoRA file says about itself, read from the safetensors header only.

Users stack LoRAs trained on the wrong base model and forget trigger words. Both answers sit in
the file's header: kohya's ``ss_*`` keys and SAI's ``modelspec.*`` keys, our own
``lora_foundry.*`` keys, and the tensor names and shapes (which tell SD1.x from SD2.x from SDXL
even when the metadata was stripped). The header is read with ``safetensors.safe_open`` (memory
mapped: no weight tensor is read; only the scalar ``.alpha`` tensors, a few bytes each, when the
metadata does not name the alpha). Results are cached by (path, mtime, size) in a
``LoraInfoCache`` (a ``FileCache`` of ``read_lora_info``) that a node owns, never in a module global.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bounded import parse_json
from ..models.weights_file import open_safetensors
from .files import FileCache

TRIGGER_KEY = "lora_foundry.trigger"
TYPE_KEY = "lora_foundry.type"
MAX_TAGS_SHOWN = 12
MAX_LECO_SHOWN = 4

_BASE_VERSIONS = {
    "sd_v1": "SD1.x", "sd_v2": "SD2.x", "sd_v2_v": "SD2.x", "sdxl_base_v1-0": "SDXL",
    "flux1": "Flux", "chroma": "Flux", "sd3": "SD3",
}
_ARCH_PREFIXES = (
    ("stable-diffusion-v1", "SD1.x"), ("stable-diffusion-v2", "SD2.x"),
    ("stable-diffusion-xl", "SDXL"), ("stable-diffusion-3", "SD3"), ("flux", "Flux"),
    ("chroma", "Flux"),
)
_LORA_SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".lora_mid.weight", ".alpha",
                  ".dora_scale", ".lora_A.weight", ".lora_B.weight", ".diff", ".diff_b")


@dataclass(frozen=True)
class LoraInfo:
    """Everything the stack, prompt and apply nodes need to know about one LoRA file."""

    path: str
    base_model: str
    base_model_source: str
    rank: int | None
    alpha: float | None
    rank_source: str
    triggers: tuple[str, ...]
    trigger_source: str
    output_name: str
    lora_type: str | None
    tag_frequency: dict[str, int] = field(default_factory=dict)
    unet_modules: int = 0
    te_modules: int = 0
    conv_modules: int = 0
    key_format: str = "kohya"
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def module_count(self) -> int:
        return self.unet_modules + self.te_modules


def module_prefix(key: str) -> str | None:
    """``lora_unet_x.lora_down.weight`` → ``lora_unet_x``; None for keys that are no LoRA part."""
    for suffix in _LORA_SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return None


def _base_from_keys(shapes: dict[str, tuple[int, ...]]) -> str:
    """Guess the base model family from kohya tensor names and text-encoder widths."""
    keys = shapes.keys()
    if any(k.startswith(("lora_unet_double_blocks", "lora_unet_single_blocks")) for k in keys):
        return "Flux"
    if any(k.startswith("lora_te2_") for k in keys) or any(
        k.startswith(("lora_unet_input_blocks", "lora_unet_output_blocks", "lora_unet_middle_block"))
        for k in keys
    ):
        return "SDXL"
    te_width = next((shape[1] for k, shape in shapes.items()
                     if k.startswith("lora_te_") and k.endswith("q_proj.lora_down.weight")), None)
    if te_width == 1024:
        return "SD2.x"
    if te_width == 768 or any(k.startswith("lora_unet_down_blocks") for k in keys):
        return "SD1.x"
    return "unknown"


def _base_model(meta: dict[str, str], shapes: dict[str, tuple[int, ...]]) -> tuple[str, str]:
    version = meta.get("ss_base_model_version", "")
    if version in _BASE_VERSIONS:
        return _BASE_VERSIONS[version], f"ss_base_model_version={version}"
    arch = meta.get("modelspec.architecture", "")
    for prefix, family in _ARCH_PREFIXES:
        if arch.startswith(prefix):
            return family, f"modelspec.architecture={arch}"
    return _base_from_keys(shapes), "inferred from tensor names"


def tag_frequency(meta: dict[str, str]) -> dict[str, int]:
    """kohya's ``ss_tag_frequency`` ({dataset folder: {tag: count}}) summed over folders."""
    raw = meta.get("ss_tag_frequency")
    if not raw:
        return {}
    try:
        by_folder = parse_json(raw, "ss_tag_frequency")
    except ValueError:
        return {}
    total: Counter[str] = Counter()
    if isinstance(by_folder, dict):
        for tags in by_folder.values():
            if isinstance(tags, dict):
                total.update({str(t).strip(): int(c) for t, c in tags.items() if str(t).strip()})
    return dict(total.most_common())


def split_triggers(text: str) -> tuple[str, ...]:
    """``"ohwx woman, red coat"`` → ``("ohwx woman", "red coat")``, blanks and repeats dropped."""
    seen: dict[str, str] = {}
    for part in text.split(","):
        word = part.strip()
        if word and word.lower() not in seen:
            seen[word.lower()] = word
    return tuple(seen.values())


def _triggers(meta: dict[str, str], tags: dict[str, int]) -> tuple[tuple[str, ...], str]:
    """Our key first; else tags that appear in (nearly) every caption; else the output name."""
    ours = split_triggers(meta.get(TRIGGER_KEY, ""))
    if ours:
        return ours, TRIGGER_KEY
    if tags:
        top = max(tags.values())
        always = [t for t, c in tags.items() if c >= 0.9 * top][:3]
        return tuple(always), "ss_tag_frequency (tags in ≥90% of captions)"
    name = meta.get("ss_output_name", "").strip()
    if name:
        return (name,), "ss_output_name"
    return (), "none found"


def _rank_alpha(meta: dict[str, str], shapes: dict[str, tuple[int, ...]],
                alphas: list[float]) -> tuple[int | None, float | None, str]:
    ranks = Counter(s[0] for k, s in shapes.items() if k.endswith(".lora_down.weight"))
    shape_rank = ranks.most_common(1)[0][0] if ranks else None
    rank = _as_number(meta.get("ss_network_dim"), int)
    alpha = _as_number(meta.get("ss_network_alpha"), float)
    source = "ss_network_dim/alpha" if rank is not None else "tensor shapes"
    if rank is None:
        rank = shape_rank
    if alpha is None and alphas:
        alpha = Counter(alphas).most_common(1)[0][0]
    return rank, alpha, source


def _as_number(text: str | None, kind: type) -> Any:
    try:
        return kind(float(text)) if text not in (None, "", "None") else None
    except (TypeError, ValueError):
        return None


def _key_format(shapes: dict[str, tuple[int, ...]]) -> str:
    keys = list(shapes)
    if any(k.startswith(("lora_unet_", "lora_te")) for k in keys):
        return "kohya"
    if any(".lora_A." in k or ".lora_B." in k for k in keys):
        return "peft/diffusers"
    return "other"


def _scalar(handle: Any, path: str, key: str) -> float:
    """A scalar tensor's value; bf16 (numpy has no bf16) is read through torch instead."""
    try:
        return float(handle.get_tensor(key).reshape(-1)[0])
    except (TypeError, ValueError):
        with open_safetensors(path, framework="pt") as torch_handle:
            return float(torch_handle.get_tensor(key).float().reshape(-1)[0])


def read_lora_info(path: str | os.PathLike[str]) -> LoraInfo:
    """Read one LoRA file's header (metadata, tensor names and shapes, scalar alphas)."""
    path = str(Path(path).resolve())
    shapes: dict[str, tuple[int, ...]] = {}
    alphas: list[float] = []
    with open_safetensors(path, framework="numpy") as handle:
        meta = dict(handle.metadata() or {})
        for key in handle.keys():
            shapes[key] = tuple(handle.get_slice(key).get_shape())
            if key.endswith(".alpha"):
                alphas.append(_scalar(handle, path, key))
    prefixes = {p for p in (module_prefix(k) for k in shapes) if p}
    base, base_source = _base_model(meta, shapes)
    rank, alpha, rank_source = _rank_alpha(meta, shapes, alphas)
    tags = tag_frequency(meta)
    triggers, trigger_source = _triggers(meta, tags)
    return LoraInfo(
        path=path, base_model=base, base_model_source=base_source, rank=rank, alpha=alpha,
        rank_source=rank_source, triggers=triggers, trigger_source=trigger_source,
        output_name=meta.get("ss_output_name", ""), lora_type=meta.get(TYPE_KEY) or None,
        tag_frequency=tags,
        unet_modules=sum(1 for p in prefixes if not p.startswith(("lora_te", "text_encoder"))),
        te_modules=sum(1 for p in prefixes if p.startswith(("lora_te", "text_encoder"))),
        conv_modules=sum(1 for k, s in shapes.items() if k.endswith(".lora_down.weight") and len(s) == 4),
        key_format=_key_format(shapes), metadata=meta,
    )


class LoraInfoCache(FileCache[LoraInfo]):
    """The bounded ``FileCache`` of ``read_lora_info``: a changed file is re-read, ``reads`` counts reads."""

    def __init__(self, max_entries: int = 128) -> None:
        super().__init__(read_lora_info, max_entries)


def format_info(info: LoraInfo, name: str | None = None) -> str:
    """A readable multi-line summary for the LoRA Info node."""
    tags = ", ".join(f"{t} ({c})" for t, c in list(info.tag_frequency.items())[:MAX_TAGS_SHOWN])
    lines = [
        f"file: {name or Path(info.path).name}",
        f"base model: {info.base_model} ({info.base_model_source})",
        f"rank: {info.rank if info.rank is not None else '?'}, alpha: "
        f"{info.alpha if info.alpha is not None else '? (scale 1.0)'} ({info.rank_source})",
        f"modules: {info.unet_modules} UNet, {info.te_modules} text encoder, "
        f"{info.conv_modules} conv; key format: {info.key_format}",
        f"trigger words: {', '.join(info.triggers) or '(none)'} ({info.trigger_source})",
        f"output name: {info.output_name or '(none)'}",
        f"type: {info.lora_type or '(not recorded)'}",
        f"tag frequencies: {tags or '(none recorded)'}",
    ]
    return "\n".join(lines + _leco_lines(info.metadata))


def _leco_lines(meta: dict[str, str]) -> list[str]:
    """What a LECO / slider LoRA was trained on (sd-scripts' ``ss_leco_*`` keys), when present."""
    if "ss_leco_prompt_count" not in meta:
        return []
    lines = [f"LECO: {meta['ss_leco_prompt_count']} settings from {meta.get('ss_leco_prompts_file') or '?'}"]
    try:
        preview = parse_json(meta.get("ss_leco_preview", "[]"), "ss_leco_preview")
    except ValueError:
        preview = []
    for item in preview[:MAX_LECO_SHOWN] if isinstance(preview, list) else []:
        if isinstance(item, dict):
            lines.append(f"  {item.get('action', '?')} target '{item.get('target', '')}' toward '"
                         f"{item.get('positive', '')}' vs '{item.get('unconditional', '')}' at "
                         f"{item.get('multiplier', '?')} (weight {item.get('weight', '?')})")
    return lines
