"""One tuning trial = one real launcher run (kohya/training.train_lora) plus evaluations.

The trial's settings become a launcher request: rank, alpha (as a ratio of rank), learning rate,
steps and network variant go through the preset overrides the training node uses; repeats and
caption dropout go into a per-trial copy of the dataset TOML (image folders made absolute, the
images themselves untouched). Intermediate LoRAs (``save_every_n_steps``) are evaluated as the run
goes and reported to the pruner: a pruned trial stops its trainer through the launcher's own cancel
path (the exception from ``on_event``). A checkpoint is evaluated once the trainer has moved on
to the next step, so the file is complete when we read it. The trainer keeps running meanwhile.

Reports are made at *progress*, not at training steps: checkpoint k of n is reported at
``round(100 * k / (n + 1))`` percent, the final LoRA at 100, so trials of 500 and of 4000 steps
are compared at the same points and the median pruner can act (at training steps no two trials
ever met). Every judged LoRA of a trial (its checkpoints and the final one) is a candidate: the
trial's value is the best of them, and its ``lora_path`` the file that scored it.

A study killed with -9 leaves its trainer running (the trainer has its own session, so cancel
can stop its whole group). ``stop_leftover_trainers`` finds every process whose environment names
a run folder of this study (the launcher marks trainers so) and stops its group; a trial function runs it before its first trainer,
so a resumed study never has two trainers at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tomli_w

from ..fileio import atomic_write_text
from ..kohya.dataset_read import read_dataset_toml
from ..kohya.launcher import TrainingFailed, stop_process_group
from ..kohya.log_parse import CheckpointEvent, StepEvent
from ..kohya.operator_config import TrainerInstall
from ..kohya.train_config import RUN_DIR_ENV, PreflightError, TrainRequest
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


def dataset_identity(source: Path) -> dict[str, Any]:
    """The dataset as the trainer sees it: the TOML's settings and every file of its image folders
    (name, size, modification time), so an edited caption or a swapped image makes another study."""
    data = read_dataset_toml(source, None)  # image folders made absolute; only names, sizes and times are read
    files = []
    for subset in (s for d in data.get("datasets", []) for s in d.get("subsets", [])):
        folder = Path(subset.get("image_dir", source.parent))  # absolute: read_dataset_toml made it so
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if path.is_file():
                stat = path.stat()
                files.append([str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns])
    return {"toml": data, "files": files}


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


def progress_point(index: int, checkpoints: int) -> int:
    """Percent of the trial's steps at checkpoint ``index`` (1-based) of ``checkpoints``."""
    return round(100 * index / (checkpoints + 1))


@dataclass
class Judged:
    """One judged LoRA of a trial."""

    path: Path
    step: int
    progress: int
    value: float
    report: dict[str, Any]


class _Checkpoints:
    """on_event for the launcher: remembers the step, judges an intermediate LoRA once the trainer
    has moved past the step that saved it, and reports it at its progress point (which may prune)."""

    def __init__(self, name: str, checkpoints: int, evaluate_lora: EvaluateLora, weights: Mapping[str, float],
                 reporter: Reporter):
        self.name, self.checkpoints, self.evaluate_lora = name, checkpoints, evaluate_lora
        self.weights, self.reporter = weights, reporter
        self.step = 0
        self.pending: tuple[Path, int] | None = None
        self.judged: list[Judged] = []
        self.stopped = False  # once the pruner (or a cancel) stopped the trial, later events are the trainer's last lines

    def __call__(self, event: Any) -> None:
        if self.stopped:
            return
        if isinstance(event, StepEvent):
            if self.pending is not None and event.done > self.pending[1]:
                try:
                    self.flush()
                except BaseException:
                    self.stopped = True
                    raise
            self.step = event.done
        elif isinstance(event, CheckpointEvent) and Path(event.path).stem.startswith(self.name + "-"):
            self.pending = (Path(event.path), self.step)

    def flush(self) -> None:
        """Judge the pending checkpoint (also after the run, when no step followed it)."""
        if self.pending is None or len(self.judged) >= self.checkpoints:
            self.pending = None
            return
        path, step = self.pending
        self.pending = None
        point = progress_point(len(self.judged) + 1, self.checkpoints)
        self.judge(path, step, point)

    def judge(self, path: Path, step: int, point: int, prune: bool = True) -> Judged:
        report = self.evaluate_lora(path, f"{self.name}-step{step}")
        judged = Judged(path, step, point, objective(report, self.weights), report)
        self.judged.append(judged)
        self.reporter.trial.set_user_attr("judged", [_row(j) for j in self.judged])
        self.reporter.report(point, judged.value, prune=prune)
        return judged


