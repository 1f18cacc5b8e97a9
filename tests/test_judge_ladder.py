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
