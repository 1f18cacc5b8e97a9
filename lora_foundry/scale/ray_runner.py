"""Units as Ray tasks on a cluster the operator started; the driver alone commits.

Ray is an optional extra (``pip install lora-foundry[ray]``), imported only here and only when a
cluster address is configured (``scale.config``). Each unit is one task with the resources it
asks for (decoding one CPU, a model stage one GPU). A task writes its files atomically into the
shared workspace and *returns* its messages; the driver commits them when the task has succeeded.
A task whose worker died is retried by Ray (``max_retries``) and rewrites the same files with the
same bytes; only the attempt that returned is committed, so every unit is committed exactly once.

Before any unit runs, ``check_shared`` writes a probe file into the workspace and has a task on
every node read it back: a node that cannot see the workspace makes the run refuse at once.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import engine_name
from .units import Deliver, Unit

MAX_RETRIES = 3
"""Attempts Ray makes after a worker or node dies under a unit."""

IN_FLIGHT = 256
"""Most units submitted and not yet committed at once."""

POLL_S = 0.25
"""How often the driver, waiting for units, calls ``idle`` (the progress bar's cancel check)."""


class WorkspaceNotShared(RuntimeError):
    """A Ray node cannot read the workspace at the path the driver uses."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("a Ray cluster is configured but Ray is not installed: "
                           "pip install 'lora-foundry[ray]' (or pip install ray)") from error
    return ray


def _run_unit(unit: Unit) -> tuple[list[tuple[Any, ...]], Any]:
    """In a Ray worker: do the unit, keep its messages; they travel back with the result."""
    messages: list[tuple[Any, ...]] = []
    result = unit.work(unit.payload, messages.append)
    return [m for m in messages if m[0] != "progress"], result


def _read_probe(path: str) -> str:
    """In a Ray worker on one node: the probe file's text, or why it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        return f"unreadable: {error}"


class RayRunner:
    """Connects to the cluster at ``address`` (``ray.init``); ``run`` sends the units."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._ray = _import_ray()
        if not self._ray.is_initialized():
            # Workers import the engine that this driver runs, shipped with the job (docs/scaling.md).
            self._ray.init(address=address, logging_level="WARNING", log_to_driver=False,
                           runtime_env={"py_modules": [str(engine_name.ENGINE_DIR)]})

    def check_shared(self, root: Path) -> None:
        """Refuse (``WorkspaceNotShared``) unless every alive node reads ``root`` as we do."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from ..fileio import atomic_write_text

        token = secrets.token_hex(16)
        probe = Path(root) / f".lf-probe-{token}"
        atomic_write_text(probe, token)
        try:
            read = self._ray.remote(engine_name.top_level("scale.ray_runner", "_read_probe"))
            nodes = [node for node in self._ray.nodes() if node.get("Alive")]
            answers = self._ray.get([read.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                node["NodeID"], soft=False)).remote(str(probe)) for node in nodes])
        finally:
            probe.unlink(missing_ok=True)
        blind = [f"{node.get('NodeManagerAddress')} (node {node['NodeID'][:8]}): {answer}"
                 for node, answer in zip(nodes, answers, strict=True) if answer != token]
        if blind:
            raise WorkspaceNotShared(
                f"Ray nodes that cannot see the workspace {root}: {'; '.join(blind)}. Every node needs "
                "the workspace on shared storage at the same path (docs/scaling.md); nothing was run.")

    def run(self, units: list[Unit], deliver: Deliver, idle: Callable[[], None] | None = None) -> None:
        """Run every unit as a task, at most ``IN_FLIGHT`` queued at once (the driver's memory
        stays flat in the number of units); deliver each finished unit's messages, then its end.

        ``idle`` is called while waiting: when it raises (the user cancelled), the units still
        queued or running are cancelled and nothing more is committed."""
        task = self._ray.remote(engine_name.top_level("scale.ray_runner", "_run_unit"))
        refs: dict[Any, int] = {}
        pending = iter(enumerate(units))
        try:
            while True:
                for number, unit in itertools.islice(pending, max(0, IN_FLIGHT - len(refs))):
                    options = {"max_retries": MAX_RETRIES, "retry_exceptions": False, **unit.resources}
                    refs[task.options(**options).remote(engine_name.to_workers(unit))] = number
                if not refs:
                    return
                done, _ = self._ray.wait(list(refs), num_returns=1, timeout=POLL_S)
                if not done:
                    if idle is not None:
                        idle()
                    continue
                number = refs.pop(done[0])
                messages, result = engine_name.from_workers(self._get(done[0], units[number]))
                for message in messages:
                    deliver(number, message)
                deliver(number, ("end", result))
        finally:
            for ref in refs:  # cancelled or failed: stop what is still queued
                self._ray.cancel(ref, force=True)

    def _get(self, ref: Any, unit: Unit) -> Any:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as error:
            raise RuntimeError(f"{unit.name} failed on the Ray cluster: {error}") from error
