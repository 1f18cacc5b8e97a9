"""The driver's side of a stage's units (``stages/units_stage``), as a user sees it on a resumed run:
the units an earlier run finished are not run again, and the one bar starts where that run got to
and ends full (tracking counts frames over all shots, embedding batches)."""

from __future__ import annotations

from lora_foundry.progress import CallbackProgress
from lora_foundry.scale.local import InlineRunner
from lora_foundry.scale.units import Unit
from lora_foundry.stages.units_stage import run_planned, units_of

NAMES, TOTALS = ("shot:a", "shot:b", "shot:c", "shot:d"), (3, 5, 2, 4)


class EarlierRun:
    """A stage run whose first two units an earlier, cancelled run recorded."""

    def is_done(self, name: str) -> bool:
        return name in NAMES[:2]


def test_a_resumed_run_runs_only_what_is_left_and_its_bar_starts_at_the_work_done():
    ran, seen = [], []

    def work(number: int, send, kept) -> None:
        ran.append(number)
        for done in range(1, TOTALS[number] + 1):
            send(("progress", done, TOTALS[number]))

    planned = units_of(EarlierRun(), NAMES, TOTALS, lambda number: Unit(NAMES[number], work, number))
    run_planned(InlineRunner(), planned, CallbackProgress(lambda done, total: seen.append((done, total))))
    assert ran == [2, 3], "units an earlier run recorded are not run again"
    assert seen[0] == (3 + 5, 14), "the bar starts at the frames the earlier run did"
    assert seen[-1] == (14, 14) and {total for _, total in seen} == {14}
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
