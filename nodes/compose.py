"""Composition nodes: stack typed LoRAs, apply them with a per-LoRA match report, trigger words and
prompt checks, presets, weight sweeps with a labelled grid, merge, and file info.

``LORA_STACK`` is the list of ``(lora_name, model_strength, clip_strength)`` tuples Efficiency,
Comfyroll and LoRA-Manager use, so their stacks plug in both ways. ComfyUI is imported lazily inside
the functions that apply or load LoRAs; everything else is the engine in ``lora_foundry/lora``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..lora_foundry.lora import merge, presets, prompt, sweep
from ..lora_foundry.lora.compose import TENSOR_CACHE_BYTES, ComposeCaches, summarize
from ..lora_foundry.lora.files import FileCache, file_key, load_state_dict, resolve_lora, resolve_loras
from ..lora_foundry.lora.metadata import format_info
from ..lora_foundry.lora.report import lora_modules, match_modules, raise_if_unmatched
from ..lora_foundry.lora.stack import (
    LORA_TYPES,
    NONE_NAME,
    TYPE_NAMES,
    StackRow,
    chain,
    describe_entry,
    normalize_stack,
)
from . import _comfy
from ._declare import Input, boolean, choice, integer, mappings, node, number, socket, text

ROWS = 6
DEFAULT_ROW_TYPES = ("character", "background", "pose", "expression", "style", "lighting")
STACK_INPUT = socket("LORA_STACK", "A LoRA stack: list of (lora_name, model_strength, clip_strength) as "
                     "Efficiency, Comfyroll and LoRA-Manager stacks give it.")


CACHES = ComposeCaches()
"""LoRA headers and the token counter (small). LoRA tensors are held by each LF Apply LoRA Stack
node instead (``ApplyLoRAStack.tensors``)."""


def lora_dirs() -> list[Path]:
    return _comfy.model_folder_paths("loras")


def lora_files() -> list[str]:
    return _comfy.list_models("loras")


def lora_choices() -> list[str]:
    return [NONE_NAME] + lora_files()


def preset_choices() -> list[str]:
    return presets.list_presets(_comfy.user_root()) or ["(no presets saved yet)"]


def _strength(tooltip: str, default: float) -> Input:
    return number(tooltip, default, -10.0, 10.0, 0.05)


def _stack_rows() -> dict[str, Input]:
    """Five widgets per row, six rows, in saved order."""
    recommended = ", ".join(f"{t.name} {t.recommended:g}" for t in LORA_TYPES.values())
    rows: dict[str, Input] = {}
    for i, default_type in enumerate(DEFAULT_ROW_TYPES[:ROWS], 1):
        rec = LORA_TYPES[default_type].recommended
        rows.update({
            f"lora_{i}": choice(lora_choices, f"Row {i}: a LoRA from models/loras, or None."),
            f"type_{i}": choice(TYPE_NAMES, "What this LoRA controls; choosing a type fills its recommended "
                                "strength (" + recommended + ").", default_type),
            f"model_strength_{i}": _strength("Strength on the diffusion model; -1 = recommended for the type.", rec),
            f"clip_strength_{i}": _strength("Strength on the text encoder; -1 = recommended for the type.", rec),
            f"enabled_{i}": boolean(f"Row {i} on or off.", True),
        })
    return rows


@node("LF_LoRAStack", "LF LoRA Stack", category="compose", function="stack",
      outputs=[("LORA_STACK", "lora_stack"), ("STRING", "triggers"), ("STRING", "warnings")],
      inputs=_stack_rows(), optional={"lora_stack": STACK_INPUT})
class LoRAStack:
    """Up to 6 typed LoRAs (character, background, pose, expression, style, lighting) as a LORA_STACK,
    with their trigger words and warnings about LoRAs that fight over the body, face or palette.
    Choosing a type fills its recommended strength; a strength of -1 means 'recommended for the type'.
    Chain stacks through lora_stack."""

    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> str:
        names = [kwargs.get(f"lora_{i}") for i in range(1, ROWS + 1)]
        return json.dumps([_file_signature(n) for n in names if n and n != NONE_NAME])

    def stack(self, lora_stack: Any = None, unique_id: str | None = None, **rows: Any) -> tuple[list, str, str]:
        parsed = [StackRow(rows[f"lora_{i}"], rows[f"type_{i}"], rows[f"model_strength_{i}"],
                           rows[f"clip_strength_{i}"], rows[f"enabled_{i}"]) for i in range(1, ROWS + 1)]
        summary = summarize(chain(lora_stack, parsed), lora_dirs(), CACHES)
        return summary.stack, summary.trigger_text(), summary.warning_text()


def _file_signature(name: str) -> str:
    try:
        return "%s:%d:%d" % file_key(resolve_lora(name, lora_dirs()))
    except OSError:
        return name


def _model_hint(model: Any) -> str:
    config = getattr(getattr(model, "model", None), "model_config", None)
    return type(config).__name__ if config is not None else ""


@node("LF_ApplyLoRAStack", "LF Apply LoRA Stack", category="compose", function="apply",
      outputs=[("MODEL", "model"), ("CLIP", "clip"), ("STRING", "report")],
      inputs={"model": socket("MODEL", "The diffusion model to patch."), "lora_stack": STACK_INPUT},
      optional={"clip": socket("CLIP", "The text encoder to patch (leave empty for model-only LoRA "
                               "application).")})
class ApplyLoRAStack:
    """Applies a LORA_STACK to MODEL and CLIP through ComfyUI's own LoRA loader, and reports, per LoRA,
    how many of its modules matched the model. A LoRA that matches nothing (an SDXL LoRA on SD1.5) stops
    with an error instead of silently doing nothing; a partial match is a warning in the report. Files
    are read once and cached."""

    def __init__(self) -> None:
        # On the node, as ComfyUI's own LoraLoader keeps its loaded LoRA: ComfyUI keeps node objects
        # in its executor cache and drops them on "free memory" (``PromptExecutor.reset``), so these
        # tensors go with them; a module global would outlive it. Bounded by count and bytes.
        self.tensors = FileCache(load_state_dict, 8, TENSOR_CACHE_BYTES)

    def apply(self, model: Any, lora_stack: Any, clip: Any = None,
              unique_id: str | None = None) -> tuple[Any, Any, str]:
        stack = normalize_stack(lora_stack)
        key_map = _comfy.lora_key_map(model, clip)
        lines: list[str] = []
        for entry in stack:
            _comfy.check_interrupt()
            if entry.model_strength == 0 and entry.clip_strength == 0:
                lines.append(f"{entry.lora_name}: skipped (both strengths are 0)")
                continue
            path = resolve_lora(entry.lora_name, lora_dirs())
            state = self.tensors.get(path)
            converted = _comfy.convert_lora(state)
            to_load = {m: key_map[m] for m in lora_modules(converted.keys()) if m in key_map}
            patches = _comfy.lora_patches(converted, to_load)
            report = match_modules(entry.lora_name, converted.keys(), key_map, set(patches),
                                   clip is not None, CACHES.infos.get(path).base_model)
            raise_if_unmatched(report, _model_hint(model))
            model, clip = _comfy.load_lora_for_models(model, clip, state, entry.model_strength,
                                                        entry.clip_strength)
            lines.append(report.line(entry.model_strength, entry.clip_strength))
        return model, clip, "\n".join(lines) if lines else "empty stack: nothing applied"


@node("LF_LoRAPreset", "LF LoRA Preset", category="compose", function="load",
      outputs=[("LORA_STACK", "lora_stack"), ("STRING", "triggers"), ("STRING", "warnings")],
      inputs={"preset": choice(preset_choices, "Preset name (a file in <user>/lora_foundry/presets/).")},
      optional={"lora_stack": STACK_INPUT})
class LoRAPreset:
    """Loads a named LoRA stack saved with Save LoRA Preset (JSON in ComfyUI's user folder,
    lora_foundry/presets/), so an API caller picks a whole stack with one field."""

    @classmethod
    def IS_CHANGED(cls, preset: str, **_: Any) -> str:
        try:
            return "%s:%d:%d" % file_key(presets.preset_path(_comfy.user_root(), preset))
        except (OSError, ValueError):
            return preset

    def load(self, preset: str, lora_stack: Any = None, unique_id: str | None = None) -> tuple[list, str, str]:
        loaded = presets.load_preset(_comfy.user_root(), preset)
        summary = summarize(chain(lora_stack, loaded.rows), lora_dirs(), CACHES)
        return summary.stack, summary.trigger_text(), summary.warning_text()


@node("LF_SaveLoRAPreset", "LF Save LoRA Preset", category="compose", function="save", output_node=True,
      outputs=[("STRING", "path")],
      inputs={
          "lora_stack": STACK_INPUT,
          "name": text("Preset name: a plain name, no slashes.", "my_stack"),
          "overwrite": boolean("Replace a preset with the same name.", False),
          "description": text("What the preset is for (optional)."),
      })
class SaveLoRAPreset:
    """Saves a LoRA stack (with each LoRA's type) as a named preset for LoRA Preset."""

    def save(self, lora_stack: Any, name: str, overwrite: bool, description: str,
             unique_id: str | None = None) -> dict[str, Any]:
        stack = summarize(normalize_stack(lora_stack), lora_dirs(), CACHES).stack
        preset = presets.Preset(name, presets.rows_from_stack(stack), description)
        path = presets.save_preset(_comfy.user_root(), preset, overwrite=overwrite)
        return {"ui": {"text": [str(path)]}, "result": (str(path),)}


@node("LF_ComposePrompt", "LF Compose Prompt", category="compose", function="compose",
      outputs=[("STRING", "prompt"), ("STRING", "warnings"), ("STRING", "tokens")],
      inputs={"scene": text("The scene: everything but the trigger words.", "standing in a park, smiling",
                            True)},
      optional={"lora_stack": socket("LORA_STACK", "Read trigger words from these LoRAs' metadata."),
                "triggers": text("Extra trigger words, comma separated (e.g. the LoRA Stack's triggers).")})
class ComposePrompt:
    """Joins the stack's trigger words and your scene into one prompt, and warns about contradictions
    (two actions, expressions, views or framings) and chunks over 75 CLIP tokens."""

    def compose(self, scene: str, lora_stack: Any = None, triggers: str = "",
                unique_id: str | None = None) -> tuple[str, str, str]:
        words = [t.strip() for t in triggers.split(",") if t.strip()]
        if lora_stack:
            words += summarize(normalize_stack(lora_stack), lora_dirs(), CACHES).triggers
        composed = prompt.compose_prompt(words, scene, CACHES.tokens)
        warnings = "\n".join(f"- {w}" for w in composed.warnings) or "no warnings"
        return composed.text, warnings, composed.tokens.summary()


@node("LF_LoRAWeightSweep", "LF LoRA Weight Sweep", category="compose", function="sweep",
      outputs=[("LORA_STACK", "lora_stacks"), ("STRING", "labels"), ("STRING", "axes")],
      inputs={
          "lora_stack": STACK_INPUT,
          "mode": choice(["weights", "ablation"], "weights: the product of the ranges below; ablation: all on, "
                         "then each LoRA off in turn."),
          "spec": text("One line per swept row: 'row: start:stop:step' or 'row: a, b, c'; row = 1-based index, "
                       "file name or type.", "1: 0.6:1.0:0.2", True),
          "max_stacks": integer("Refuse sweeps that would make more stacks than this.", 16, 1, 256),
          "sweep_clip": boolean("Sweep the clip strength with the model strength (off: keep the row's clip "
                                "strength).", True),
      })
class LoRAWeightSweep:
    """Makes a list of stacks from one: weight ranges per row (one line each, e.g. 'pose: 0.5:0.9:0.2'
    or '1: 0.6, 0.8, 1.0') or an on/off ablation. Downstream nodes run once per stack; feed the images
    and labels to Composition Grid."""
    OUTPUT_IS_LIST = (True, True, False)

    def sweep(self, lora_stack: Any, mode: str, spec: str, max_stacks: int, sweep_clip: bool,
              unique_id: str | None = None) -> tuple[list, list, str]:
        stack = summarize(normalize_stack(lora_stack), lora_dirs(), CACHES).stack
        if mode == "ablation":
            variants, axes = sweep.ablation(stack), {}
        else:
            parsed = sweep.parse_spec(spec, stack)
            variants = sweep.weight_sweep(stack, parsed, max_stacks, sweep_clip)
            axes = sweep.grid_axes(parsed)
        if len(variants) > max_stacks:
            raise sweep.SweepError(f"the sweep makes {len(variants)} stacks; max_stacks is {max_stacks}")
        return [list(v.stack) for v in variants], [v.label for v in variants], json.dumps(axes)


@node("LF_MergeLoRAStack", "LF Merge LoRA Stack", category="compose", function="merge", output_node=True,
      outputs=[("STRING", "lora_name"), ("STRING", "report")],
      inputs={
          "lora_stack": STACK_INPUT,
          "name": text("File name (plain name, no slashes).", "merged_stack"),
          "mode": choice(merge.MERGE_MODES, "concat: exact, rank = sum of ranks; svd: re-factor to 'rank' "
                         "(smaller, approximate)."),
          "rank": integer("Target rank for svd.", 32, 1, 1024),
          "dtype": choice(merge.SAVE_DTYPES, "Precision of the saved weights."),
          "overwrite": boolean("Replace a file with the same name.", False),
      })
class MergeLoRAStack:
    """Merges a stack into one kohya-format LoRA in models/loras/lora_foundry/: exactly (ranks
    concatenated) or re-factored by SVD to a target rank, with the error reported. Metadata names the
    parts and their strengths. Apply the result at strength 1.0."""

    def merge(self, lora_stack: Any, name: str, mode: str, rank: int, dtype: str, overwrite: bool,
              unique_id: str | None = None) -> dict[str, Any]:
        stack = normalize_stack(lora_stack)
        dirs = lora_dirs() or [_comfy.output_root() / "loras"]
        paths = resolve_loras([e.lora_name for e in stack], dirs)
        merge.check_same_base([CACHES.infos.get(p) for p in paths])
        parts = [merge.MergePart(e.lora_name, str(p), e.model_strength, e.clip_strength)
                 for e, p in zip(stack, paths, strict=True)]
        state, report = merge.merge_stack(parts, mode, rank, _comfy.ComfyProgress())
        meta = merge.merged_metadata(report, [CACHES.infos.get(p) for p in paths], name)
        out = merge.save_lora(state, meta, Path(dirs[0]) / "lora_foundry", name, dtype, overwrite)
        relative = f"lora_foundry/{out.name}"
        text = f"{report.summary()}\nsaved {out}\nparts: " + "; ".join(describe_entry(e) for e in stack)
        return {"ui": {"text": [text]}, "result": (relative, text)}


@node("LF_LoRAInfo", "LF LoRA Info", category="compose", function="info", output_node=True,
      outputs=[("STRING", "info"), ("STRING", "triggers"), ("STRING", "base_model")],
      inputs={"lora": choice(lora_files, "A LoRA from models/loras.")})
class LoRAInfo:
    """Shows what a LoRA file says about itself: base model, rank, alpha, trigger words and tag
    frequencies (read from the header only)."""

    @classmethod
    def IS_CHANGED(cls, lora: str, **_: Any) -> str:
        return _file_signature(lora)

    def info(self, lora: str, unique_id: str | None = None) -> dict[str, Any]:
        info = CACHES.infos.get(resolve_lora(lora, lora_dirs()))
        text = format_info(info, lora)
        return {"ui": {"text": [text]}, "result": (text, ", ".join(info.triggers), info.base_model)}


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(
    LoRAStack, ApplyLoRAStack, LoRAPreset, SaveLoRAPreset, ComposePrompt, LoRAWeightSweep, MergeLoRAStack, LoRAInfo)
