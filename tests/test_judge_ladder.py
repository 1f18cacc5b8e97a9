"""The judge against planted answers (tests/judge_ladder.py): every case gets the verdict it was
built to get on each criterion, the objective puts the balanced LoRA first, and every threshold
sits between the cases it must separate (that is how the thresholds were set)."""

from __future__ import annotations

import pytest
from judge_ladder import (
    CALIBRATION,
    CASES,
    EXPECTED,
    VERDICTS,
    LadderEmbedder,
    LadderRenderer,
    calibration,
    ladder_preset,
    run_ladder,
    table,
)

from lora_foundry.evaluate import evaluation, matrix, metrics
from lora_foundry.workspace import Workspace


@pytest.fixture(scope="module")
def ladder():
    return run_ladder(matrix, metrics.judge, metrics.objective, ladder_preset(matrix))


@pytest.mark.parametrize("case", CASES)
def test_each_case_gets_its_planted_verdicts(ladder, case):
    report = ladder[case]["report"]
    assert tuple(report[k]["verdict"] for k in VERDICTS) == EXPECTED[case], table(ladder)


def test_objective_puts_balanced_first_and_copying_leaking_do_nothing_below(ladder):
    value = {case: ladder[case]["objective"] for case in CASES}
    assert max(value, key=value.get) == "balanced", table(ladder)
    for worse in ("over_fit", "leaking", "do_nothing", "under_fit", "trigger_dependent", "strength_curve"):
        assert value[worse] < value["balanced"], table(ladder)


def test_a_failing_criterion_cannot_be_bought_back(ladder):
    """The copy has the best fidelity of all, yet ranks below the balanced LoRA; a weighted sum
    of the same scores (the old objective's form) would not keep it there."""
    copy, balanced = ladder["over_fit"]["report"], ladder["balanced"]["report"]
    assert copy["fidelity"]["score"] > balanced["fidelity"]["score"]
    weights = ladder_preset(matrix).weights
    flipped = {k: {**copy[k], "verdict": "balanced"} for k in VERDICTS}  # same scores, gate removed
    assert metrics.objective(flipped, weights) > metrics.objective(copy, weights)
    assert ladder["over_fit"]["objective"] < 3 / 4 <= ladder["balanced"]["objective"]


@pytest.mark.parametrize("name", [row[0] for row in CALIBRATION])
def test_threshold_lies_between_the_cases_it_separates(ladder, name):
    row = calibration(ladder)[name]
    low, high = sorted((row["passing_edge"], row["failing_edge"]))
    used = getattr(metrics, name)
    assert low < used < high and abs(used - row["midpoint"]) < 0.01, (name, row, used)


def test_the_ladder_runs_through_the_evaluation_with_a_workspace(tmp_path):
    """The same planted LoRA through ``evaluation.evaluate`` (cell store, text embeddings wired by
    the evaluation itself) gets the same verdicts."""
    preset = ladder_preset(matrix)
    embedder = LadderEmbedder()
    from judge_ladder import training_images

    train = embedder.images(training_images())
    tags = tuple(matrix.invocation_prompts("ohwx", preset)["full"].split(", ")[2:])
    with Workspace.open(tmp_path / "ws") as ws:
        for case in ("balanced", "leaking"):
            report = evaluation.evaluate(ws, LadderRenderer(case, tags), embedder, train, "ohwx", preset).report
            assert tuple(report[k]["verdict"] for k in VERDICTS) == EXPECTED[case]


def test_other_checkpoints_are_judged_and_a_failure_on_one_counts(tmp_path):
    """Trained on a base model, tested on others: the same LoRA that is balanced on its base but
    leaks on a second checkpoint is over-fit on generalisation overall, and the report keeps the
    criteria per checkpoint."""
    from judge_ladder import training_images

    preset = ladder_preset(matrix)
    embedder = LadderEmbedder()
    train = embedder.images(training_images())
    tags = tuple(matrix.invocation_prompts("ohwx", preset)["full"].split(", ")[2:])
    other = LadderRenderer("leaking", tags)
    other.model_identity = "ladder-world-second-checkpoint"
    with Workspace.open(tmp_path / "ws") as ws:
        alone = evaluation.evaluate(ws, LadderRenderer("balanced", tags), embedder, train, "ohwx", preset).report
        both = evaluation.evaluate(ws, LadderRenderer("balanced", tags), embedder, train, "ohwx", preset,
                                   others={"second": other})
    report = both.report
    assert report["checkpoints"]["base"]["generalisation"]["verdict"] == "balanced"
    assert report["checkpoints"]["second"]["generalisation"]["verdict"] == "over-fit"
    assert report["generalisation"]["verdict"] == "over-fit" and report["generalisation"]["why"].startswith("second:")
    assert report["overall"]["score"] < alone["overall"]["score"]
    assert both.rendered == report["matrix"]["cells"] - len(matrix.build_matrix("ohwx", preset))  # base cells cached
