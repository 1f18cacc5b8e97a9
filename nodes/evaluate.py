"""Judge a LoRA (LF Evaluate LoRA) and tune its training with Optuna (LF Tune Training (Optuna)).

Both render through ComfyUI's own sampler (``_comfy_sampling``) into a workspace's cell store, so
re-running with one more strength, or evaluating the next trial of a study against the same base
images, renders only what is new. The engine side is ``lora_foundry/evaluate``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..lora_foundry.evaluate import evaluation, matrix, metrics
from ..lora_foundry.evaluate.fingerprint import fingerprint
from ..lora_foundry.lora.files import resolve_lora
from ..lora_foundry.lora.metadata import read_lora_info
from ..lora_foundry.media.images import list_image_files
from ..lora_foundry.models.clip_model import ClipEmbedder
from ..lora_foundry.models.registry import model_identity
from ..lora_foundry.paths import safe_name
from ..lora_foundry.workspace import Workspace
from ..lora_foundry.workspace.workspace import workspace_path
from . import _comfy, _comfy_sampling
from ._declare import choice, integer, mappings, node, number, socket, text
from ._tensors import images_to_tensor
from .training import dataset_state, resolve_dataset

NONE = "(none)"
EXTRA_CHECKPOINTS = (2, 3)
EVAL_OUTPUTS = [("STRING", "report_json"), ("IMAGE", "contact_sheet"), ("IMAGE", "plot"), ("FLOAT", "score")]


def _sampler_names() -> list[str]:
    return _comfy_sampling.samplers()[0]


def _scheduler_names() -> list[str]:
    return _comfy_sampling.samplers()[1]


def _lora_choices() -> list[str]:
    return [NONE, *_comfy.list_models("loras")]


# The inputs every rendering node shares: base model, size, sampler, where cells are kept.
RENDER_INPUTS = {
    "model": socket("MODEL", "The base model the LoRA is judged on (from Load Checkpoint)."),
    "clip": socket("CLIP", "The base model's text encoder."),
    "vae": socket("VAE", "The base model's VAE (decodes every rendered cell)."),
    "lora_type": choice(matrix.preset_names, "Which matrix preset: held-out contexts, strengths, seeds and the "
                        "default weights of the three criteria (see lora_foundry/evaluate/presets.json).",
                        "character"),
    "trigger": text("The LoRA's trigger word; empty = read from the LoRA's metadata."),
    "workspace": text("Workspace (plain name) where rendered cells are cached, so a re-run renders only new "
                      "cells.", "lora_eval"),
    "width": integer("Width of every rendered cell.", 512, 64, 4096, 8),
    "height": integer("Height of every rendered cell.", 512, 64, 4096, 8),
    "steps": integer("Sampling steps per cell.", 20, 1, 200),
    "cfg": number("Classifier-free guidance.", 7.0, 0.0, 30.0, 0.1),
    "sampler_name": choice(_sampler_names, "ComfyUI sampler.", "euler"),
    "scheduler": choice(_scheduler_names, "ComfyUI scheduler.", "normal"),
}
# What the judging nodes read besides the render: the training set and a CLIP to compare with.
JUDGE_INPUTS = {
    "negative": text("Negative prompt for every cell.", "", True),
    "matrix_json": text("JSON overriding preset fields, e.g. {\"strengths\": [0, 0.5, 0.8, 1], \"seeds\": "
                        "[1, 2, 3], \"held_out\": [\"in a kitchen\"]}.", "", True),
    "dataset": socket("LF_DATASET", "The training set as a written dataset (fidelity is measured against it)."),
    "dataset_path": text("Or: a dataset folder name under <output>/lora_foundry/datasets/."),
    "frames": socket("LF_FRAMES", "Or: the training images as a frames selection."),
    "clip_model": socket("LF_CLIP_MODEL", "Our CLIP (LF CLIP Loader): image and text towers."),
    "clip_vision": socket("CLIP_VISION", "Or ComfyUI's CLIP_VISION: images only, so no text alignment."),
}
# Trained on a base model, tested on others: sockets after every other input (saved widget values
# are stored by position, so nothing before them moves).
OTHER_CHECKPOINT_INPUTS = {
    f"{kind}_{n}": socket(kind.upper(), f"Another checkpoint's {kind.upper()} ({what}) to test the LoRA on "
                          f"(pair {n}). The criteria are reported per checkpoint; each takes its worst verdict over "
                          "all of them.")
    for n in EXTRA_CHECKPOINTS for kind, what in (("model", "from another Load Checkpoint"),
                                                  ("clip", "its text encoder; empty = the base CLIP"))}


def other_checkpoints(pairs: Sequence[tuple[Any, Any]], vae: Any, base_clip: Any) -> list[tuple[str, Any, Any, str]]:
    """Each connected extra MODEL with its CLIP (else the base one) and its fingerprint, by pair name:
    fingerprinted once, however many LoRAs are judged on it."""
    found = []
    for n, (model, clip) in zip(EXTRA_CHECKPOINTS, pairs, strict=True):
        clip = clip if clip is not None else base_clip
        if model is not None:
            found.append((f"checkpoint_{n}", model, clip, fingerprint(model, clip, vae)))
    return found


def other_renderers(others: Sequence[tuple[str, Any, Any, str]], vae: Any, parts: Any,
                    settings: matrix.RenderSettings, lora_id: str) -> dict[str, Any]:
    """A renderer per extra checkpoint of ``other_checkpoints``, keyed by pair name."""
    return {name: _comfy_sampling.ComfyRenderer(model, clip, vae, parts, settings, identity, lora_id)
            for name, model, clip, identity in others}


def training_paths(dataset: Any, dataset_path: str, frames: Any) -> list[Path]:
    """The training images, from whichever of the three inputs is connected."""
    if frames is not None:
        with Workspace.from_handle(frames) as ws:
            return [item.path for item in ws.items(frames)]
    if dataset is None and not dataset_path.strip():
        raise ValueError("connect the training set: a dataset, a dataset_path or frames")
    folder, _ = resolve_dataset(dataset, dataset_path)
    return list_image_files(folder, recursive=True)


def make_embedder(clip_model: Any, clip_vision: Any) -> Any:
    if clip_model is not None:
        return ClipEmbedder(clip_model)
    if clip_vision is not None:
        from .clusters import ClipVisionEmbedder

        return ClipVisionEmbedder(clip_vision)
    raise ValueError("connect a CLIP model (LF CLIP Loader) or ComfyUI's CLIP_VISION: the criteria are measured "
                     "on image embeddings")


def lora_parts(lora: str, lora_stack: Any, lora_name: str) -> list[_comfy_sampling.LoraPart]:
    """The LoRA(s) under test: a linked name, else the picked file, else a LORA_STACK's rows."""
    dirs = _comfy.model_folder_paths("loras")
    name = (lora_name or "").strip() or (lora if lora != NONE else "")
    if name:
        return [_comfy_sampling.LoraPart(resolve_lora(name, dirs))]
    if lora_stack:
        return [_comfy_sampling.LoraPart(resolve_lora(row[0], dirs), float(row[1]), float(row[2]))
                for row in lora_stack if row[0] and row[0] != "None"]
    raise ValueError("pick a LoRA, link a lora_name, or connect a LORA_STACK to evaluate")


