"""Offline assets for the real-sd-scripts test: a random SD1.5-family checkpoint with a tiny UNet,
a CLIP tokenizer cache built by the engine from open_clip's BPE file, and a launch wrapper that makes sd-scripts build
its UNet with the same tiny channels. Scripts run with sd-scripts' own python (they need its
diffusers/transformers); nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

from lora_foundry.kohya.operator_config import TrainerInstall
from lora_foundry.kohya.tokenizer_cache import build_clip_l

CHANNELS = "32,64,64,64"
COMFY_DETECTABLE_CHANNELS = "320,320,320,320"  # ComfyUI detects SD1.5 only with 320 model channels

# sd-scripts hard-codes SD1.5's UNet channels as module constants; patch them, then run the script.
SHIM = """
import os, runpy, sys
sys.path.insert(0, os.getcwd())
ch = tuple(int(c) for c in os.environ["LF_UNET_CHANNELS"].split(","))
import library.original_unet as ou, library.model_util as mu
ou.BLOCK_OUT_CHANNELS, ou.TIMESTEP_INPUT_DIM, ou.TIME_EMBED_DIM = ch, ch[0], ch[0] * 4
mu.UNET_PARAMS_MODEL_CHANNELS, mu.UNET_PARAMS_CHANNEL_MULT = ch[0], [c // ch[0] for c in ch]
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""

BUILDER = """
import gzip, json, os, sys
sys.path.insert(0, os.getcwd())
exec_dir, out = sys.argv[1], sys.argv[2]
import torch
from transformers import CLIPTextConfig, CLIPTextModel
from diffusers import AutoencoderKL
ch = tuple(int(c) for c in os.environ["LF_UNET_CHANNELS"].split(","))
import library.original_unet as ou, library.model_util as mu
ou.BLOCK_OUT_CHANNELS, ou.TIMESTEP_INPUT_DIM, ou.TIME_EMBED_DIM = ch, ch[0], ch[0] * 4
mu.UNET_PARAMS_MODEL_CHANNELS, mu.UNET_PARAMS_CHANNEL_MULT = ch[0], [c // ch[0] for c in ch]

torch.manual_seed(0)
unet = ou.UNet2DConditionModel(**mu.create_unet_diffusers_config(False))
vae = AutoencoderKL(**mu.create_vae_diffusers_config())
te = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                                  hidden_act="quick_gelu", projection_dim=768, bos_token_id=49406, eos_token_id=49407,
                                  pad_token_id=49407))
mu.save_stable_diffusion_checkpoint(False, os.path.join(out, "base.safetensors"), te, unet, None, 0, 0, {},
                                    save_dtype=torch.float16, vae=vae)
"""


def build_real_assets(install: TrainerInstall, root: Path, channels: str = CHANNELS) -> tuple[TrainerInstall, Path]:
    """(install with the tiny-UNet wrapper and tokenizer cache, base checkpoint) under ``root``.

    ``channels`` are the UNet's four level widths; ``COMFY_DETECTABLE_CHANNELS`` gives a larger
    model that ComfyUI's model detection also takes for SD1.5 (to load the trained LoRA there).
    """
    root.mkdir(parents=True, exist_ok=True)
    (root / "shim.py").write_text(SHIM, encoding="utf-8")
    (root / "build.py").write_text(BUILDER, encoding="utf-8")
    build_clip_l(root / "tokenizer_cache")  # the engine's own offline CLIP-L cache (lora-foundry tokenizers)
    env = {"LF_UNET_CHANNELS": channels, "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run([str(install.python), str(root / "build.py"), str(install.sd_scripts_dir), str(root)],
                   cwd=install.sd_scripts_dir, env=env, check=True, timeout=900)
    tiny = dataclasses.replace(install, python_args=(str(root / "shim.py"),), env={"LF_UNET_CHANNELS": channels},
                               tokenizer_cache_dir=root / "tokenizer_cache")
    return tiny, root / "base.safetensors"
