"""``lora-foundry``: the engine from the command line (no ComfyUI needed).

One module per group of subcommands: ``commands`` (demo, ingest, the parser and ``main``),
``training`` (train / doctor / tokenizers), ``scale`` (many videos, local or on Ray), ``leco``
(LECO through kohya), ``video`` (video-dataset / train-video: clips and musubi-tuner). ``pyproject.toml``'s ``lora-foundry = "lora_foundry.cli:main"`` and
``python -m lora_foundry.cli`` both land in ``commands.main``.
"""

from .commands import BUNDLED_VIDEO, main

__all__ = ["BUNDLED_VIDEO", "main"]
