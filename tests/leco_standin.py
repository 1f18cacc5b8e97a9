"""A tiny pure-torch denoiser and text encoder for LECO tests that run without ComfyUI.

The denoiser has the parts a LECO LoRA trains in SD1.5 (a transformer block with self- and
cross-attention, 1×1 proj_in/proj_out, feed-forward) around a conv in/out, random weights from a
fixed seed; the "text encoder" gives each word a fixed random vector, so different prompts steer
the prediction differently. Run as a script it trains a small erase LoRA (the kill-and-resume test
starts it as a child process and kills it).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch

from lora_foundry.leco import checkpoints, network, prompts, train

CONTEXT_DIM, CHANNELS, TOKENS = 16, 32, 6


def word_vector(word: str) -> torch.Tensor:
    seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
    return torch.randn(CONTEXT_DIM, generator=torch.Generator().manual_seed(seed))


def encode(prompt: str) -> torch.Tensor:
    """[1, TOKENS, CONTEXT_DIM]: a start token, one vector per word, padding."""
    words = ["<start>"] + prompt.lower().replace(",", " ").split()[: TOKENS - 1]
    words += ["<pad>"] * (TOKENS - len(words))
    return torch.stack([word_vector(w) for w in words])[None]


class Attention(torch.nn.Module):
    def __init__(self, context_dim: int) -> None:
        super().__init__()
        self.to_q = torch.nn.Linear(CHANNELS, CHANNELS, bias=False)
        self.to_k = torch.nn.Linear(context_dim, CHANNELS, bias=False)
        self.to_v = torch.nn.Linear(context_dim, CHANNELS, bias=False)
        self.to_out = torch.nn.Linear(CHANNELS, CHANNELS)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        return self.to_out(torch.nn.functional.scaled_dot_product_attention(q, k, v))


class TinyUNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv_in = torch.nn.Conv2d(4, CHANNELS, 3, padding=1)
        self.time = torch.nn.Linear(2, CHANNELS)
        self.proj_in = torch.nn.Conv2d(CHANNELS, CHANNELS, 1)
        self.attn1 = Attention(CHANNELS)
        self.attn2 = Attention(CONTEXT_DIM)
        self.ff = torch.nn.Linear(CHANNELS, CHANNELS)
        self.proj_out = torch.nn.Conv2d(CHANNELS, CHANNELS, 1)
        self.conv_out = torch.nn.Conv2d(CHANNELS, 4, 3, padding=1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        scaled = x / (sigma ** 2 + 1) ** 0.5
        t = torch.stack([torch.log(sigma + 1e-3), sigma / (1 + sigma)]).reshape(1, 2).expand(b, 2)
        hidden = self.conv_in(scaled) + self.time(t)[:, :, None, None]
        tokens = self.proj_in(hidden).flatten(2).transpose(1, 2)
        context = context.expand(b, -1, -1)
        tokens = tokens + self.attn1(tokens, tokens)
        tokens = tokens + self.attn2(tokens, context)
        tokens = tokens + self.ff(torch.nn.functional.gelu(tokens))
        hidden = hidden + self.proj_out(tokens.transpose(1, 2).reshape(b, CHANNELS, h, w))
        return self.conv_out(torch.nn.functional.silu(hidden))


def tiny_unet(seed: int = 0) -> TinyUNet:
    torch.manual_seed(seed)
    model = TinyUNet().eval()
    model.requires_grad_(False)
    return model


class StandinPredictor:
    def __init__(self, model: TinyUNet) -> None:
        self.model = model

    def initial_latents(self, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return noise * sigma

    def predict_noise(self, latents: torch.Tensor, sigma: torch.Tensor, prompt: str) -> torch.Tensor:
        return self.model(latents, torch.as_tensor(sigma, dtype=torch.float32), encode(prompt))

    def denoise(self, latents, sigmas, prompt, negative, guidance):
        def cfg(x, sigma):
            uncond = self.predict_noise(x, sigma, negative)
            return uncond + guidance * (self.predict_noise(x, sigma, prompt) - uncond)
        return train.euler_denoise(cfg, latents, sigmas)


class StandinBackend:
    latent_channels, downscale = 4, 8

    def __init__(self, model: TinyUNet) -> None:
        self.predictor = StandinPredictor(model)

    def sigmas(self, steps: int) -> torch.Tensor:
        return train.ddpm_sigmas(steps)

    def run(self, shape, work):
        return work(self.predictor)


def make_run(folder: Path, settings, rank: int = 4, seed: int = 0, **files_options):
    """(backend, network, run files) for the stand-in model."""
    model = tiny_unet()
    net = network.TorchLoraNetwork(model, network.lora_layer_paths(model), rank=rank, alpha=1.0, seed=seed)
    meta = checkpoints.leco_metadata(settings, "prompts.toml", net, name="standin", steps=0,
                                     learning_rate=0.0, seed=seed)
    return StandinBackend(model), net, checkpoints.RunFiles(folder, "standin", meta, "fp32", **files_options)


ERASE_TOML = """
[[prompts]]
target = "red car"
action = "erase"
guidance_scale = 1.0
resolution = 64
"""


def hold_after(step: int, marker: Path):
    """An ``on_loss`` that, once step ``step`` is done, writes ``marker`` and blocks until killed:
    the kill test stops the run at a known step, whatever the machine's load."""
    def on_loss(done: int, loss: float) -> None:
        if done == step:
            marker.write_text(str(done))
            while True:
                time.sleep(3600)

    return on_loss


def main() -> None:
    """Train ``ERASE_TOML`` into ``argv[1]`` for ``argv[2]`` steps; with ``argv[3]`` (a step), hold
    after that step until killed, writing ``argv[1]/held``."""
    folder, steps = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    settings = prompts.parse_prompt_text(ERASE_TOML)
    backend, net, files = make_run(folder, settings)
    config = train.LecoConfig(steps=steps, learning_rate=5e-3, max_denoising_steps=8, save_every=5)
    on_loss = hold_after(int(sys.argv[3]), folder / "held") if len(sys.argv) > 3 else None
    result = train.train_leco(backend, net, settings, config, files, on_loss=on_loss)
    files.save_final(net, result.steps_done)
    print(f"start={result.start_step} done={result.steps_done}", flush=True)


if __name__ == "__main__":
    main()
