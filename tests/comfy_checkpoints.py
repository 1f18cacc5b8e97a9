"""Tiny checkpoints a real ComfyUI detects, built by ComfyUI's own Python with ComfyUI's own classes
(random weights), for the gated real-ComfyUI tests: one builder per architecture, one way to run it.

Each ``*_SCRIPT`` runs as ``<ComfyUI python> -c SCRIPT <output.safetensors>`` with ``COMFYUI_DIR`` set
(``build``). tests/integration/standins.py derives its lighter SD1.5 UNet from ``SD15_SCRIPT``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "integration"))
from comfy_api import comfy_python  # noqa: E402  (re-exported: the gated tests import it from here)

CKPT_NAME = "lf_tiny_sd15.safetensors"
_SETUP = r'''
import os, sys
sys.path.insert(0, os.environ["COMFYUI_DIR"]); os.chdir(os.environ["COMFYUI_DIR"])
from comfy.cli_args import args; args.cpu = True
import torch, safetensors.torch
'''
_RANDOMIZED = r'''import comfy.ldm.modules.diffusionmodules.openaimodel as oam
torch.manual_seed(0)
def randomized(state, dtype):
    out = {}
    for k, v in state.items():
        if not v.dtype.is_floating_point: out[k] = v
        elif ("norm" in k or "ln_" in k) and k.endswith("weight"): out[k] = torch.ones(v.shape, dtype=dtype)
        elif k.endswith("bias"): out[k] = torch.zeros(v.shape, dtype=dtype)
        else: out[k] = (torch.randn(v.shape) * 0.02).to(dtype)
    return out
'''

# A tiny SD1.5: random tiny UNet, random full-size CLIP-L, random TAESD as VAE.
SD15_SCRIPT = _SETUP + "import comfy.ops, comfy.sd1_clip, comfy.taesd.taesd\n" + _RANDOMIZED + r'''unet = oam.UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[1],
    dropout=0, channel_mult=(1,), num_heads=8, num_head_channels=-1, use_spatial_transformer=True,
    transformer_depth=[1], transformer_depth_middle=1, transformer_depth_output=[1, 1], context_dim=768,
    use_linear_in_transformer=False, adm_in_channels=None, dims=2, operations=comfy.ops.disable_weight_init)
sd = {"model.diffusion_model." + k: v for k, v in randomized(unet.state_dict(), torch.float32).items()}
clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
sd.update({"cond_stage_model." + k: v for k, v in randomized(clip.state_dict(), torch.float16).items()})
vae = comfy.taesd.taesd.TAESD(latent_channels=4)
sd.update({"first_stage_model." + k: v for k, v in randomized(vae.state_dict(), torch.float32).items()})
safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[1])
'''

# A tiny checkpoint ComfyUI detects as SDXL, built with ComfyUI's own classes. Detection
# (comfy/supported_models.SDXL.unet_config) matches model_channels 320, linear transformers,
# transformer_depth [0, 0, 2, 2, 10, 10], context_dim 2048 and adm_in_channels 2816; channel_mult is
# not matched, so every level stays 320 wide (~0.5 GB of UNet instead of 10 GB) and the middle block
# has one transformer block. CLIP-L and CLIP-G are full size (ComfyUI builds them from fixed configs),
# which makes the file ~2.1 GB; the VAE is a TAESD.
SDXL_SCRIPT = _SETUP + "import comfy.ops, comfy.sdxl_clip, comfy.supported_models, comfy.taesd.taesd\n" + _RANDOMIZED + r'''unet = oam.UNetModel(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2],
    dropout=0, channel_mult=(1, 1, 1), num_heads=-1, num_head_channels=64, use_spatial_transformer=True,
    transformer_depth=[0, 0, 2, 2, 10, 10], transformer_depth_middle=1,
    transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], context_dim=2048, use_linear_in_transformer=True,
    adm_in_channels=2816, num_classes="sequential", dims=2, operations=comfy.ops.disable_weight_init)
sd = {"model.diffusion_model." + k: v for k, v in randomized(unet.state_dict(), torch.float16).items()}
del unet
clip = comfy.sdxl_clip.SDXLClipModel(device="cpu", dtype=torch.float16)
saving = comfy.supported_models.SDXL({}).process_clip_state_dict_for_saving
sd.update(saving(randomized(clip.state_dict(), torch.float16)))
del clip
vae = comfy.taesd.taesd.TAESD(latent_channels=4)
sd.update({"first_stage_model." + k: v for k, v in randomized(vae.state_dict(), torch.float32).items()})
safetensors.torch.save_file({k: v.contiguous() for k, v in sd.items()}, sys.argv[1])
'''


def build(script: str, path: Path, comfy_dir: str | Path, timeout: float = 900) -> Path:
    """Runs a builder script in ComfyUI's Python; the checkpoint is written to ``path``."""
    subprocess.run([comfy_python(comfy_dir), "-c", script, str(path)], check=True, timeout=timeout,
                   env={**os.environ, "COMFYUI_DIR": str(comfy_dir)})
    return path
