"""An Optuna study over the launcher's settings, judged by the evaluation, that survives a kill.

Why ask/tell instead of ``study.optimize``: each trial is a training run plus an evaluation that
can be cancelled from ComfyUI, fail on one bad setting, or be pruned half-way; ask/tell lets us
record each of those as what it is. The study lives in an SQLite file (Optuna's RDB storage) in
the workspace, so a study killed with -9 is reopened by name: finished trials stay, the trial that
was running is marked failed and its settings are queued again, and the study goes on until it
has the number of finished (complete or pruned) trials asked for.

``optuna`` is the ``tune`` extra (``pip install 'lora-foundry[tune]'``), imported only here
(inside ``extras.optional_extra``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..choices import one_of
from ..extras import optional_extra
from ..progress import Progress, ensure_progress

logger = logging.getLogger(__name__)

STORAGE_NAME = "study.sqlite3"
MAX_FAILURES_IN_A_ROW = 3
CELL_KEYS = 2
"""How the study's rendered cells name a LoRA (recorded in the study): 2 = LF Evaluate LoRA's
``lora_identity`` (file name, size and time, and strengths); 1 (before 2026-12, not recorded) = the
file's path and time in nanoseconds. Keys of the two never match, so cells are never mixed."""

# Per LoRA type: (kind, low, high, log) for numbers, ("choice", options) for variants. The ranges
# bracket the launcher's presets (kohya/presets.py) by about 4x either way.
SEARCH_SPACES: dict[str, dict[str, tuple[Any, ...]]] = {
    "character": {"rank": ("int", 4, 64, True), "alpha_ratio": ("float", 0.25, 1.0, False),
                  "learning_rate": ("float", 2e-5, 5e-4, True), "steps": ("int", 500, 4000, True),
                  "repeats": ("int", 1, 20, False), "caption_dropout": ("float", 0.0, 0.2, False),
                  "network_variant": ("choice", ("lora", "locon"))},
    "style": {"rank": ("int", 8, 64, True), "alpha_ratio": ("float", 0.25, 1.0, False),
              "learning_rate": ("float", 2e-5, 3e-4, True), "steps": ("int", 1000, 8000, True),
              "repeats": ("int", 1, 10, False), "caption_dropout": ("float", 0.0, 0.3, False),
              "network_variant": ("choice", ("lora", "locon", "loha"))},
}
SEARCH_SPACES["background"] = SEARCH_SPACES["style"]
SEARCH_SPACES["pose"] = SEARCH_SPACES["character"]


def require_optuna() -> Any:
    """The optuna module, or an error that says how to install it."""
    with optional_extra("optuna", "tune", "tuning"):
        import optuna
    return optuna


def search_space(lora_type: str, overrides: str | Mapping[str, Any] | None = None) -> dict[str, tuple[Any, ...]]:
    """The bounds for ``lora_type``; ``overrides`` (JSON) replaces bounds, e.g. {"steps": [200, 800]},
    or fixes a setting with a single value, e.g. {"network_variant": "lora"}."""
    space = dict(SEARCH_SPACES[one_of(lora_type, sorted(SEARCH_SPACES), "tuning LoRA type")])
    extra = json.loads(overrides) if isinstance(overrides, str) and overrides.strip() else overrides or {}
    for name, value in dict(extra).items():
        kind = space[one_of(name, sorted(space), "search_space_json setting")][0]
        if kind == "choice":
            space[name] = ("choice", tuple(value) if isinstance(value, list) else (value,))
        elif isinstance(value, list) and len(value) == 2 and value[0] <= value[1]:
            space[name] = (kind, value[0], value[1], space[name][3])
        elif isinstance(value, int | float):
            space[name] = (kind, value, value, False)
        else:
            raise ValueError(f"search_space_json: {name} needs [low, high] or one number, got {value!r}")
    return space


def distributions(space: Mapping[str, tuple[Any, ...]]) -> dict[str, Any]:
    optuna = require_optuna()
    dists = optuna.distributions
    out: dict[str, Any] = {}
    for name, spec in space.items():
        if spec[0] == "choice":
            out[name] = dists.CategoricalDistribution(list(spec[1]))
        elif spec[0] == "int":
            out[name] = dists.IntDistribution(int(spec[1]), int(spec[2]), log=bool(spec[3]) and spec[1] < spec[2])
        else:
            out[name] = dists.FloatDistribution(float(spec[1]), float(spec[2]), log=bool(spec[3]) and spec[1] < spec[2])
    return out


def study_identity(**parts: Any) -> dict[str, str]:
    """What makes a study's scores comparable (dataset, base model, search space, weights, matrix,
    render settings...), one short hash per part so a mismatch can be named."""
    return {key: hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]
            for key, value in sorted(parts.items())}


def check_identity(study: Any, identity: Mapping[str, str] | None) -> None:
    """Record ``identity`` in a new study; refuse to reopen one made with other settings (their
    scores would be mixed with the new ones under one name)."""
    if not identity:
        return
    known = study.user_attrs.get("identity")
    if known is None:
        study.set_user_attr("identity", dict(identity))
        return
    changed = sorted(k for k in set(known) | set(identity) if known.get(k) != identity.get(k))
    if changed:
        raise ValueError(f"study {study.study_name!r} was made with other settings ({', '.join(changed)} differ); "
                         "its trials would not be comparable: choose another output name, or restore the settings "
                         "to continue it")


