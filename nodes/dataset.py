"""The kohya dataset writer node."""

from __future__ import annotations

import json
from typing import Any

from ..lora_foundry.kohya import dataset
from ..lora_foundry.workspace import Handle, Workspace
from . import _comfy

CATEGORY = f"{_comfy.CATEGORY}/dataset"


class WriteKohyaDataset:
    DESCRIPTION = ("Writes the frames as a kohya dataset under <output>/lora_foundry/datasets/<name>/: an "
                   "'N_trigger class' folder with one image and one .txt caption per frame, a dataset.toml for "
                   "sd-scripts (--dataset_config) and a JSON report. Captions come from the caption builder "
                   "when present, else from the template. An existing dataset is never overwritten.")
    CATEGORY = CATEGORY
    FUNCTION = "write"
    RETURN_TYPES = ("LF_DATASET", "STRING", "STRING")
    RETURN_NAMES = ("dataset", "dataset_toml", "report")
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "frames": ("LF_FRAMES", {"tooltip": "The frames to write."}),
            "dataset_name": ("STRING", {"default": "my_lora", "tooltip":
                             "Folder name under <output>/lora_foundry/datasets/ (plain name, no slashes)."}),
            "trigger": ("STRING", {"default": "mychar", "tooltip":
                        "Trigger word: first in every caption and in the folder name; what binds to the LoRA."}),
            "class_word": ("STRING", {"default": "", "tooltip":
                           "Optional class word (person, dog, style...) after the trigger."}),
            "repeats": ("INT", {"default": 10, "min": 1, "max": 1000, "tooltip":
                        "kohya num_repeats: how often each image is seen per epoch (the N in N_trigger)."}),
            "image_format": (list(dataset.IMAGE_FORMATS), {"default": "png", "tooltip":
                             "png keeps alpha (masked-loss training); jpg/webp are smaller."}),
            "resolution": ("INT", {"default": 512, "min": 64, "max": 4096, "step": 64, "tooltip":
                           "Training resolution written to dataset.toml (bucketing is on)."}),
            "if_exists": (list(dataset.IF_EXISTS), {"default": "error", "tooltip":
                          "When a dataset of that name exists and came from other frames: error (default), "
                          "new_version (name_v2, ...) or reuse (return the existing one untouched)."}),
        }, "optional": {
            "caption_template": ("STRING", {"default": "{trigger}, {class_word}", "tooltip":
                                 "Caption for frames without a built caption; {trigger} and {class_word} are filled."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    def write(self, frames: Handle, dataset_name: str, trigger: str, class_word: str, repeats: int,
              image_format: str, resolution: int, if_exists: str,
              caption_template: str = "{trigger}, {class_word}", unique_id: str | None = None) -> dict[str, Any]:
        spec = dataset.DatasetSpec(name=dataset_name, trigger=trigger, class_word=class_word.strip(),
                                   repeats=repeats, caption_template=caption_template, image_format=image_format,
                                   resolution=resolution, if_exists=if_exists)
        root = dataset.datasets_root(_comfy.output_root())
        with Workspace.from_handle(frames) as ws:
            written = dataset.write_kohya_dataset(ws, frames, spec, root, _comfy.ComfyProgress(unique_id))
        summary = {"path": str(written.path), "images": written.image_count, "subset": written.subset_dir.name,
                   "dataset_toml": str(written.toml_path)}
        text = json.dumps(summary, indent=1)
        return {"ui": {"text": [text]}, "result": (written, str(written.toml_path), text)}


NODE_CLASS_MAPPINGS = {"LF_WriteKohyaDataset": WriteKohyaDataset}
NODE_DISPLAY_NAME_MAPPINGS = {"LF_WriteKohyaDataset": "LF Write Kohya Dataset"}
