"""LoRA Foundry: ComfyUI entry point.

ComfyUI imports this folder as a package and reads the three names below. Importing does no work
beyond collecting node classes: no downloads, no installs, no model loading.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./js"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
