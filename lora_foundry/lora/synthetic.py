"""Small random kohya-format LoRA files, for tests, benchmarks and smoke checks.

Real LoRAs are tens of megabytes and come with licences; the behaviours we check (key matching,
merge arithmetic, metadata parsing) only need the right key names, shapes and metadata. Files are
written with ``safetensors`` exactly as kohya's sd-scripts writes them (``lora_down`` / ``lora_up``
/ ``alpha`` per module, ``ss_*`` metadata strings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

# module prefix → (out features, in features, kernel): a slice of SD1.5 in kohya's names that also
# exists in the tiny SD1.5 UNet of ../shared/tools/make_tiny_sd15_unet.py (one level, 320 channels).
SD15_MODULES: dict[str, tuple[int, int, int]] = {
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q": (320, 320, 0),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k": (320, 320, 0),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_v": (320, 320, 0),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_out_0": (320, 320, 0),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k": (320, 768, 0),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_v": (320, 768, 0),
    "lora_unet_down_blocks_0_attentions_0_proj_in": (320, 320, 1),
    "lora_unet_down_blocks_0_resnets_0_conv1": (320, 320, 3),
}
SD15_TE_MODULES: dict[str, tuple[int, int, int]] = {
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj": (768, 768, 0),
    "lora_te_text_model_encoder_layers_0_mlp_fc1": (3072, 768, 0),
}
# SDXL-only names (kohya writes SDXL UNet keys in the original SGM layout, text encoders te1/te2).
SDXL_MODULES: dict[str, tuple[int, int, int]] = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q": (640, 640, 0),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k": (640, 2048, 0),
    "lora_te2_text_model_encoder_layers_0_self_attn_q_proj": (1280, 1280, 0),
}


def module_tensors(out_features: int, in_features: int, kernel: int, rank: int, alpha: float,
                   generator: object) -> dict[str, object]:
    """``lora_down``/``lora_up``/``alpha`` for one module; kernel 0 = linear, k = conv k×k."""
    import torch

    if kernel:
        down = torch.randn(rank, in_features, kernel, kernel, generator=generator) * 0.05
        up = torch.randn(out_features, rank, 1, 1, generator=generator) * 0.05
    else:
        down = torch.randn(rank, in_features, generator=generator) * 0.05
        up = torch.randn(out_features, rank, generator=generator) * 0.05
    return {"lora_down.weight": down, "lora_up.weight": up, "alpha": torch.tensor(float(alpha))}


def write_kohya_lora(path: Path, modules: Mapping[str, tuple[int, int, int]], rank: int = 4,
                     alpha: float = 2.0, seed: int = 0, metadata: Mapping[str, str] | None = None,
                     tags: Mapping[str, Mapping[str, int]] | None = None) -> Path:
    """Write a random kohya LoRA with ``modules`` and kohya-style metadata; returns ``path``."""
    import torch

    from .files import write_lora

    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for prefix, (out_f, in_f, kernel) in modules.items():
        for suffix, tensor in module_tensors(out_f, in_f, kernel, rank, alpha, generator).items():
            tensors[f"{prefix}.{suffix}"] = tensor.contiguous()
    meta = {"ss_network_module": "networks.lora", "ss_network_dim": str(rank),
            "ss_network_alpha": str(alpha), "ss_output_name": Path(path).stem}
    if tags is not None:
        meta["ss_tag_frequency"] = json.dumps({k: dict(v) for k, v in tags.items()})
    meta.update(metadata or {})
    return write_lora(Path(path), tensors, meta, "fp32", overwrite=True)
