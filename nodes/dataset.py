"""The kohya dataset writer node, and the node that adds concepts / regularisation subsets."""

from __future__ import annotations

import json
from typing import Any

from ..lora_foundry.captions.strategies import LORA_TYPES
from ..lora_foundry.kohya import dataset
from ..lora_foundry.kohya.report import dataset_report, report_text
from ..lora_foundry.kohya.subsets import MASK_MODES
from ..lora_foundry.workspace import Handle, Workspace
from . import _comfy
from ._declare import boolean, choice, integer, mappings, node, socket, text
from .training import trainer_problem


@node("LF_DatasetSubset", "LF Dataset Subset", category="dataset", function="add",
      outputs=[("LF_SUBSETS", "subsets")],
      inputs={
          "frames": socket("LF_FRAMES", "The images of this concept (or the regularisation images)."),
          "trigger": text("This concept's trigger word; empty = the writer's trigger. Ignored for "
                          "regularisation images."),
          "class_word": text("Class word (woman, dog); names the reg folder too."),
          "repeats": integer("num_repeats; 0 = balance by image count: images x repeats equal to the main "
                             "subset's (reg: 0 means 1).", 0, 0, 1000),
          "is_reg": boolean("Regularisation (class) images: written to reg/ with is_reg.", False),
      },
      optional={"subsets": socket("LF_SUBSETS", "More subsets to chain with this one.")})
class DatasetSubset:
    """Adds another concept (its own trigger and folder) or regularisation (class) images to a dataset:
    connect to the writer's 'subsets' input; chain several. Repeats 0 balances this concept against the
    main one by image count (images x repeats about equal per epoch). Regularisation images go to
    reg/N_class with is_reg = true."""

    def add(self, frames: Handle, trigger: str, class_word: str, repeats: int, is_reg: bool,
            subsets: list[dataset.SubsetSource] | None = None, unique_id: str | None = None
            ) -> tuple[list[dataset.SubsetSource]]:
        source = dataset.SubsetSource(frames, trigger.strip(), class_word.strip(), repeats, is_reg)
        return ([*(subsets or []), source],)


@node("LF_WriteKohyaDataset", "LF Write Kohya Dataset", category="dataset", function="write", output_node=True,
      outputs=[("LF_DATASET", "dataset"), ("STRING", "dataset_toml"), ("STRING", "report")],
      inputs={
          "frames": socket("LF_FRAMES", "The frames to write."),
          "dataset_name": text("Folder name under <output>/lora_foundry/datasets/ (plain name, no slashes).",
                               "my_lora"),
          "trigger": text("Trigger word: first in every caption and in the folder name; what binds to the LoRA.",
                          "mychar"),
          "class_word": text("Optional class word (person, dog, style...) after the trigger."),
          "repeats": integer("kohya num_repeats: how often each image is seen per epoch (the N in N_trigger).",
                             10, 1, 1000),
          "image_format": choice(dataset.IMAGE_FORMATS, "png/webp keep alpha (masked-loss training); jpg is "
                                 "smaller (masks then go to masks/).", "png"),
          "resolution": integer("Training resolution: images are resized to aspect buckets of about this size "
                                "squared.", 512, 64, 4096, 64),
          "if_exists": choice(dataset.IF_EXISTS, "When a dataset of that name exists and came from other frames: "
                              "error (default), new_version (name_v2, ...) or reuse (return the existing one "
                              "untouched).", "error"),
      },
      optional={
          "caption_template": text("Caption for frames without a built caption; {trigger} and {class_word} are "
                                   "filled.", "{trigger}, {class_word}"),
          "lora_type": choice(LORA_TYPES, "What the LoRA learns: sets the recommended image count in the report.",
                              "character"),
          "bucket": boolean("Resize and centre-crop every image to its aspect bucket (OpenCV INTER_AREA).", True),
          "bucket_no_upscale": boolean("Small images keep their own scale (rounded down to 64 px) instead of "
                                       "being enlarged.", True),
          "mask_mode": choice(MASK_MODES, "Masked loss: alpha = keep the alpha channel (alpha_mask = true); "
                              "folder = mask images in masks/ (conditioning_data_dir); none = flatten; auto = "
                              "alpha for png/webp cut-outs, folder for jpg.", "auto"),
          "subsets": socket("LF_SUBSETS", "More concepts or regularisation images (LF Dataset Subset)."),
          "check_trainer": boolean("For a graph that trains on this dataset at once: refuse the queue, before "
                                   "anything is written, when LF Kohya Train LoRA cannot train here (sd-scripts "
                                   "not set up, no base model).", False),
      })
class WriteKohyaDataset:
    """Writes the frames as a kohya dataset under <output>/lora_foundry/datasets/<name>/ in the kohya_ss
    layout: img/N_trigger class/ (one image + one .txt caption per frame), reg/ for regularisation
    images, masks/ for mask images, dataset.toml for sd-scripts (--dataset_config), a JSON record and a
    report with a contact sheet. Images are resized to their aspect bucket. Captions come from LF Build
    Captions when present, else the template. Point OneTrainer / ai-toolkit at a subset folder,
    ComfyUI's LoadImageTextSetFromFolder at img/. An existing dataset is never overwritten."""

    @classmethod
    def VALIDATE_INPUTS(cls, check_trainer: bool = False) -> bool | str:
        """ComfyUI runs every output node that validates, so without this a graph whose trainer is
        refused would still write its dataset (and a 'no trainer' refusal would come after the work)."""
        problem = trainer_problem() if check_trainer else None
        return True if problem is None else f"this dataset is for training, which cannot run: {problem}"

    def write(self, frames: Handle, dataset_name: str, trigger: str, class_word: str, repeats: int,
              image_format: str, resolution: int, if_exists: str,
              caption_template: str = "{trigger}, {class_word}", lora_type: str = "character",
              bucket: bool = True, bucket_no_upscale: bool = True, mask_mode: str = "auto",
              subsets: list[dataset.SubsetSource] | None = None, check_trainer: bool = False,
              unique_id: str | None = None) -> dict[str, Any]:
        spec = dataset.DatasetSpec(name=dataset_name, trigger=trigger, class_word=class_word.strip(),
                                   repeats=repeats, caption_template=caption_template, image_format=image_format,
                                   resolution=resolution, if_exists=if_exists, lora_type=lora_type,
                                   bucket=bucket, bucket_no_upscale=bucket_no_upscale, mask_mode=mask_mode)
        root = dataset.datasets_root(_comfy.output_root())
        with Workspace.from_handle(frames) as ws:
            written = dataset.write_kohya_dataset(ws, frames, spec, root, _comfy.ComfyProgress(unique_id),
                                                  extra=subsets or ())
        report = dataset_report(written.path, lora_type, make_contact_sheet=False)
        summary = {"path": str(written.path), "images": written.image_count, "subset": written.subset_dir.name,
                   "subsets": list(written.subsets), "dataset_toml": str(written.toml_path)}
        # the report reaches every client (history): folders shown as ComfyUI names them, not server paths
        text = _comfy.shown_paths(json.dumps(summary, indent=1) + "\n" + report_text(report))
        return {"ui": {"text": [text]}, "result": (written, str(written.toml_path), text)}


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(WriteKohyaDataset, DatasetSubset)
