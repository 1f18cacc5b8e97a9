"""Run sd-scripts as a child process group and tell the truth about the result.

Training tools that call a run "finished" because the process ended are wrong in the common cases:
sd-scripts exits 0 when it found no images, and a crash leaves half a log. Here a run succeeds only
when the process exits 0 AND the LoRA file exists, opens as safetensors and carries the metadata we
asked for; anything else raises ``TrainingFailed`` with the last lines of the log.

The process gets its own session (``start_new_session``) so cancel can signal the whole group:
SIGINT (sd-scripts stops like Ctrl-C), then SIGTERM, then SIGKILL, and we wait until no process of
the group is left. Checkpoints written before the cancel are kept and reported.
"""

from __future__ import annotations

import csv
import io
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from ..media.images import is_image_name
from ..progress import Progress, ensure_progress
from .log_parse import CheckpointEvent, Event, LineSplitter, LossPoint, ModelSavedEvent, StepEvent, parse_events

LOG_TAIL_LINES = 40
GROUP_GONE_DEADLINE_S = 10.0
IDLE_UPDATE_S = 2.0  # between steps (model loading takes minutes) progress is re-sent this often


class TrainingFailed(RuntimeError):
    """The run did not produce a usable LoRA; the message carries the reason and the log's end."""

    def __init__(self, reason: str, log_tail: Sequence[str], returncode: int | None) -> None:
        super().__init__(f"{reason}\n--- last lines of the training log ---\n" + "\n".join(log_tail))
        self.reason = reason
        self.log_tail = list(log_tail)
        self.returncode = returncode


@dataclass(frozen=True)
class LaunchSpec:
    """Everything needed to start one run; built by ``train_config``, never from raw user text."""

    argv: tuple[str, ...]
    cwd: Path
    env: Mapping[str, str]
    output_file: Path | None  # None: a step that writes no LoRA (musubi-tuner's caching); exit 0 is success
    log_path: Path
    loss_path: Path
    sample_dir: Path | None = None
    expected_metadata: Mapping[str, str] = field(default_factory=dict)
    trainer: str = "sd-scripts"  # how failures name the program (musubi-tuner's launcher shares this core)
    checkpoint_glob: str = ""  # intermediate LoRAs in output_file's folder, found even if no log line named them


@dataclass(frozen=True)
class SampleImageEvent:
    """A sample image sd-scripts just wrote."""

    path: Path


@dataclass
class TrainResult:
    """What a finished or cancelled run left behind."""

    status: str  # "success" | "cancelled"
    lora_path: Path | None
    steps_done: int
    total_steps: int
    elapsed_s: float
    steps_per_s: float | None
    last_checkpoint: Path | None
    log_path: Path
    loss_path: Path
    loss_curve: list[tuple[int, float]]
    samples: list[Path]
    metadata: dict[str, str] = field(default_factory=dict)
    cancel_cause: BaseException | None = None
    checkpoints: list[Path] = field(default_factory=list)  # intermediate LoRAs kept on disk, oldest first


