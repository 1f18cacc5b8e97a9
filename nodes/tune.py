"""LF Tune Training (Optuna): trials of the kohya launcher, each judged by the evaluation.

The study is stored in the workspace (``tuning/<output name>/study.sqlite3``): re-queuing the same
graph after a cancel, a crash or a kill resumes it (stopping any trainer the killed run left), and
raising ``n_trials`` adds trials to it; the same name with another dataset, base model, search space,
weights or matrix is refused (its scores would not compare).
Optuna is the ``tune`` extra; without it the node stops with the install command.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..lora_foundry.evaluate import evaluation, matrix, metrics, tune, tune_report
from ..lora_foundry.evaluate.fingerprint import fingerprint
from ..lora_foundry.evaluate.tune_launcher import TrainingSetup, dataset_identity, launcher_trial
from ..lora_foundry.kohya import presets, train_config
from ..lora_foundry.kohya.launcher import read_lora_metadata
from ..lora_foundry.kohya.operator_config import load_trainer_install
from ..lora_foundry.models.registry import model_identity
from ..lora_foundry.paths import confined, safe_name
from ..lora_foundry.progress import CallbackProgress
from ..lora_foundry.workspace import Workspace
from ..lora_foundry.workspace.workspace import workspace_path
from . import _comfy, _comfy_sampling
from ._declare import boolean, choice, integer, mappings, node, number, text
from ._tensors import images_to_tensor
from .evaluate import (
    JUDGE_INPUTS,
    OTHER_CHECKPOINT_INPUTS,
    RENDER_INPUTS,
    lora_identity,
    make_embedder,
    other_checkpoints,
    other_renderers,
    settings_of,
    training_paths,
    trigger_of,
)
from .training import BASE_FOLDERS, base_models, dataset_state, interrupted, loras_dir, resolve_dataset

LAUNCHER_TYPES = {"character": "character", "style": "style", "background": "concept", "pose": "concept"}


def _weights(fidelity: float, generalisation: float, ease: float) -> dict[str, float]:
    return {"fidelity": fidelity, "generalisation": generalisation, "ease": ease}


def publish(study: Any, output_name: str, study_dir: Path) -> Path:
    """The best LoRA as models/loras/lora_foundry/<name>_best.safetensors; only this study's own
    earlier best is replaced, never another file."""
    destination = confined(loras_dir(), f"{safe_name(output_name, 'output name')}_best.safetensors")
    ours = False
    if destination.exists():
        earlier = read_lora_metadata(destination).get(tune_report.TUNE_METADATA_KEY, "{}")
        ours = json.loads(earlier).get("study") == study.study_name
    return tune_report.publish_best(study, destination, replace_existing=ours, within=study_dir)[0]


@dataclass(frozen=True)
class TrialJudge:
    """How a study judges each LoRA its trials make (``evaluate_lora`` of ``launcher_trial``): LF
    Evaluate LoRA's criteria, renderers and LoRA identity (``evaluate.lora_identity``), so a LoRA file
    the evaluate node judged in the same workspace reuses its cells, and the other way round."""

    ws: Workspace
    models: tuple[Any, Any, Any]  # MODEL, CLIP, VAE
    settings: matrix.RenderSettings
    model_id: str
    embedder: Any
    train: Any
    trigger: str
    preset: matrix.MatrixPreset
    captions: tuple[str, ...]
    others: tuple[tuple[str, Any, Any, str], ...]

    def __call__(self, path: Path, label: str) -> dict[str, Any]:
        parts = [_comfy_sampling.LoraPart(path)]
        lora_id = lora_identity(parts)
        model, clip, vae = self.models
        renderer = _comfy_sampling.ComfyRenderer(model, clip, vae, parts, self.settings, self.model_id, lora_id)
        return evaluation.evaluate(self.ws, renderer, self.embedder, self.train, trigger_of(self.trigger, parts),
                                   self.preset, progress=CallbackProgress(lambda *_: _comfy.check_interrupt()),
                                   name=safe_name(label, "trial name"), captions=self.captions,
                                   others=other_renderers(self.others, vae, parts, self.settings, lora_id)).report


@node("LF_TuneTraining", "LF Tune Training (Optuna)", category="training", function="tune", output_node=True,
      outputs=[("STRING", "lora_name"), ("STRING", "report"), ("IMAGE", "history"), ("IMAGE", "importances")],
      inputs={
          **RENDER_INPUTS,
          "architecture": choice(presets.ARCHITECTURES, "Model family of the base model (picks the sd-scripts "
                                 "script).", "sd15"),
          "base_model": choice(base_models, "The same base model as a file, for sd-scripts to train on."),
          "output_name": text("Study and LoRA name (plain name); trials are <name>_tNNN, the best is "
                              "models/loras/lora_foundry/<name>_best.safetensors.", "tuned_lora"),
          "n_trials": integer("Finished trials the study should hold (raise it to continue a study).", 8, 1, 500),
          "checkpoints": integer("Intermediate evaluations per trial (the pruner's input); 0 = none.", 2, 0, 10),
          "weight_fidelity": number("Weight of fidelity in the objective.", 0.4, 0.0, 1.0, 0.05),
          "weight_generalisation": number("Weight of generalisation in the objective.", 0.4, 0.0, 1.0, 0.05),
          "weight_ease": number("Weight of ease of invocation in the objective.", 0.2, 0.0, 1.0, 0.05),
          "seed": integer("Sampler seed of the study (and the training seed).", 42, 0, 2**31 - 1),
      },
      optional={
          **JUDGE_INPUTS,
          "search_space_json": text("JSON narrowing the search, e.g. {\"steps\": [500, 1500], "
                                    "\"network_variant\": \"lora\"}.", "", True),
          "dry_run": boolean("Check the inputs and the search space without training.", False),
          **OTHER_CHECKPOINT_INPUTS,
      })
class TuneTraining:
    """Searches training settings (rank, alpha, learning rate, steps, repeats, caption dropout, network
    variant; bounded per LoRA type) with Optuna (TPE sampler, median pruner on evaluations at the same
    share of each trial's steps). Each trial is a real kohya run; its checkpoints and final LoRA are
    judged by LF Evaluate LoRA's criteria and the best is kept. A LoRA failing a criterion ranks below
    every LoRA passing all three; the weights rank LoRAs that pass the same criteria. The study lives in
    the workspace and resumes after a cancel, crash or kill (a trainer left running is stopped first);
    the best LoRA is published with its settings in its metadata. Needs `pip install
    'lora-foundry[tune]'`."""

    @classmethod
    def IS_CHANGED(cls, dataset_path: str = "", **_: Any) -> str:
        return dataset_state(dataset_path)

    def tune(self, model: Any, clip: Any, vae: Any, lora_type: str, trigger: str, workspace: str, width: int,
             height: int, steps: int, cfg: float, sampler_name: str, scheduler: str, architecture: str,
             base_model: str, output_name: str, n_trials: int, checkpoints: int, weight_fidelity: float,
             weight_generalisation: float, weight_ease: float, seed: int, negative: str = "",
             matrix_json: str = "", dataset: Any = None, dataset_path: str = "", frames: Any = None,
             clip_model: Any = None, clip_vision: Any = None, model_2: Any = None, clip_2: Any = None,
             model_3: Any = None, clip_3: Any = None, search_space_json: str = "", dry_run: bool = False,
             unique_id: str | None = None) -> dict[str, Any]:
        tune.require_optuna()
        preset = matrix.load_preset(lora_type, matrix_json)
        space = tune.search_space(lora_type, search_space_json)
        weights = _weights(weight_fidelity, weight_generalisation, weight_ease)
        metrics.objective(dict.fromkeys(weights, {"score": 0.0}), weights)  # refuses all-zero weights up front
        embedder = make_embedder(clip_model, clip_vision)
        dataset_dir, dataset_toml = resolve_dataset(dataset, dataset_path)
        base_dirs = [d for folder in BASE_FOLDERS for d in _comfy.model_folder_paths(folder)]
        request = train_config.TrainRequest(
            architecture=architecture, dataset_dir=dataset_dir, dataset_toml=dataset_toml,
            base_model=train_config.resolve_model_file(base_model, base_dirs, "base model"),
            output_name=safe_name(output_name, "output name"),
            preset=presets.get_preset(architecture, LAUNCHER_TYPES[lora_type]), seed=seed,
            data_roots=_comfy.read_roots())
        if dry_run:
            return {"ui": {"text": [f"dry run: search space {space}"]},
                    "result": ("", json.dumps({"space": space}, default=str), *self._blank())}
        paths = training_paths(dataset, dataset_path, frames)
        train = evaluation.embed_training_set(embedder, paths)
        settings = settings_of(width, height, steps, cfg, sampler_name, scheduler, negative)
        model_id = fingerprint(model, clip, vae)
        others = other_checkpoints([(model_2, clip_2), (model_3, clip_3)], vae, clip)
        identity = tune.study_identity(
            dataset=dataset_identity(dataset_toml), base_model=model_identity(request.base_model),
            architecture=architecture, lora_type=lora_type, search_space=space, weights=weights,
            matrix=asdict(preset), render=asdict(settings), model=model_id, trigger=trigger, seed=seed,
            checkpoints=checkpoints, others=[fp for *_, fp in others])
        progress = _comfy.ComfyProgress(unique_id)
        captions = evaluation.training_captions(paths)  # read once, not per judged LoRA
        with Workspace.open(workspace_path(_comfy.output_root(), workspace)) as ws:
            judge = TrialJudge(ws, (model, clip, vae), settings, model_id, embedder, train, trigger, preset,
                               tuple(captions), tuple(others))
            setup = TrainingSetup(request, load_trainer_install(_comfy.user_root()),
                                  confined(ws.root, "tuning", request.output_name), checkpoints)
            study = tune.open_study(setup.study_dir, request.output_name, seed=seed, identity=identity)
            notes = [note] if (note := tune.note_cell_keys(study)) else []
            trial_fn = launcher_trial(setup, judge, weights, should_stop=interrupted)
            tune.run_study(study, space, trial_fn, n_trials, progress)
            best = publish(study, request.output_name, setup.study_dir)
            report = {"best": tune_report.tune_metadata(study, tune_report.best_trial(study)),
                      "trials": tune.trials_table(study), "study": _comfy.shown_paths(str(setup.study_dir)), "notes": notes}
            history, importances = tune_report.history_plot(study), tune_report.importance_plot(study)
        lora_name = f"{best.parent.name}/{best.name}"
        return {"ui": {"text": [f"best: {lora_name} ({report['best']})", *notes]},
                "result": (lora_name, json.dumps(report, indent=1, default=str), images_to_tensor([history]),
                           images_to_tensor([importances]))}

    @staticmethod
    def _blank() -> tuple[Any, Any]:
        import numpy as np

        blank = np.zeros((64, 64, 3), np.uint8)
        return images_to_tensor([blank]), images_to_tensor([blank])


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = mappings(TuneTraining)
