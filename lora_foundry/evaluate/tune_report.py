"""What a study shows and leaves: its plots (history, parameter importances) and the best LoRA,
published with the settings of the trial that made it in its metadata."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write
from ..kohya.publish import refuse_published
from . import plots
from .tune import finished_trials, require_optuna

TUNE_METADATA_KEY = "lora_foundry.tune"


def history_plot(study: Any) -> np.ndarray:
    """Objective per trial (complete ones as a line of dots, the best so far as a line, pruned
    trials at their last intermediate score)."""
    states = require_optuna().trial.TrialState
    done = [t for t in study.get_trials(deepcopy=False) if t.state == states.COMPLETE]
    pruned = [t for t in study.get_trials(deepcopy=False) if t.state == states.PRUNED and t.intermediate_values]
    series: dict[str, tuple[list[float], list[float]]] = {}
    if done:
        values = [float(t.value) for t in done]
        series["best so far"] = ([t.number for t in done], list(np.maximum.accumulate(values)))
        series["objective"] = ([t.number for t in done], values)  # drawn last: dots over the line
    if pruned:
        series["pruned (last report)"] = ([t.number for t in pruned],
                                          [t.intermediate_values[max(t.intermediate_values)] for t in pruned])
    if not series:
        series["no finished trial yet"] = ([0.0], [0.0])
    return plots.line_chart(series, f"optimisation history: {study.study_name}", "trial", "objective",
                            markers_only=("objective", "pruned (last report)"))


def importance_plot(study: Any) -> np.ndarray:
    """Optuna's parameter importances (fANOVA) as bars; needs two complete trials that differ."""
    optuna = require_optuna()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    try:
        importances = optuna.importance.get_param_importances(study) if len(complete) >= 2 else {}
    except (RuntimeError, ValueError):  # all values equal, or a single distinct setting
        importances = {}
    if not importances:
        return plots.bar_chart(["(need 2+ complete trials)"], [0.0], "parameter importances", top=1.0)
    names = list(importances)
    return plots.bar_chart(names, [float(importances[n]) for n in names], "parameter importances (fANOVA)",
                           size=(max(420, 90 * len(names) + 80), 340), top=1.0)


def best_trial(study: Any) -> Any | None:
    states = require_optuna().trial.TrialState
    complete = [t for t in finished_trials(study) if t.state == states.COMPLETE and t.user_attrs.get("lora_path")]
    return max(complete, key=lambda t: t.value) if complete else None


def tune_metadata(study: Any, trial: Any) -> str:
    return json.dumps({"study": study.study_name, "trial": trial.number, "objective": trial.value,
                       "params": trial.params, "scores": trial.user_attrs.get("scores", {})}, sort_keys=True)


def publish_best(study: Any, destination: Path, replace_existing: bool = False,
                 within: Path | None = None) -> tuple[Path, Any]:
    """Copy the best complete trial's LoRA to ``destination`` with ``lora_foundry.tune`` (its
    settings and scores) added to the safetensors metadata; returns (path, trial). The study
    database is on disk where a client may rewrite it, so with ``within`` (the study's folder) a
    trial's ``lora_path`` outside it is refused instead of copied."""
    trial = best_trial(study)
    if trial is None:
        raise RuntimeError(f"study {study.study_name!r} has no complete trial with a LoRA yet")
    if not replace_existing:
        refuse_published(destination)
    source = Path(str(trial.user_attrs["lora_path"]))
    if within is not None and not source.resolve().is_relative_to(Path(within).resolve()):
        raise ValueError(f"study {study.study_name!r}: trial {trial.number}'s user_attrs.lora_path is outside the "
                         "study's folder; the study database was altered, delete it and tune again")
    copy_with_metadata(source, destination, {TUNE_METADATA_KEY: tune_metadata(study, trial)})
    return destination, trial


def copy_with_metadata(source: Path, destination: Path, extra: dict[str, str]) -> Path:
    """A copy of a safetensors file whose ``__metadata__`` also holds ``extra``. Only the JSON
    header is rewritten: the tensor bytes are copied as they are (offsets in the header are
    relative to the end of the header, so they stay valid), whatever their dtype."""
    with open(source, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
        header["__metadata__"] = {**header.get("__metadata__", {}), **extra}
        encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
        encoded += b" " * (-len(encoded) % 8)

        def write(out: Any) -> None:
            out.write(struct.pack("<Q", len(encoded)))
            out.write(encoded)
            while chunk := handle.read(1 << 22):
                out.write(chunk)

        return atomic_write(destination, write)
