"""Prints the real-ComfyUI suite's per-workflow times (timings.py) in pytest's terminal summary."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timings import TIMING_LINES  # noqa: E402


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    lines = config.stash.get(TIMING_LINES, [])
    if lines:
        terminalreporter.section("example workflow run times")
        for line in lines:
            terminalreporter.write_line(line)
