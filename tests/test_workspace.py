"""The workspace keeps work across crashes and cancels, and never mixes up results."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from lora_foundry.paths import UnsafeNameError
from lora_foundry.progress import CallbackProgress, Cancelled
from lora_foundry.workspace import NewItem, Workspace, WorkspaceBusyError, workspace_path


def _source_stage(ws: Workspace, n: int, params: dict | None = None):
    with ws.stage("source", 1, params or {"n": n}) as st:
        if not st.complete:
            for position, unit in st.pending_units([str(i) for i in range(n)]):
                rel = st.write_file(f"{position:04d}.txt", lambda h, p=position: h.write(b"x%d" % p))
                st.emit(unit, position, [NewItem(kind="frame", relpath=rel, width=1, height=1,
                                                 frame_index=position, annotations={"tags": [f"t{position}"]})])
    return st.handle


def test_same_inputs_give_same_handle_and_a_cache_hit(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    first = _source_stage(ws, 3)
    calls = []
    with ws.stage("source", 1, {"n": 3}) as st:
        calls.append(st.complete)
    assert calls == [True]
    assert _source_stage(ws, 3) == first
    assert [item.frame_index for item in ws.items(first)] == [0, 1, 2]


def test_new_parameters_make_a_new_stage_and_keep_the_old_one(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    old = _source_stage(ws, 2)
    new = _source_stage(ws, 4)
    assert old != new
    assert len(ws.items(old)) == 2 and len(ws.items(new)) == 4
    assert all(item.path.is_file() for item in ws.items(old))


def test_cancel_keeps_finished_units_and_resume_does_only_the_rest(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    units = [str(i) for i in range(10)]
    processed: list[str] = []

    def run(stop_after: int | None) -> None:
        progress = CallbackProgress(should_stop=lambda: stop_after is not None and len(processed) >= stop_after)
        with ws.stage("work", 1, {}) as st:
            for position, unit in st.pending_units(units, progress):
                processed.append(unit)
                st.emit(unit, position, [])

    with pytest.raises(Cancelled):
        run(stop_after=4)
    assert ws.stage_status(ws.stage("work", 1, {}).key) == "running"
    processed.clear()
    run(stop_after=None)
    assert processed == units[4:]


def test_annotations_follow_the_lineage_nearest_stage_wins(tmp_path):
    ws = Workspace.open(tmp_path / "ws")
    source = _source_stage(ws, 2)
    items = ws.items(source)
    with ws.stage("retag", 1, {}, inputs=[source]) as st:
        st.emit_all([item.id for item in items], {items[0].id: {"tags": ["new"]}})
    retagged = st.handle
    tags = ws.annotations(retagged, "tags")
    assert tags[items[0].id] == ["new"]
    assert tags[items[1].id] == ["t1"]
    assert ws.annotations(source, "tags")[items[0].id] == ["t0"]


def _hold_lock(path: str, ready, release) -> None:
    ws = Workspace.open(path)
    with ws.stage("hold", 1, {}):
        ready.set()
        release.wait(10)


def test_a_second_writer_is_refused_with_a_clear_error(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path / "ws"), ready, release))
    holder.start()
    try:
        assert ready.wait(20)
        ws = Workspace.open(tmp_path / "ws")
        with pytest.raises(WorkspaceBusyError, match="another run"):
            with ws.stage("other", 1, {}):
                pass
    finally:
        release.set()
        holder.join(10)


def _integrity(root) -> str:
    """SQLite's own check of the manifest a killed process left."""
    import sqlite3

    with sqlite3.connect(root / "manifest.sqlite") as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_a_killed_writer_leaves_the_workspace_usable(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path / "ws"), ready, release))
    holder.start()
    assert ready.wait(20)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    assert _integrity(tmp_path / "ws") == "ok"
    ws = Workspace.open(tmp_path / "ws")
    assert len(ws.items(_source_stage(ws, 2))) == 2


@pytest.mark.parametrize("name", ["../../x", "/etc", "..", "a/b", "CON", "", "c:\\x"])
def test_workspace_names_that_escape_are_refused(tmp_path, name):
    with pytest.raises(UnsafeNameError):
        workspace_path(tmp_path, name)
    assert list(tmp_path.iterdir()) == []