class _Run:
    """Mutable bookkeeping of one run, owned by ``run_training``'s thread.

    sd-scripts redraws its bar at ``progress_bar.update(1)`` with the previous step's
    ``avr_loss`` and only then calls ``set_postfix`` with the new one, so a step's loss is the LAST
    value printed for it. A step's value is final once a later step appears (or the run ends):
    ``pending`` holds the current step's newest value until then.
    """

    def __init__(self) -> None:
        self.done = 0
        self.total = 0
        self.loss_curve: list[tuple[int, float]] = []
        self.pending: tuple[int, float] | None = None
        self.redraws = (0, 0)  # (step, bar lines seen for it): 1 line may be only the stale redraw
        self.checkpoints: list[Path] = []
        self.model_saved = False
        self.samples: list[Path] = []
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.rates: list[tuple[float, int]] = []

    def apply(self, event: Event) -> LossPoint | None:
        """Record ``event``; return the loss point it made final, if any."""
        if isinstance(event, StepEvent):
            self.done, self.total = event.done, event.total
            self.rates.append((time.monotonic(), event.done))
            final = self.finish_step() if self.pending and event.done > self.pending[0] else None
            step, count = self.redraws
            self.redraws = (event.done, count + 1 if step == event.done else 1)
            if event.loss is not None and event.done >= 1:
                self.pending = (event.done, event.loss)
            return final
        if isinstance(event, CheckpointEvent):
            self.checkpoints.append(Path(event.path))
        elif isinstance(event, ModelSavedEvent):
            self.model_saved = True
        return None

    def finish_step(self, cancelled: bool = False) -> LossPoint | None:
        """Move the pending value into the curve (called on the next step and at the end).

        A cancel can land between a step's two redraws; then its only value is the previous
        step's, so it is dropped rather than recorded as this step's loss.
        """
        stale_only = self.redraws == (self.pending[0], 1) if self.pending else False
        if self.pending is None or (cancelled and stale_only):
            self.pending = None
            return None
        step, loss = self.pending
        self.pending = None
        self.loss_curve.append((step, loss))
        return LossPoint(step, self.total, loss)

    def steps_per_s(self) -> float | None:
        """Steady-state speed: from the first step seen to the last (excludes loading time)."""
        started = [(t, d) for t, d in self.rates if d >= 1]
        if len(started) < 2 or started[-1][1] == started[0][1]:
            return None
        (t0, d0), (t1, d1) = started[0], started[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None


def _reader(stream: io.RawIOBase, log_path: Path, lines: queue.Queue[str | None]) -> None:
    """Copy the child's output to the log file and hand whole lines to the main thread."""
    splitter = LineSplitter()
    with open(log_path, "a", encoding="utf-8") as log:
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            for line in splitter.feed(chunk):
                log.write(line + "\n")
                lines.put(line)
            log.flush()
        for line in splitter.flush():
            log.write(line + "\n")
            lines.put(line)
    lines.put(None)


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie process is left in the group (zombies hold no resources)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_process_group(proc: subprocess.Popen[bytes] | int, grace_s: float = 4.0) -> None:
    """Stop the run's whole process group: SIGINT, then SIGTERM, then SIGKILL; return when none of it
    is alive (SIGKILL makes that certain well within ``GROUP_GONE_DEADLINE_S``), the leader reaped (no
    zombie). ``proc`` may be a bare group id (a trainer left by a killed process: nothing to reap). A
    Ctrl-C while waiting (the user's second) kills at once: the run still ends as a cancel with its
    report, instead of escaping half-way as an abort."""
    pgid = proc if isinstance(proc, int) else proc.pid
    for sig, wait_s in ((signal.SIGINT, grace_s * 0.6), (signal.SIGTERM, grace_s * 0.4), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        try:
            while time.monotonic() < deadline and _group_alive(pgid):
                _reap(proc)
                time.sleep(0.05)
        except KeyboardInterrupt:
            return stop_process_group(proc, 0.0)
        if not _group_alive(pgid):
            break
    _reap(proc, wait_s=2.0)


def _reap(proc: subprocess.Popen[bytes] | int, wait_s: float = 0.0) -> None:
    if isinstance(proc, int):
        return
    try:
        proc.wait(timeout=wait_s) if wait_s else proc.poll()
    except subprocess.TimeoutExpired:
        pass


def read_lora_metadata(path: Path) -> dict[str, str]:
    """The safetensors header metadata of ``path``; ValueError (naming it) if it is not safetensors."""
    from ..models.weights_file import open_safetensors

    with open_safetensors(path) as handle:
        if not list(handle.keys()):
            raise ValueError(f"{path} holds no tensors")
        return dict(handle.metadata() or {})


def _check_output(spec: LaunchSpec, returncode: int, run: _Run) -> dict[str, str]:
    """Return the LoRA's metadata if the run really produced what we asked for, else raise."""
    if returncode != 0:
        raise TrainingFailed(f"{spec.trainer} exited with code {returncode}", run.tail, returncode)
    if spec.output_file is None:
        return {}
    if not spec.output_file.is_file():
        raise TrainingFailed(
            f"{spec.trainer} exited 0 but wrote no LoRA at {spec.output_file} "
            "(it does this when the dataset has no usable images)",
            run.tail,
            returncode,
        )
    try:
        metadata = read_lora_metadata(spec.output_file)
    except ValueError as exc:
        raise TrainingFailed(str(exc), run.tail, returncode) from exc
    wrong = {k: (v, metadata.get(k)) for k, v in spec.expected_metadata.items() if metadata.get(k) != v}
    if wrong:
        detail = ", ".join(f"{k}: expected {v[0]!r}, found {v[1]!r}" for k, v in wrong.items())
        raise TrainingFailed(f"{spec.output_file} lacks the expected metadata ({detail})", run.tail, returncode)
    return metadata


def write_loss_curve(loss_path: Path, curve: Sequence[tuple[int, float]]) -> None:
    """Save the loss curve as ``<loss_path>.csv`` and ``<loss_path>.json`` (atomic replace)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["step", "avr_loss"])
    writer.writerows(curve)
    atomic_write_text(loss_path.with_name(loss_path.name + ".csv"), text.getvalue())
    atomic_write_text(loss_path.with_name(loss_path.name + ".json"),
                      json.dumps({"step": [s for s, _ in curve], "avr_loss": [v for _, v in curve]}))


def _new_samples(sample_dir: Path | None, seen: set[Path]) -> list[Path]:
    if sample_dir is None or not sample_dir.is_dir():
        return []
    fresh = sorted(p for p in sample_dir.iterdir() if is_image_name(p) and p not in seen)
    seen.update(fresh)
    return fresh


def run_training(spec: LaunchSpec, progress: Progress | None = None, on_event: Callable[[Any], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, grace_s: float = 4.0,
                 poll_s: float = 0.25) -> TrainResult:
    """Run ``spec`` to the end, or until ``progress.update`` raises / ``should_stop()`` is true.

    Cancelling returns a result with status ``"cancelled"`` (the exception that asked for it in
    ``cancel_cause``; a ``KeyboardInterrupt`` stops the trainer at once and also returns, so the
    caller can still write its report); failures raise ``TrainingFailed``.
    """
    progress = ensure_progress(progress)
    spec.log_path.parent.mkdir(parents=True, exist_ok=True)
    spec.log_path.write_text("$ " + " ".join(spec.argv) + "\n", encoding="utf-8")
    run, seen = _Run(), set(_new_samples(spec.sample_dir, set()))
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - fixed argument list built from operator config
        list(spec.argv), cwd=spec.cwd, env=dict(spec.env), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, bufsize=0,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_reader, args=(proc.stdout, spec.log_path, lines), daemon=True)
    reader.start()
    cancel_cause: BaseException | None = None
    try:
        _pump(proc, lines, run, spec, progress, on_event, should_stop, seen, poll_s)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - any exception from progress means "stop"
        cancel_cause = exc  # a second Ctrl-C (KeyboardInterrupt) is a cancel too, without the grace period
        stop_process_group(proc, 0.0 if isinstance(exc, KeyboardInterrupt) else grace_s)
    finally:
        if proc.poll() is None or _group_alive(proc.pid):
            stop_process_group(proc, grace_s)
    reader.join(timeout=5.0)
    _drain(lines, run, on_event)
    _emit(run.finish_step(cancelled=cancel_cause is not None), on_event)
    for sample in _new_samples(spec.sample_dir, seen):
        run.samples.append(sample)
    write_loss_curve(spec.loss_path, run.loss_curve)
    elapsed = time.monotonic() - started
    checkpoints = kept_checkpoints(spec, run.checkpoints)
    result = TrainResult(
        status="cancelled" if cancel_cause is not None else "success",
        lora_path=None, steps_done=run.done, total_steps=run.total, elapsed_s=elapsed,
        steps_per_s=run.steps_per_s(), last_checkpoint=checkpoints[-1] if checkpoints else None,
        log_path=spec.log_path, loss_path=spec.loss_path, loss_curve=run.loss_curve,
        samples=run.samples, cancel_cause=cancel_cause, checkpoints=checkpoints,
    )
    if cancel_cause is None:
        result.metadata = _check_output(spec, proc.returncode, run)
        result.lora_path = spec.output_file
    return result


def kept_checkpoints(spec: LaunchSpec, announced: Sequence[Path] = ()) -> list[Path]:
    """Intermediate LoRAs on disk, oldest first: those the log announced plus those matching
    ``checkpoint_glob`` (a log line can be wrapped or reworded; the file name pattern is sd-scripts')."""
    final = spec.output_file.resolve() if spec.output_file is not None else None  # None: a step with no LoRA
    on_disk = sorted(spec.output_file.parent.glob(spec.checkpoint_glob)) if final and spec.checkpoint_glob else []
    kept = {p.resolve(): p for p in [*announced, *on_disk] if p.is_file() and p.resolve() != final}
    return list(kept.values())


def _drain(lines: queue.Queue[str | None], run: _Run, on_event: Callable[[Any], None] | None) -> None:
    while True:
        try:
            line = lines.get_nowait()
        except queue.Empty:
            return
        if line is not None:
            _handle_line(line, run, on_event)


def _handle_line(line: str, run: _Run, on_event: Callable[[Any], None] | None) -> None:
    run.tail.append(line)
    for event in parse_events(line):
        final = run.apply(event)
        _emit(event, on_event)
        _emit(final, on_event)


def _emit(event: Any, on_event: Callable[[Any], None] | None) -> None:
    if event is not None and on_event is not None:
        on_event(event)


def _pump(proc: subprocess.Popen[bytes], lines: queue.Queue[str | None], run: _Run, spec: LaunchSpec,
          progress: Progress, on_event: Callable[[Any], None] | None, should_stop: Callable[[], bool] | None,
          seen: set[Path], poll_s: float) -> None:
    """Forward output to ``progress``/``on_event`` until the child's output ends.

    Returns at end of output, or shortly after the leader exits if a leftover child still holds
    the pipe open (the caller then stops the rest of the group).
    """
    reported = (-1, -1)
    updated_at = time.monotonic()
    exited_at: float | None = None
    while True:
        try:
            line = lines.get(timeout=poll_s)
        except queue.Empty:
            line = ""
        if line is None:
            proc.wait()
            return
        if line:
            _handle_line(line, run, on_event)
        if exited_at is None and proc.poll() is not None:
            exited_at = time.monotonic()
        if exited_at is not None and not line and time.monotonic() - exited_at > 2.0:
            return
        for sample in _new_samples(spec.sample_dir, seen):
            run.samples.append(sample)
            if on_event is not None:
                on_event(SampleImageEvent(sample))
        if should_stop is not None and should_stop():
            raise InterruptedError("stop requested")
        finished = run.total > 0 and run.done >= run.total
        idle_due = not finished and time.monotonic() - updated_at >= IDLE_UPDATE_S
        if (run.done, run.total) != reported or idle_due:
            reported, updated_at = (run.done, run.total), time.monotonic()
            progress.update(run.done, max(run.total, 1))  # also where a Progress-raised cancel is noticed