def lora_identity(parts: Sequence[_comfy_sampling.LoraPart]) -> str:
    return json.dumps([[model_identity(p.path), p.strength_model, p.strength_clip] for p in parts])


def trigger_of(trigger: str, parts: Sequence[_comfy_sampling.LoraPart]) -> str:
    if trigger.strip():
        return trigger.strip()
    found = [t for p in parts for t in read_lora_info(p.path).triggers]
    return ", ".join(dict.fromkeys(found))


def settings_of(width: int, height: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
                negative: str) -> matrix.RenderSettings:
    return matrix.RenderSettings(width, height, steps, cfg, sampler_name, scheduler, negative)


def outputs(result: evaluation.Evaluation) -> dict[str, Any]:
    summary = metrics.summary(result.report)
    return {"ui": {"text": [summary]},
            "result": (json.dumps(result.report, indent=1), images_to_tensor([result.sheet]),
                       images_to_tensor([result.plot]), float(result.report["overall"]["score"]))}


@node("LF_EvaluateLoRA", "LF Evaluate LoRA", category="training", function="evaluate", output_node=True,
      outputs=EVAL_OUTPUTS,
      inputs={**RENDER_INPUTS,
              "lora": choice(_lora_choices, "The LoRA to judge (or link lora_name, or connect a LORA_STACK).", NONE)},
      optional={
          "lora_name": socket("STRING", "A LoRA name from a link (e.g. LF Kohya Train LoRA's lora_name).",
                              forceInput=True),
          "lora_stack": socket("LORA_STACK", "Judge a whole stack instead (each row at its own strengths, all "
                               "scaled by the matrix strength)."),
          **JUDGE_INPUTS, **OTHER_CHECKPOINT_INPUTS})
