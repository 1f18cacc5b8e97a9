"""One call from request to LoRA: plan (preflight + TOMLs), launch, verify, publish.

Kept apart from ``launcher`` (process handling) and ``train_config`` (what to run) so the node and
the CLI share one sequence, and a dry run is the same sequence stopped before launch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from ..progress import Progress
from .launcher import TrainResult, kept_checkpoints, run_training
from .operator_config import TrainerInstall
from .publish import publish_lora
from .train_config import RunPlan, TrainRequest, plan_run

TRAINING_DIR = ("lora_foundry", "training")
LORAS_SUBDIR = "lora_foundry"
REPORT_NAME = "report.txt"


@dataclass(frozen=True)
class TrainOutcome:
    """The plan that was written and, unless it was a dry run, the run's result."""

    plan: RunPlan
    result: TrainResult | None

    @property
    def dry_run(self) -> bool:
        return self.result is None


def train_lora(
    request: TrainRequest,
    install: TrainerInstall,
    run_root: Path,
    loras_dir: Path,
    dry_run: bool = False,
    progress: Progress | None = None,
    on_event: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Plan the run (always), then unless ``dry_run`` launch it and publish the LoRA on success.

    A cancelled run publishes nothing (its checkpoints stay in the run folder); a failed run
    raises ``TrainingFailed`` from the launcher.
    """
    plan = plan_run(request, install, run_root, loras_dir, dry_run=dry_run)
    report = plan.run_dir / REPORT_NAME
    if dry_run:
        atomic_write_text(report, describe(TrainOutcome(plan, None)) + "\n")
        return TrainOutcome(plan, None)
    try:
        result = run_training(plan.spec, progress=progress, on_event=on_event, should_stop=should_stop)
        if result.status == "success" and result.lora_path is not None:
            result.lora_path = publish_lora(result.lora_path, plan.final_lora, replace_existing=request.resume)
    except BaseException as exc:  # a failure (or an abort) still leaves its report beside the log
        atomic_write_text(report, describe(TrainOutcome(plan, None), failure=failure_reason(exc)) + "\n")
        raise
    outcome = TrainOutcome(plan, result)
    atomic_write_text(report, describe(outcome) + "\n")  # kept for a cancelled run too
    return outcome


def failure_reason(exc: BaseException) -> str:
    """One line for a run that raised: TrainingFailed's reason, an abort, or the exception."""
    if isinstance(exc, KeyboardInterrupt):
        return "aborted (Ctrl-C): the trainer was stopped"
    return getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"


def describe(outcome: TrainOutcome, failure: str = "") -> str:
    """A short human report: what ran, how it ended, where things are (a cancelled run's
    checkpoints and the sample images included, so the user can pick them up); ``failure`` is
    the reason of a run that raised."""
    plan, result = outcome.plan, outcome.result
    lines = [f"command: {plan.command_txt.read_text(encoding='utf-8').strip()}",
             f"config: {plan.config_toml}", f"dataset: {plan.dataset_toml} ({plan.image_count} images)"]
    lines += [f"WARNING: {warning}" for warning in plan.warnings]
    if result is None:
        lines.insert(0, f"failed: {failure}" if failure else "dry run: nothing was launched")
        kept = kept_checkpoints(plan.spec) if failure else []
        lines += [f"checkpoints on disk ({len(kept)}): " + ", ".join(map(str, kept))] if kept else []
        lines += [f"log: {plan.spec.log_path}", f"report: {plan.run_dir / REPORT_NAME}"] if failure else []
        return "\n".join(lines)
    speed = f"{result.steps_per_s:.3f} steps/s" if result.steps_per_s else "speed unknown"
    head = f"{result.status}: {result.steps_done}/{result.total_steps} steps in {result.elapsed_s:.1f} s ({speed})"
    lines.insert(0, head)
    if result.lora_path:
        lines.append(f"LoRA: {result.lora_path}")
    if result.last_checkpoint:
        lines.append(f"last checkpoint: {result.last_checkpoint}")
    if result.status == "cancelled":
        lines.append(_kept_checkpoints(result, int(plan.config.get("training", {}).get("save_every_n_steps", 0))))
    if result.samples:
        lines.append(f"sample images ({len(result.samples)}): " + ", ".join(str(p) for p in result.samples))
    if result.loss_curve:
        lines.append(f"final avr_loss: {result.loss_curve[-1][1]:.4f} (step {result.loss_curve[-1][0]})")
    lines += [f"log: {result.log_path}", f"loss curve: {result.loss_path}.csv / .json",
              f"report: {plan.run_dir / REPORT_NAME}"]
    return "\n".join(lines)


def _kept_checkpoints(result: TrainResult, save_every: int) -> str:
    if not result.checkpoints and save_every:
        return f"no checkpoint was saved before the cancel (the first was due at step {save_every})"
    if not result.checkpoints:
        return "no checkpoint was saved before the cancel (set save_every_n_steps to keep intermediate LoRAs)"
    return f"kept checkpoints ({len(result.checkpoints)}): " + ", ".join(str(p) for p in result.checkpoints)
