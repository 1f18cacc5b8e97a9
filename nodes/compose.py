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
from ..lora_foundry.lora.compose import ComposeCaches, summarize
from ..lora_foundry.lora.files import FileCache, file_key, resolve_lora
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

CATEGORY = f"{_comfy.CATEGORY}/compose"
ROWS = 6
DEFAULT_ROW_TYPES = ("character", "background", "pose", "expression", "style", "lighting")
STACK_INPUT = ("LORA_STACK", {"tooltip": "A LoRA stack: list of (lora_name, model_strength, clip_strength) "
                              "as Efficiency, Comfyroll and LoRA-Manager stacks give it."})


def _comfy_load(path: Path) -> dict[str, Any]:
    import comfy.utils

    return comfy.utils.load_torch_file(str(path), safe_load=True)


CACHES = ComposeCaches(tensors=FileCache(_comfy_load, 8, 2 * 1024**3))


def lora_dirs() -> list[Path]:
    return _comfy.model_folder_paths("loras")


def lora_choices() -> list[str]:
    return [NONE_NAME] + _comfy.list_models("loras")


def _strength(tooltip: str, default: float) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": default, "min": -10.0, "max": 10.0, "step": 0.05, "tooltip": tooltip})


class LoRAStack:
    DESCRIPTION = ("Up to 6 typed LoRAs (character, background, pose, expression, style, lighting) as a "
                   "LORA_STACK, with their trigger words and warnings about LoRAs that fight over the body, "
                   "face or palette. Choosing a type fills its recommended strength; a strength of -1 means "
                   "'recommended for the type'. Chain stacks through lora_stack.")
    CATEGORY = CATEGORY
    FUNCTION = "stack"
    RETURN_TYPES = ("LORA_STACK", "STRING", "STRING")
    RETURN_NAMES = ("lora_stack", "triggers", "warnings")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        loras = lora_choices()
        required: dict[str, Any] = {}
        for i, default_type in enumerate(DEFAULT_ROW_TYPES[:ROWS], 1):
            rec = LORA_TYPES[default_type].recommended
            required[f"lora_{i}"] = (loras, {"tooltip": f"Row {i}: a LoRA from models/loras, or None."})
            required[f"type_{i}"] = (list(TYPE_NAMES), {"default": default_type, "tooltip": (
                "What this LoRA controls; choosing a type fills its recommended strength (" + ", ".join(
                    f"{t.name} {t.recommended:g}" for t in LORA_TYPES.values()) + ").")})
            required[f"model_strength_{i}"] = _strength("Strength on the diffusion model; -1 = recommended "
                                                        "for the type.", rec)
            required[f"clip_strength_{i}"] = _strength("Strength on the text encoder; -1 = recommended "
                                                       "for the type.", rec)
            required[f"enabled_{i}"] = ("BOOLEAN", {"default": True, "tooltip": f"Row {i} on or off."})
        return {"required": required, "optional": {"lora_stack": STACK_INPUT}}

    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> str:
        names = [kwargs.get(f"lora_{i}") for i in range(1, ROWS + 1)]
        return json.dumps([_file_signature(n) for n in names if n and n != NONE_NAME])

    def stack(self, lora_stack: Any = None, **rows: Any) -> tuple[list, str, str]:
        parsed = [StackRow(rows[f"lora_{i}"], rows[f"type_{i}"], rows[f"model_strength_{i}"],
                           rows[f"clip_strength_{i}"], rows[f"enabled_{i}"]) for i in range(1, ROWS + 1)]
        summary = summarize(chain(lora_stack, parsed), lora_dirs(), CACHES)
        return summary.stack, summary.trigger_text(), summary.warning_text()


def _file_signature(name: str) -> str:
    try:
        return "%s:%d:%d" % file_key(resolve_lora(name, lora_dirs()))
    except OSError:
        return name


