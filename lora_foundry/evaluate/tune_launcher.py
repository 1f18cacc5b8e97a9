"""One tuning trial = one real launcher run (kohya/training.train_lora) plus evaluations.

The trial's settings become a launcher request: rank, alpha (as a ratio of rank), learning rate,
steps and network variant go through the preset overrides the training node uses; repeats and
caption dropout go into a per-trial copy of the dataset TOML (image folders made absolute, the
images themselves untouched). Intermediate LoRAs (``save_every_n_steps``) are evaluated as the run
goes and reported to the pruner: a pruned trial stops its trainer through the launcher's own cancel
path (the exception from ``on_event``). A checkpoint is evaluated once the trainer has moved on
to the next step, so the file is complete when we read it. The trainer keeps running meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomli_w

from ..fileio import atomic_write_text
from ..kohya.dataset_read import read_dataset_toml
from ..kohya.launcher import TrainingFailed
from ..kohya.log_parse import CheckpointEvent, StepEvent
from ..kohya.operator_config import TrainerInstall
from ..kohya.train_config import PreflightError, TrainRequest
from ..kohya.training import train_lora
from ..models.registry import ModelMissingError
from ..paths import confined
from ..progress import Progress
from ..read_roots import ReadRoots
from .metrics import objective
from .tune import Reporter, TrialFailed, TrialFunction, TrialOutcome

EvaluateLora = Callable[[Path, str], dict[str, Any]]  # (LoRA file, label) -> evaluation report


@dataclass(frozen=True)
class TrainingSetup:
    """What every trial shares: the request the settings are applied to, the trainer install,
    where runs go, and how many intermediate evaluations a trial gets (0 = none, no pruning)."""

    request: TrainRequest
    install: TrainerInstall
    study_dir: Path
    checkpoints: int = 2


def trial_dataset_toml(source: Path, destination: Path, repeats: int | None, caption_dropout: float | None,
                       roots: ReadRoots | None = None) -> Path:
    """A copy of the dataset TOML with absolute image folders (checked inside ``roots``), the
    training subsets' repeats scaled so the largest is ``repeats`` (balance between subsets kept),
    and caption dropout set."""
    data = read_dataset_toml(source, roots)
    subsets = [s for d in data.get("datasets", []) for s in d.get("subsets", [])]
    training = [s for s in subsets if not s.get("is_reg")]
    largest = max([int(s.get("num_repeats", 1)) for s in training] or [1])
    for subset in subsets:
        if repeats and not subset.get("is_reg"):
            subset["num_repeats"] = max(1, round(int(subset.get("num_repeats", 1)) * repeats / largest))
        if caption_dropout is not None and not subset.get("is_reg"):
            subset["caption_dropout_rate"] = round(float(caption_dropout), 4)
    atomic_write_text(destination, tomli_w.dumps(data))
    return destination


def trial_request(setup: TrainingSetup, params: Mapping[str, Any], number: int) -> TrainRequest:
    base = setup.request
    rank = int(params.get("rank", base.preset.network_dim))
    steps = int(params.get("steps", base.preset.max_train_steps))
    preset = base.preset.with_overrides(
        network_dim=rank, network_alpha=round(rank * float(params.get("alpha_ratio", 0.5)), 4),
        learning_rate=float(params.get("learning_rate", base.preset.learning_rate)), max_train_steps=steps)
    name = f"{base.output_name}_t{number:03d}"
    toml = trial_dataset_toml(base.dataset_toml, confined(setup.study_dir, "datasets", f"{name}.toml"),
                              params.get("repeats"), params.get("caption_dropout"), base.data_roots)
    every = steps // (setup.checkpoints + 1) if setup.checkpoints else 0
    return replace(base, dataset_toml=toml, output_name=name, preset=preset,
                   variant=str(params.get("network_variant", base.variant)), save_every_n_steps=every)


class _Checkpoints:
    """on_event for the launcher: remembers the step, evaluates an intermediate LoRA once the
    trainer has moved past the step that saved it, and reports the score (which may prune)."""

    def __init__(self, name: str, evaluate_lora: EvaluateLora, weights: Mapping[str, float], reporter: Reporter):
        self.name, self.evaluate_lora, self.weights, self.reporter = name, evaluate_lora, weights, reporter
        self.step = 0
        self.pending: tuple[Path, int] | None = None

    def __call__(self, event: Any) -> None:
        if isinstance(event, StepEvent):
            if self.pending is not None and event.done > self.pending[1]:
                path, step = self.pending
                self.pending = None
                report = self.evaluate_lora(path, f"{self.name}-step{step}")
                self.reporter.report(step, objective(report, self.weights))
            self.step = event.done
        elif isinstance(event, CheckpointEvent) and Path(event.path).stem.startswith(self.name + "-"):
            self.pending = (Path(event.path), self.step)


def launcher_trial(setup: TrainingSetup, evaluate_lora: EvaluateLora, weights: Mapping[str, float],
                   progress: Progress | None = None,
                   should_stop: Callable[[], bool] | None = None) -> TrialFunction:
    """A trial function for ``tune.run_study`` that trains with the real launcher."""

    def run(params: dict[str, Any], reporter: Reporter) -> TrialOutcome:
        request = trial_request(setup, params, reporter.number)
        watcher = _Checkpoints(request.output_name, evaluate_lora, weights, reporter)
        try:
            outcome = train_lora(request, setup.install, setup.study_dir / "runs", setup.study_dir / "loras",
                                 progress=progress, on_event=watcher, should_stop=should_stop)
        except (TrainingFailed, PreflightError, ModelMissingError) as exc:
            raise TrialFailed(f"trial {reporter.number} ({params}): {exc}") from exc
        result = outcome.result
        if result is None or result.status != "success" or result.lora_path is None:
            cause = result.cancel_cause if result is not None else None
            raise cause if cause is not None else RuntimeError(f"trial {reporter.number} made no LoRA")
        report = evaluate_lora(result.lora_path, request.output_name)
        return TrialOutcome(objective(report, weights), result.lora_path, report)

    return run
