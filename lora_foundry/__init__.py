"""LoRA Foundry engine: plain Python, never imports ComfyUI. See docs/ARCHITECTURE.md."""

__version__ = "0.1.0"