def _lora_key_maps(model: Any, clip: Any) -> dict[str, Any]:
    import comfy.lora

    key_map: dict[str, Any] = {}
    if model is not None:
        key_map = comfy.lora.model_lora_keys_unet(model.model, key_map)
    if clip is not None:
        key_map = comfy.lora.model_lora_keys_clip(clip.cond_stage_model, key_map)
    return key_map


def _model_hint(model: Any) -> str:
    config = getattr(getattr(model, "model", None), "model_config", None)
    return type(config).__name__ if config is not None else ""


class ApplyLoRAStack:
    DESCRIPTION = ("Applies a LORA_STACK to MODEL and CLIP through ComfyUI's own LoRA loader, and reports, "
                   "per LoRA, how many of its modules matched the model. A LoRA that matches nothing (an "
                   "SDXL LoRA on SD1.5) stops with an error instead of silently doing nothing; a partial "
                   "match is a warning in the report. Files are read once and cached.")
    CATEGORY = CATEGORY
    FUNCTION = "apply"
    RETURN_TYPES = ("MODEL", "CLIP", "STRING")
    RETURN_NAMES = ("model", "clip", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"model": ("MODEL", {"tooltip": "The diffusion model to patch."}),
                             "lora_stack": STACK_INPUT},
                "optional": {"clip": ("CLIP", {"tooltip": "The text encoder to patch (leave empty for "
                                               "model-only LoRA application)."})}}

    def apply(self, model: Any, lora_stack: Any, clip: Any = None) -> tuple[Any, Any, str]:
        import comfy.lora
        import comfy.lora_convert
        import comfy.sd

        stack = normalize_stack(lora_stack)
        key_map = _lora_key_maps(model, clip)
        lines: list[str] = []
        for entry in stack:
            _comfy.check_interrupt()
            if entry.model_strength == 0 and entry.clip_strength == 0:
                lines.append(f"{entry.lora_name}: skipped (both strengths are 0)")
                continue
            path = resolve_lora(entry.lora_name, lora_dirs())
            state = CACHES.tensors.get(path)
            converted = comfy.lora_convert.convert_lora(state)
            to_load = {m: key_map[m] for m in lora_modules(converted.keys()) if m in key_map}
            patches = comfy.lora.load_lora(converted, to_load, log_missing=False)
            report = match_modules(entry.lora_name, converted.keys(), key_map, set(patches),
                                   clip is not None, CACHES.infos.get(path).base_model)
            raise_if_unmatched(report, _model_hint(model))
            model, clip = comfy.sd.load_lora_for_models(model, clip, state, entry.model_strength,
                                                        entry.clip_strength)
            lines.append(report.line(entry.model_strength, entry.clip_strength))
        return model, clip, "\n".join(lines) if lines else "empty stack: nothing applied"


class LoRAPreset:
    DESCRIPTION = ("Loads a named LoRA stack saved with Save LoRA Preset (JSON in ComfyUI's user folder, "
                   "lora_foundry/presets/), so an API caller picks a whole stack with one field.")
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = ("LORA_STACK", "STRING", "STRING")
    RETURN_NAMES = ("lora_stack", "triggers", "warnings")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        names = presets.list_presets(_comfy.user_root()) or ["(no presets saved yet)"]
        return {"required": {"preset": (names, {"tooltip": "Preset name (a file in "
                                                "<user>/lora_foundry/presets/)."})},
                "optional": {"lora_stack": STACK_INPUT}}

    @classmethod
    def IS_CHANGED(cls, preset: str, **_: Any) -> str:
        try:
            return "%s:%d:%d" % file_key(presets.preset_path(_comfy.user_root(), preset))
        except (OSError, ValueError):
            return preset

    def load(self, preset: str, lora_stack: Any = None) -> tuple[list, str, str]:
        loaded = presets.load_preset(_comfy.user_root(), preset)
        summary = summarize(chain(lora_stack, loaded.rows), lora_dirs(), CACHES)
        return summary.stack, summary.trigger_text(), summary.warning_text()