def _row(judged: Judged) -> dict[str, Any]:
    """What the study keeps of a judged LoRA: where, when, and each criterion's verdict and score."""
    return {"progress": judged.progress, "step": judged.step, "path": str(judged.path), "value": round(judged.value, 5),
            "criteria": {k: [judged.report[k]["verdict"], judged.report[k]["score"]]
                         for k in ("fidelity", "ease", "generalisation") if k in judged.report}}


def leftover_trainers(study_dir: Path, proc: Path = Path("/proc")) -> list[int]:
    """Process groups of live processes whose environment marks them as a trainer of this study
    (``RUN_DIR_ENV`` under its run folder; children inherit it, so a trainer's helper process
    whose leader already died is found too). Linux (/proc); elsewhere nothing is found."""
    runs = (str((study_dir / "runs").resolve()) + os.sep).encode()
    marker = RUN_DIR_ENV.encode() + b"="
    groups: set[int] = set()
    for entry in proc.iterdir() if proc.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            if any(v.startswith(marker) and (v[len(marker):] + os.sep.encode()).startswith(runs) for v in environ):
                groups.add(os.getpgid(int(entry.name)))
        except (OSError, ProcessLookupError):
            continue
    return sorted(groups - {os.getpgrp()})


def stop_leftover_trainers(study_dir: Path) -> list[int]:
    """Stop every trainer a killed run of this study left behind; returns their group ids."""
    groups = leftover_trainers(study_dir)
    for group in groups:
        stop_process_group(group)
    return groups


def launcher_trial(setup: TrainingSetup, evaluate_lora: EvaluateLora, weights: Mapping[str, float],
                   progress: Progress | None = None,
                   should_stop: Callable[[], bool] | None = None) -> TrialFunction:
    """A trial function for ``tune.run_study`` that trains with the real launcher (after stopping
    any trainer a killed run of this study left behind)."""
    stopped = stop_leftover_trainers(setup.study_dir)

    def run(params: dict[str, Any], reporter: Reporter) -> TrialOutcome:
        if stopped:
            reporter.trial.set_user_attr("stopped_leftover_trainers", stopped)
            stopped.clear()
        request = trial_request(setup, params, reporter.number)
        watcher = _Checkpoints(request.output_name, setup.checkpoints, evaluate_lora, weights, reporter)
        try:
            outcome = train_lora(request, setup.install, setup.study_dir / "runs", setup.study_dir / "loras",
                                 progress=progress, on_event=watcher, should_stop=should_stop)
        except (TrainingFailed, PreflightError, ModelMissingError) as exc:
            raise TrialFailed(f"trial {reporter.number} ({params}): {exc}") from exc
        result = outcome.result
        if result is None or result.status != "success" or result.lora_path is None:
            cause = result.cancel_cause if result is not None else None
            raise cause if cause is not None else RuntimeError(f"trial {reporter.number} made no LoRA")
        watcher.flush()
        watcher.judge(result.lora_path, result.steps_done, 100, prune=False)
        best = max(watcher.judged, key=lambda j: j.value)
        reporter.trial.set_user_attr("best_progress", best.progress)
        return TrialOutcome(best.value, best.path, best.report)

    return run
