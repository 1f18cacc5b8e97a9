"""General tags inside the pack: the WD14 tagger loader and LF Tag Frames.

The caption builder's binding rule needs general tags (hair, eyes, clothing, objects, setting);
these nodes make them in the graph instead of in another tool. The rules live in
``lora_foundry/stages/tagging/wd14.py`` and ``wd14_stage.py``, the model in
``lora_foundry/models/wd14_model.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..lora_foundry.media.contact_sheet import contact_sheet
from ..lora_foundry.media.images import load_rgb
from ..lora_foundry.models import wd14_model
from ..lora_foundry.models.handle import ModelHandle
from ..lora_foundry.stages.tagging import wd14, wd14_stage
from ..lora_foundry.workspace import Workspace
from . import _comfy
from ._declare import boolean, choice, integer, mappings, node, number, socket, text
from ._models import ModelLoader, model_choices, model_input, onnx_device_input
from ._preview import show_pictures

PREVIEW_ITEMS = 6
PREVIEW_TAGS = 4
PREVIEW_CELL = 256


def _tagger_names() -> list[str]:
    """Tagger files, with forward slashes (a folder per model on every OS)."""
    spec = wd14_model.WD14_SPEC
    _comfy.register_model_folder(spec.folder)
    installed = [n.replace("\\", "/") for n in _comfy.list_models(spec.folder) if n.lower().endswith(spec.formats)]
    return model_choices(spec, installed)


@node("LF_TaggerLoader", "LF Tagger Loader (WD14)", category="understand", function="load",
      outputs=[("LF_TAGGER_MODEL", "tagger")],
      inputs={
          "model_name": model_input(wd14_model.WD14_SPEC, "ONNX tagger in models/wd14, e.g. "
                                    "wd-vit-tagger-v3/model.onnx with its selected_tags.csv in the same folder "
                                    "(Apache-2.0, huggingface.co/SmilingWolf).", _tagger_names),
          "device": onnx_device_input(),
      })
class TaggerLoader(ModelLoader):
    """Load a WD14-style ONNX tagger (SmilingWolf's wd-v1-4 / wd-v3: ViT, SwinV2, ConvNeXt, EVA02, MOAT)
    from models/wd14: a folder per model holding model.onnx and selected_tags.csv, as Hugging Face
    publishes them, or <name>.onnx beside <name>.csv. Input size and layout come from the model; an
    unknown layout is refused. onnxruntime, CPU or CUDA. Never downloads."""
    SPEC = wd14_model.WD14_SPEC
    ONNX = True

    @classmethod
    def identity(cls, path: Path, settings: dict[str, Any]) -> str:
        return wd14_model.model_state(path)

    def open(self, path: Path, device: str, settings: dict[str, Any]) -> ModelHandle:
        return wd14_model.load_wd14(path, device)


@node("LF_TagFrames", "LF Tag Frames (WD14)", category="understand", function="tag", output_node=True,
      outputs=[("LF_FRAMES", "frames"), ("STRING", "report")],
      inputs={
          "frames": socket("LF_FRAMES", "Frames, cut-outs or face crops in a LoRA Foundry workspace."),
          "tagger": socket("LF_TAGGER_MODEL", "From LF Tagger Loader (WD14)."),
          "general_threshold": number("A general tag is kept at or above this score (0.35 is the usual "
                                      "choice; v3 models are calibrated near 0.26-0.27).",
                                      wd14.DEFAULT_GENERAL, 0.0, 1.0, 0.01),
          "general_mcut": boolean("Pick the general threshold per image by Maximum Cut (the largest gap "
                                  "between scores) instead of the fixed value.", False),
          "character_threshold": number("A character tag (a named character) is kept at or above this score.",
                                        wd14.DEFAULT_CHARACTER, 0.0, 1.0, 0.01),
          "character_mcut": boolean("Maximum Cut for character tags too (never below 0.15).", False),
          "rating": choice(wd14.RATING_MODES, "The best rating (general, sensitive, questionable, explicit): "
                           "recorded always; 'as tag' also adds 'rating <name>' to the tags.", "omit"),
          "exclude": text("Tags never written, comma or line separated (any spelling: 'solo, simple_background').",
                          "", True),
          "batch_size": integer("Images per onnxruntime call.", wd14_stage.DEFAULT_BATCH, 1, 64),
      })
class TagFrames:
    """General tags (hair, eyes, clothing, objects, setting) and character tags for every frame, cut-out
    or face crop, with a WD14 tagger (LF Tagger Loader). Batched, resumable, cached. Tags are spelled
    like the caption builder's vocabulary and join the frames' 'tags', so LF Build Captions can drop
    what a cluster always shows (it binds to the trigger) and keep what varies. Shows the top tags of a
    few frames."""

    def tag(self, frames: Any, tagger: Any, general_threshold: float, general_mcut: bool,
            character_threshold: float, character_mcut: bool, rating: str, exclude: str, batch_size: int,
            unique_id: str | None = None) -> dict[str, Any]:
        rules = wd14.TagRules(float(general_threshold), bool(general_mcut), float(character_threshold),
                              bool(character_mcut), rating, wd14.exclusions(exclude))
        with Workspace.from_handle(frames) as ws:
            out = wd14_stage.wd14_stage(ws, frames, tagger, rules, batch_size, _comfy.ComfyProgress(unique_id))
            items = ws.items(out)
            top = wd14_stage.top_tags(ws, out, PREVIEW_TAGS)
            general = wd14_stage.top_tags(ws, out, PREVIEW_TAGS, general_only=True)
        shown = items[:PREVIEW_ITEMS]
        report = _report(tagger, items, top)
        labels = [_label(general.get(item.id, [])) for item in shown]
        sheet = contact_sheet([load_rgb(item.path) for item in shown], columns=3, cell=PREVIEW_CELL,
                              labels=labels) if shown else None
        previews = show_pictures([(f"{out.stage_key[:16]}_wd14", sheet)]) if sheet is not None else []
        return {"ui": {"images": previews, "text": [report]}, "result": (out, report)}


def _label(tags: list[str], width: int = PREVIEW_CELL // 7) -> str:
    """As many of the best general tags as fit under a thumbnail (character tags are in the report)."""
    label = ""
    for tag in tags:
        candidate = f"{label}, {tag}" if label else tag
        if len(candidate) > width:
            break
        label = candidate
    return label or (tags[0] if tags else "(no tag)")


def _report(tagger: Any, items: list[Any], top: dict[int, list[str]]) -> str:
    """How many items got tags, and the top tags of the first few."""
    tagged = sum(1 for item in items if top.get(item.id))
    lines = [f"{tagged} of {len(items)} items tagged by {tagger.name}"]
    for item in items[:PREVIEW_ITEMS]:
        lines.append(f"{item.path.name}: {', '.join(top.get(item.id, [])) or '(no tag above threshold)'}")
    return "\n".join(lines)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(TaggerLoader, TagFrames)