class SaveLoRAPreset:
    DESCRIPTION = "Saves a LoRA stack (with each LoRA's type) as a named preset for LoRA Preset."
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "lora_stack": STACK_INPUT,
            "name": ("STRING", {"default": "my_stack", "tooltip": "Preset name: a plain name, no slashes."}),
            "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace a preset with the same name."}),
            "description": ("STRING", {"default": "", "tooltip": "What the preset is for (optional)."}),
        }}

    def save(self, lora_stack: Any, name: str, overwrite: bool, description: str) -> dict[str, Any]:
        stack = summarize(normalize_stack(lora_stack), lora_dirs(), CACHES).stack
        preset = presets.Preset(name, presets.rows_from_stack(stack), description)
        path = presets.save_preset(_comfy.user_root(), preset, overwrite=overwrite)
        return {"ui": {"text": [str(path)]}, "result": (str(path),)}


class ComposePrompt:
    DESCRIPTION = ("Joins the stack's trigger words and your scene into one prompt, and warns about "
                   "contradictions (two actions, expressions, views or framings) and chunks over 75 CLIP tokens.")
    CATEGORY = CATEGORY
    FUNCTION = "compose"
    RETURN_TYPES = ("STRING", "STRING", "STRING")
    RETURN_NAMES = ("prompt", "warnings", "tokens")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"scene": ("STRING", {"multiline": True, "default": "standing in a park, smiling",
                                                  "tooltip": "The scene: everything but the trigger words."})},
                "optional": {"lora_stack": (STACK_INPUT[0], {"tooltip": "Read trigger words from these "
                                                             "LoRAs' metadata."}),
                             "triggers": ("STRING", {"default": "", "tooltip": "Extra trigger words, "
                                                     "comma separated (e.g. the LoRA Stack's triggers)."})}}

    def compose(self, scene: str, lora_stack: Any = None, triggers: str = "") -> tuple[str, str, str]:
        words = [t.strip() for t in triggers.split(",") if t.strip()]
        if lora_stack:
            words += summarize(normalize_stack(lora_stack), lora_dirs(), CACHES).triggers
        composed = prompt.compose_prompt(words, scene, CACHES.tokens)
        warnings = "\n".join(f"- {w}" for w in composed.warnings) or "no warnings"
        return composed.text, warnings, composed.tokens.summary()


class LoRAWeightSweep:
    DESCRIPTION = ("Makes a list of stacks from one: weight ranges per row (one line each, e.g. "
                   "'pose: 0.5:0.9:0.2' or '1: 0.6, 0.8, 1.0') or an on/off ablation. Downstream nodes run "
                   "once per stack; feed the images and labels to Composition Grid.")
    CATEGORY = CATEGORY
    FUNCTION = "sweep"
    RETURN_TYPES = ("LORA_STACK", "STRING", "STRING")
    RETURN_NAMES = ("lora_stacks", "labels", "axes")
    OUTPUT_IS_LIST = (True, True, False)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "lora_stack": STACK_INPUT,
            "mode": (["weights", "ablation"], {"tooltip": "weights: the product of the ranges below; "
                                               "ablation: all on, then each LoRA off in turn."}),
            "spec": ("STRING", {"multiline": True, "default": "1: 0.6:1.0:0.2", "tooltip": (
                "One line per swept row: 'row: start:stop:step' or 'row: a, b, c'; row = 1-based index, "
                "file name or type.")}),
            "max_stacks": ("INT", {"default": 16, "min": 1, "max": 256, "tooltip": "Refuse sweeps "
                               "that would make more stacks than this."}),
            "sweep_clip": ("BOOLEAN", {"default": True, "tooltip": "Sweep the clip strength with the "
                                       "model strength (off: keep the row's clip strength)."}),
        }}

    def sweep(self, lora_stack: Any, mode: str, spec: str, max_stacks: int,
              sweep_clip: bool) -> tuple[list, list, str]:
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