def open_study(study_dir: Path, name: str, seed: int = 0, startup_trials: int = 2,
               identity: Mapping[str, str] | None = None) -> Any:
    """Create or reopen the study ``name`` stored in ``study_dir/study.sqlite3`` (TPE, median pruner),
    refuse it when ``identity`` (``study_identity``) differs from the one it was made with, and put
    back in the queue whatever a killed run left running."""
    optuna = require_optuna()
    study_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=f"sqlite:///{study_dir / STORAGE_NAME}", load_if_exists=True, direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0))
    check_identity(study, identity)
    requeue_interrupted(study)
    return study


def note_cell_keys(study: Any) -> str | None:
    """Record ``CELL_KEYS`` in the study; for a study an earlier version made (it has trials and no
    record), say why its LoRAs' cells will not be reused, logged and returned for the report."""
    known = study.user_attrs.get("cell_keys", 1 if study.trials else CELL_KEYS)
    if known == CELL_KEYS:
        if "cell_keys" not in study.user_attrs:
            study.set_user_attr("cell_keys", CELL_KEYS)
        return None
    study.set_user_attr("cell_keys", CELL_KEYS)
    note = (f"study {study.study_name!r} was started by an earlier LoRA Foundry, whose rendered cells named a LoRA "
            "by its path and time; cells now name it as LF Evaluate LoRA does (file name, size, time), so the "
            "earlier cells of a LoRA are not reused: a LoRA judged again renders them once (base-model cells, "
            "at strength 0, are shared as before)")
    logger.warning(note)
    return note


def requeue_interrupted(study: Any) -> list[int]:
    """Mark trials left RUNNING by a killed process as failed and queue their settings again."""
    optuna = require_optuna()
    stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in stale:
        study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
    return [trial.number for trial in stale]


class Reporter:
    """Handed to a trial: ``report(step, score)`` records an intermediate evaluation and raises
    ``optuna.TrialPruned`` when the median pruner says the trial is behind."""

    def __init__(self, trial: Any) -> None:
        self.trial = trial
        self.reports: list[tuple[int, float]] = []

    @property
    def number(self) -> int:
        return int(self.trial.number)

    def report(self, step: int, score: float, prune: bool = True) -> None:
        """Record ``score`` at ``step``; ``prune=False`` for a trial's last word (it finished)."""
        self.reports.append((step, score))
        self.trial.report(score, step)
        if prune and self.trial.should_prune():
            raise require_optuna().TrialPruned(f"trial {self.number} pruned at step {step} (score {score:.4f})")


@dataclass
class TrialOutcome:
    """A finished trial: its score, the LoRA it made and the evaluation behind the score."""

    value: float
    lora_path: Path | None = None
    report: dict[str, Any] = field(default_factory=dict)


TrialFunction = Callable[[dict[str, Any], Reporter], TrialOutcome]


def finished_trials(study: Any) -> list[Any]:
    states = require_optuna().trial.TrialState
    return study.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED))


def run_study(study: Any, space: Mapping[str, tuple[Any, ...]], trial_fn: TrialFunction, n_trials: int,
              progress: Progress | None = None) -> Any:
    """Run trials until the study holds ``n_trials`` finished ones; returns the study.

    A pruned trial counts as finished; a failed one (a setting the trainer refused) does not, and
    three failures in a row stop the study with the last error. A cancel (any exception from
    ``progress`` or the trial that is not a failure of the trial itself) marks the running trial
    failed, queues its settings again and re-raises: the next run starts where this one stopped.
    """
    optuna = require_optuna()
    report = ensure_progress(progress)
    dists = distributions(space)
    failures: list[BaseException] = []
    while (done := len(finished_trials(study))) < n_trials:
        report.update(done, n_trials)
        trial = study.ask(dists)
        reporter = Reporter(trial)
        try:
            outcome = trial_fn(dict(trial.params), reporter)
        except optuna.TrialPruned:
            trial.set_user_attr("pruned_at", list(reporter.reports[-1]) if reporter.reports else None)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        except TrialFailed as exc:
            trial.set_user_attr("error", str(exc)[:2000])
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            failures.append(exc)
            if len(failures) >= MAX_FAILURES_IN_A_ROW:
                raise RuntimeError(f"{len(failures)} trials failed in a row; the last: {exc}") from exc
            continue
        except BaseException:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
            raise
        failures.clear()
        if outcome.lora_path is not None:
            trial.set_user_attr("lora_path", str(outcome.lora_path))
        if outcome.report:
            criteria = [k for k in ("fidelity", "ease", "generalisation") if k in outcome.report]
            trial.set_user_attr("scores", {k: outcome.report[k]["score"] for k in criteria})
            trial.set_user_attr("verdicts", {k: outcome.report[k].get("verdict") for k in criteria})
        study.tell(trial, outcome.value)
    report.update(len(finished_trials(study)), n_trials)
    return study


class TrialFailed(RuntimeError):
    """This trial's settings did not produce a LoRA (the trainer failed); the study goes on."""


def trials_table(study: Any) -> list[dict[str, Any]]:
    """Every trial as a row: number, state, value, settings, intermediate scores (for the report)."""
    return [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "intermediate": {str(k): v for k, v in t.intermediate_values.items()}, "user_attrs": t.user_attrs}
            for t in study.get_trials(deepcopy=False)]
