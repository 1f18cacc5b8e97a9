"""The real-ComfyUI suite's timing table (timings.py), fed history entries as ComfyUI writes them."""

from __future__ import annotations

import json

from timings import WorkflowTimings, server_seconds

# /history/<id> status of a real run (ComfyUI 0.3.64, background_dataset_from_video with stand-ins)
REAL_STATUS = {"status_str": "success", "completed": True, "messages": [
    ["execution_start", {"prompt_id": "5f64", "timestamp": 1796530193615}],
    ["execution_cached", {"nodes": [], "prompt_id": "5f64", "timestamp": 1796530193633}],
    ["execution_success", {"prompt_id": "5f64", "timestamp": 1796530301801}]]}


class FakeClient:
    """Answers /system_stats and wait() the way ComfyClient does, from canned entries."""

    def __init__(self, entries: dict[str, dict]) -> None:
        self.entries = entries

    def get(self, path: str) -> dict:
        assert path == "/system_stats"
        return {"system": {"comfyui_version": "0.3.64"}}

    def wait(self, prompt_id: str, timeout: float) -> dict:
        return self.entries[prompt_id]


def test_server_seconds_read_from_the_execution_messages():
    assert server_seconds({"status": REAL_STATUS}) == 108.2
    assert server_seconds({"status": {"status_str": "success", "messages": []}}) is None


def test_every_run_is_written_as_it_finishes(tmp_path):
    path = tmp_path / "timings.json"
    failed = {"status_str": "error", "messages": [["execution_start", {"timestamp": 1000}],
                                                  ["execution_error", {"timestamp": 3500}]]}
    timings = WorkflowTimings(FakeClient({"a": {"status": REAL_STATUS}, "b": {"status": failed}}),
                              standins=True, path=str(path))
    timings.wait("background_dataset_from_video", "a", timeout=1)
    first = json.loads(path.read_text())
    assert [run["workflow"] for run in first["runs"]] == ["background_dataset_from_video"]
    timings.wait("background_dataset_from_video", "b", timeout=1)
    runs = json.loads(path.read_text())["runs"]
    assert [(r["workflow"], r["server_seconds"], r["status"]) for r in runs] == [
        ("background_dataset_from_video", 108.2, "success"),
        ("background_dataset_from_video (again)", 2.5, "error")]
    table = path.with_suffix(".md").read_text()
    assert "ComfyUI 0.3.64" in table and "| background_dataset_from_video (again) |" in table
    lines = []
    timings.report(print_to=lines.append)
    assert lines == path.with_suffix(".md").read_text().rstrip("\n").splitlines()