class MergeLoRAStack:
    DESCRIPTION = ("Merges a stack into one kohya-format LoRA in models/loras/lora_foundry/: exactly (ranks "
                   "concatenated) or re-factored by SVD to a target rank, with the error reported. Metadata "
                   "names the parts and their strengths. Apply the result at strength 1.0.")
    CATEGORY = CATEGORY
    FUNCTION = "merge"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING")
    RETURN_NAMES = ("lora_name", "report")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {
            "lora_stack": STACK_INPUT,
            "name": ("STRING", {"default": "merged_stack", "tooltip": "File name (plain name, no slashes)."}),
            "mode": (list(merge.MERGE_MODES), {"tooltip": "concat: exact, rank = sum of ranks; svd: "
                                               "re-factor to 'rank' (smaller, approximate)."}),
            "rank": ("INT", {"default": 32, "min": 1, "max": 1024, "tooltip": "Target rank for svd."}),
            "dtype": (list(merge.SAVE_DTYPES), {"tooltip": "Precision of the saved weights."}),
            "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace a file with the same name."}),
        }}

    def merge(self, lora_stack: Any, name: str, mode: str, rank: int, dtype: str,
              overwrite: bool) -> dict[str, Any]:
        stack = normalize_stack(lora_stack)
        dirs = lora_dirs() or [_comfy.output_root() / "loras"]
        paths = [resolve_lora(e.lora_name, dirs) for e in stack]
        parts = [merge.MergePart(e.lora_name, str(p), e.model_strength, e.clip_strength)
                 for e, p in zip(stack, paths, strict=True)]
        state, report = merge.merge_stack(parts, mode, rank, _comfy.ComfyProgress())
        meta = merge.merged_metadata(report, [CACHES.infos.get(p) for p in paths], name)
        out = merge.save_lora(state, meta, Path(dirs[0]) / "lora_foundry", name, dtype, overwrite)
        relative = f"lora_foundry/{out.name}"
        text = f"{report.summary()}\nsaved {out}\nparts: " + "; ".join(describe_entry(e) for e in stack)
        return {"ui": {"text": [text]}, "result": (relative, text)}


class LoRAInfo:
    DESCRIPTION = ("Shows what a LoRA file says about itself: base model, rank, alpha, trigger words and "
                   "tag frequencies (read from the header only).")
    CATEGORY = CATEGORY
    FUNCTION = "info"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "STRING", "STRING")
    RETURN_NAMES = ("info", "triggers", "base_model")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"lora": (_comfy.list_models("loras"), {"tooltip": "A LoRA from models/loras."})}}

    @classmethod
    def IS_CHANGED(cls, lora: str) -> str:
        return _file_signature(lora)

    def info(self, lora: str) -> dict[str, Any]:
        info = CACHES.infos.get(resolve_lora(lora, lora_dirs()))
        text = format_info(info, lora)
        return {"ui": {"text": [text]}, "result": (text, ", ".join(info.triggers), info.base_model)}


NODE_CLASS_MAPPINGS = {
    "LF_LoRAStack": LoRAStack, "LF_ApplyLoRAStack": ApplyLoRAStack, "LF_LoRAPreset": LoRAPreset,
    "LF_SaveLoRAPreset": SaveLoRAPreset, "LF_ComposePrompt": ComposePrompt,
    "LF_LoRAWeightSweep": LoRAWeightSweep,
    "LF_MergeLoRAStack": MergeLoRAStack, "LF_LoRAInfo": LoRAInfo,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LF_LoRAStack": "LF LoRA Stack", "LF_ApplyLoRAStack": "LF Apply LoRA Stack",
    "LF_LoRAPreset": "LF LoRA Preset", "LF_SaveLoRAPreset": "LF Save LoRA Preset",
    "LF_ComposePrompt": "LF Compose Prompt", "LF_LoRAWeightSweep": "LF LoRA Weight Sweep",
    "LF_MergeLoRAStack": "LF Merge LoRA Stack",
    "LF_LoRAInfo": "LF LoRA Info",
}
