"""Caption nodes: captions by the binding rule, synthetic prompt sets, and the dataset report.

Thin wrappers: the rules live in ``lora_foundry/captions`` (strategies, vocabulary, core tags,
rendering, token counts) and ``lora_foundry/kohya/report.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lora_foundry import names
from ..lora_foundry.captions.builder import CaptionSettings, split_terms
from ..lora_foundry.captions.core_tags import DEFAULT_THRESHOLD
from ..lora_foundry.captions.prompt_set import SUBJECT_TYPES, build_prompt_set
from ..lora_foundry.captions.render import BASE_MODELS
from ..lora_foundry.captions.stage import caption_info, caption_stage
from ..lora_foundry.captions.strategies import LORA_TYPES, describe_templates
from ..lora_foundry.captions.vocabulary import tag_files
from ..lora_foundry.kohya.report import dataset_report, report_text
from ..lora_foundry.workspace import Workspace
from . import _comfy
from ._changed import files_state
from ._declare import boolean, choice, integer, mappings, node, number, socket, text
from ._preview import show_files

TRIGGER_TOOLTIP = "The trigger word: always the first caption token (kept in place by keep_tokens)."
CLASS_TOOLTIP = "Optional class word after the trigger (woman, man, dog, mug); empty for none."
BASE_MODEL_TOOLTIP = "SD1.5, SDXL, Pony: comma-separated tags. Flux, SD3: one natural-language sentence."


def resolve_tags_folder(text: str) -> Path | None:
    """The imported-tags folder, inside the folders workflows may read (ComfyUI's input and output
    folders, the operator's extra roots): a path typed in a shared workflow must not read text
    files from anywhere on the server. Empty means no folder."""
    if not text.strip():
        return None
    return _comfy.read_roots().resolve(text, "tags_folder", "folder")


@node("LF_BuildCaptions", "LF Build Captions", category="captions", function="build",
      outputs=[("LF_FRAMES", "frames"), ("STRING", "summary")],
      description="Captions by the binding rule: what a caption names stays promptable, what it leaves out binds "
      "to the trigger. Tags come from the frames' 'tags' annotation (tagger stages) plus an optional folder of "
      "WD14/booru .txt tag files (same file names as the images), normalised to one term per concept ('3/4 "
      "view' -> 'three quarter view'). Tags present in at least 'threshold' of a cluster's images are the "
      "subject's core and are dropped, unless the type always captions their category. force_keep beats the "
      "rules; force_drop beats everything.\nTemplates per LoRA type:\n" + describe_templates(),
      inputs={
          "frames": socket("LF_FRAMES", "The frames to caption (their 'tags' and 'cluster' annotations are used)."),
          "lora_type": choice(LORA_TYPES, "What the LoRA learns; decides what captions leave out (see the node "
                              "description).", "character"),
          "trigger": text(TRIGGER_TOOLTIP, "sks"),
          "class_word": text(CLASS_TOOLTIP),
          "base_model": choice(BASE_MODELS, BASE_MODEL_TOOLTIP, "SDXL"),
          "threshold": number("Core-tag share: a tag in at least this share of a cluster's images binds to the "
                              "trigger and is dropped.", DEFAULT_THRESHOLD, 0.05, 1.0, 0.05),
      },
      optional={
          "force_keep": text("Comma-separated tags always captioned (beats category and core rules).", "", True),
          "force_drop": text("Comma-separated tags never captioned (beats everything).", "", True),
          "tags_folder": text("Optional folder (inside ComfyUI's input directory) of WD14/booru .txt tag files "
                              "named like the images."),
          "pony_score_prefix": boolean("Pony only: write 'score_9, score_8_up, score_7_up' after the trigger "
                                       "(kept with keep_tokens).", False),
          "keep_tokens_separator": boolean("Write 'trigger ||| tags' for sd-scripts' keep_tokens_separator; other "
                                           "trainers read '|||' as text, so off by default.", False),
          "token_limit": integer("CLIP tokens before a warning: 75 by default, 150/225 if you train with "
                                 "--max_token_length.", 75, 75, 225, 75),
      })
class BuildCaptions:
    @classmethod
    def IS_CHANGED(cls, tags_folder: str = "", **_: Any) -> str:
        """The tag files the build would read: editing, adding or removing one must re-run the node
        (ComfyUI compares only widget values otherwise)."""
        return files_state(lambda: _tag_files(tags_folder), tags_folder)

    def build(self, frames: Any, lora_type: str, trigger: str, class_word: str, base_model: str,
              threshold: float, force_keep: str = "", force_drop: str = "", tags_folder: str = "",
              pony_score_prefix: bool = False, keep_tokens_separator: bool = False,
              token_limit: int = 75, unique_id: str | None = None) -> tuple[Any, str]:
        settings = CaptionSettings(
            lora_type=lora_type, trigger=trigger.strip(), class_word=class_word.strip(),
            base_model=base_model, threshold=threshold, force_keep=split_terms(force_keep),
            force_drop=split_terms(force_drop), pony_score=pony_score_prefix,
            separator=keep_tokens_separator, token_limit=token_limit)
        folder = resolve_tags_folder(tags_folder)
        with Workspace.from_handle(frames) as ws:
            out = caption_stage(ws, frames, settings, folder, _comfy.ComfyProgress(unique_id))
            summary = _summary(ws, out)
        return (out, summary)


def _tag_files(tags_folder: str) -> list[Path]:
    """The tag files a build would read: the same folder rule and the same listing as the build."""
    folder = resolve_tags_folder(tags_folder)
    return tag_files(folder) if folder is not None else []


def _summary(ws: Workspace, handle: Any) -> str:
    info = caption_info(ws, handle)
    captions = ws.annotations(handle, names.CAPTION)
    lines = [f"{len(captions)} captions; keep_tokens = {info.get(names.INFO_CAPTION_KEEP_TOKENS)}"]
    for cluster, tags in sorted(info.get(names.INFO_CORE_TAGS, {}).items()):
        lines.append(f"core tags (cluster {cluster}): {', '.join(tags) or '-'}")
    if info.get(names.INFO_UNTAGGED):
        lines.append(f"warning: {info[names.INFO_UNTAGGED]} images have no tags (caption = trigger only)")
    lines += [f"warning: {w}" for w in info.get(names.INFO_TOKEN_WARNINGS, [])[:20]]
    lines += [f"warning: tag file {w}" for w in info.get(names.INFO_TAG_FILE_WARNINGS, [])[:20]]
    lines += ["", *[captions[i] for i in sorted(captions)[:10]]]
    return "\n".join(lines)


@node("LF_PromptSet", "LF Prompt Set", category="captions", function="build",
      outputs=[("STRING", "prompts"), ("STRING", "captions"), ("STRING", "preview")],
      inputs={
          "subject_type": choice(SUBJECT_TYPES, "What the anchor describes: a character, style, object, concept "
                                 "(pose/action) or scene.", "character"),
          "anchor": text("The fixed description repeated in every prompt and left out of every caption.",
                         "brown hair, blue eyes, freckles", True),
          "count": integer("How many prompts.", 24, 1, 1000),
          "seed": integer("Same seed, same prompts.", 0, 0, 2**31 - 1),
          "trigger": text(TRIGGER_TOOLTIP, "sks"),
          "class_word": text(CLASS_TOOLTIP, "woman"),
          "base_model": choice(BASE_MODELS, BASE_MODEL_TOOLTIP, "SDXL"),
      },
      optional={
          "prompt_suffix": text("Words appended to every generation prompt only (quality words); never captioned."),
      })
class PromptSet:
    """N training prompts for a synthetic dataset: a fixed appearance anchor (the look, the style, the
    object, the concept, the scene) plus varied angle, expression, outfit, background and light; mostly
    front and three-quarter close-ups, some profiles, upper and full body, a new outfit in most images.
    Each prompt comes with the caption to train on, which leaves the anchor out so it binds to the
    trigger. Same seed, same set. 'prompts' is a list: the sampler downstream runs once per prompt;
    batch the images (RebatchImages) and give them with 'captions' (one line per prompt, same order) to
    LF Images To Frames."""
    OUTPUT_IS_LIST = (True, False, False)

    def build(self, subject_type: str, anchor: str, count: int, seed: int, trigger: str, class_word: str,
              base_model: str, prompt_suffix: str = "", unique_id: str | None = None) -> tuple[list[str], str, str]:
        items = build_prompt_set(subject_type, anchor, count, seed, trigger.strip(), class_word.strip(),
                                 base_model, prompt_suffix)
        preview = "\n".join(f"{i.index:03d} prompt:  {i.prompt}\n    caption: {i.caption}" for i in items[:20])
        return ([i.prompt for i in items], "\n".join(i.caption for i in items), preview)


@node("LF_DatasetReport", "LF Dataset Report", category="captions", function="report", output_node=True,
      outputs=[("STRING", "report")],
      inputs={
          "dataset": socket("LF_DATASET", "A dataset from LF Write Kohya Dataset."),
          "lora_type": choice(["from dataset", *LORA_TYPES], "The LoRA type the ranges and leak checks use; 'from "
                              "dataset' = the writer's setting.", "from dataset"),
          "count_tokens": boolean("Count CLIP tokens per caption (loads open_clip's tokenizer, a few seconds).",
                                  True),
          "token_limit": integer("Warn past this many CLIP tokens (75, or 150/225 with --max_token_length).",
                                 75, 75, 225, 75),
      })
class DatasetReport:
    """Judges a written dataset: images per subset against the recommended range for the LoRA type
    (character 15-50, style 30-200, object 15-40, concept 20-100, scene 20-80), caption length, the most
    frequent tags, and warnings: too few images, identity tags leaking into captions, duplicate
    captions, unbalanced concepts, captions past the CLIP token limit. Saves a contact sheet
    (contact_sheet.jpg in the dataset folder) and previews it. Reads the captions on disk, so hand edits
    count."""

    def report(self, dataset: Any, lora_type: str, count_tokens: bool, token_limit: int,
               unique_id: str | None = None) -> dict[str, Any]:
        chosen = None if lora_type == "from dataset" else lora_type
        result = dataset_report(Path(dataset.path), chosen, count_tokens=count_tokens, token_limit=token_limit)
        text = report_text(result)
        ui: dict[str, Any] = {"text": [text]}
        if result.contact_sheet:
            ui["images"] = show_files([Path(dataset.path) / result.contact_sheet])
        return {"ui": ui, "result": (text,)}


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(BuildCaptions, PromptSet, DatasetReport)
