"""The time-left estimate the training nodes show comes from the run's own measured steps."""

from __future__ import annotations

from lora_foundry.progress import StepClock, format_duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_estimate_follows_the_measured_pace_and_ignores_the_warm_up():
    clock = FakeClock()
    steps = StepClock(total=10, clock=clock)
    clock.now += 30  # loading and the first step's warm-up
    assert steps.tick(1) == (None, None)  # one step timed: no pace yet
    clock.now += 2
    assert steps.tick(2) == (0.5, 16.0)
    clock.now += 4  # the machine got busier: the pace is the mean since the first step
    rate, left = steps.tick(3)
    assert rate == 2 / 6 and left == 21.0
    clock.now += 3
    assert steps.tick(10) == (1.0, 0.0)


def test_a_resumed_or_restarted_run_starts_a_new_measurement():
    clock = FakeClock()
    steps = StepClock(total=100, clock=clock)
    steps.tick(50)
    clock.now += 5
    steps.tick(51)
    clock.now += 60
    assert steps.tick(1) == (None, None)  # a new run began at step 1


def test_durations_read_as_people_plan():
    assert format_duration(42.4) == "42 s"
    assert format_duration(200) == "3 min 20 s"
    assert format_duration(3900) == "1 h 05 min"
