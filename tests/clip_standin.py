"""A tiny random-weight open_clip model saved as a user installs one (a Hugging Face snapshot), for
tests and for scenario scripts that run without the engine on their path: imports no LoRA Foundry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def save_tiny_local_dir(folder: Path) -> Any:
    """A Hugging Face-style snapshot: open_clip_config.json + open_clip_model.safetensors."""
    import torch
    from open_clip.model import CLIP
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = CLIP(**TINY_CFG)
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CFG, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "open_clip_model.safetensors"))
    return model