class EvaluateLoRA:
    """Judges a LoRA on fidelity (CLIP similarity to the training set vs the base model), ease of
    invocation (works at strength 1 with a short prompt) and generalisation (in held-out contexts the
    subject appears and the context stays; no leak without the trigger), with a verdict per criterion
    (over-fit / under-fit / balanced) on the base and any extra checkpoint. Renders a fixed-seed prompt
    matrix through ComfyUI's sampler; cells are cached in a workspace."""

    @classmethod
    def IS_CHANGED(cls, lora: str = NONE, lora_name: str = "", dataset_path: str = "", **_: Any) -> str:
        """The LoRA file's identity and the training set's files: a LoRA retrained under the same name,
        or a changed training set, is judged again."""
        try:
            judged = lora_identity(lora_parts(lora, None, lora_name if isinstance(lora_name, str) else ""))
        except (ValueError, OSError):
            judged = f"{lora}|{lora_name}"
        return f"{judged}|{dataset_state(dataset_path)}"

    def evaluate(self, model: Any, clip: Any, vae: Any, lora_type: str, trigger: str, workspace: str, width: int,
                 height: int, steps: int, cfg: float, sampler_name: str, scheduler: str, lora: str = NONE,
                 lora_name: str = "", lora_stack: Any = None, negative: str = "", matrix_json: str = "",
                 dataset: Any = None, dataset_path: str = "", frames: Any = None, clip_model: Any = None,
                 clip_vision: Any = None, model_2: Any = None, clip_2: Any = None, model_3: Any = None,
                 clip_3: Any = None, unique_id: str | None = None) -> dict[str, Any]:
        preset = matrix.load_preset(lora_type, matrix_json)
        parts = lora_parts(lora, lora_stack, lora_name)
        embedder = make_embedder(clip_model, clip_vision)
        paths = training_paths(dataset, dataset_path, frames)
        train = evaluation.embed_training_set(embedder, paths)
        settings = settings_of(width, height, steps, cfg, sampler_name, scheduler, negative)
        lora_id = lora_identity(parts)
        renderer = _comfy_sampling.ComfyRenderer(model, clip, vae, parts, settings, fingerprint(model, clip, vae),
                                                 lora_id)
        others = other_renderers(other_checkpoints([(model_2, clip_2), (model_3, clip_3)], vae, clip), vae, parts,
                                 settings, lora_id)
        name = safe_name(parts[0].path.stem, "report name")
        with Workspace.open(workspace_path(_comfy.output_root(), workspace)) as ws:
            result = evaluation.evaluate(ws, renderer, embedder, train, trigger_of(trigger, parts), preset,
                                         progress=_comfy.ComfyProgress(unique_id), name=name,
                                         captions=evaluation.training_captions(paths), others=others)
        return outputs(result)


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(EvaluateLoRA)
