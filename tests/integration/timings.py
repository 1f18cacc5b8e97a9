"""Per-workflow run times of the real-ComfyUI suite, measured by the test itself.

Each queued workflow is timed from ``POST /prompt`` to the moment ``/history`` reports it finished
(``seconds``), and by the server's own status messages from ``execution_start`` to
``execution_success``/``execution_error`` (``server_seconds``: the run without the poll interval).
After every run the table is rewritten to ``$LF_TIMINGS`` (JSON, plus a Markdown copy beside it:
a suite stopped half-way keeps what it measured), and at the end it is printed in pytest's terminal
summary, with the load average the run shared the machine with: the numbers in
docs/real_comfyui.md come from there, never from a stopwatch.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from comfy_api import ComfyClient, status_messages

TIMING_LINES = pytest.StashKey[list]()  # lines for the terminal summary (tests/conftest.py prints them)


def server_seconds(entry: dict) -> float | None:
    """execution_start → execution_success/error, from the history entry's timestamps (ms)."""
    start = [m.get("timestamp") for m in status_messages(entry, "execution_start")]
    end = [m.get("timestamp") for kind in ("execution_success", "execution_error", "execution_interrupted")
           for m in status_messages(entry, kind)]
    if not start or not end or start[0] is None or end[0] is None:
        return None
    return round((end[0] - start[0]) / 1000, 1)


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


class WorkflowTimings:
    """The runs of one server, in the order they were queued (a workflow queued twice is listed
    twice, the second time marked ``again``: usually served from ComfyUI's cache)."""

    def __init__(self, client: ComfyClient, standins: bool, path: str | None = None) -> None:
        self.client = client
        self.standins = standins
        self.path = Path(path) if path else None
        self.runs: list[dict] = []
        self.load_samples = [_load_average()]
        self.started = time.monotonic()
        stats = client.get("/system_stats").get("system", {})
        self.comfyui_version = stats.get("comfyui_version", "unknown")

    def wait(self, name: str, prompt_id: str, timeout: float) -> dict:
        """Wait for ``prompt_id`` like ``ComfyClient.wait`` and record how long it took."""
        queued = time.monotonic()
        entry = self.client.wait(prompt_id, timeout=timeout)
        again = any(run["workflow"] == name for run in self.runs)
        self.runs.append({"workflow": name + (" (again)" if again else ""),
                          "seconds": round(time.monotonic() - queued, 1),
                          "server_seconds": server_seconds(entry),
                          "status": entry.get("status", {}).get("status_str")})
        self.load_samples.append(_load_average())
        self.write()
        return entry

    def summary(self) -> dict:
        return {"comfyui_version": self.comfyui_version, "standins": self.standins,
                "total_seconds": round(time.monotonic() - self.started, 1),
                "load_average_1_5_15": self.load_samples, "runs": self.runs}

    def markdown(self) -> str:
        summary = self.summary()
        rows = [f"| {run['workflow']} | {run['seconds']} | {run['server_seconds']} | {run['status']} |"
                for run in self.runs]
        ones = [sample[0] for sample in self.load_samples]
        return "\n".join([
            f"ComfyUI {summary['comfyui_version']}, stand-ins {'on' if self.standins else 'off'}: "
            f"{summary['total_seconds']} s from the server's first answer to the end of the last run; "
            f"1-min load average {min(ones)}-{max(ones)}",
            "", "| workflow | seconds (queue → history) | seconds (server) | status |", "|---|---|---|---|",
            *rows])

    def write(self) -> str:
        """``$LF_TIMINGS`` (JSON) and the same name with ``.md`` (the table), if it was set; the table."""
        table = self.markdown()
        if self.path:
            self.path.write_text(json.dumps(self.summary(), indent=1), encoding="utf-8")
            self.path.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
        return table

    def report(self, print_to) -> None:
        """Write the files once more (the total now includes the last test) and hand the table's
        lines to ``print_to`` (the terminal summary)."""
        for line in self.write().splitlines():
            print_to(line)
