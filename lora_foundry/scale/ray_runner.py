"""Units as Ray tasks on a cluster the operator started; the driver alone commits.

Ray is an optional extra (``pip install lora-foundry[ray]``), imported only here and only when a
cluster address is configured (``scale.config``). Each unit is one task with the resources it
asks for (decoding one CPU, a model stage one GPU). A task writes its files atomically into the
shared workspace and *returns* its messages; the driver commits them when the task has succeeded.
A task whose worker died is retried by Ray (``max_retries``) and rewrites the same files with the
same bytes; only the attempt that returned is committed, so every unit is committed exactly once.

Units that open a model (``Unit.keeps``: CLIP batches) run on actors instead, one per slot the
cluster has for them, each keeping the model open between batches.

Before any unit runs, ``check_shared`` writes a probe file into the workspace and has a task on
every node read it back: a node that cannot see the workspace makes the run refuse at once.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..extras import optional_extra
from . import engine_name
from .units import Deliver, Kept, Unit, new_kept

MAX_RETRIES = 3
"""Attempts Ray makes after a worker or node dies under a unit."""

IN_FLIGHT = 256
"""Most units submitted and not yet committed at once."""

POLL_S = 0.25
"""How often the driver, waiting for units, calls ``idle`` (the progress bar's cancel check)."""


class WorkspaceNotShared(RuntimeError):
    """A Ray node cannot read the workspace at the path the driver uses."""


def _import_ray() -> Any:
    with optional_extra("ray", "ray", "a configured Ray cluster"):
        import ray
    return ray


def _run_unit(unit: Unit) -> tuple[list[tuple[Any, ...]], Any, int]:
    """In a Ray worker: do the unit, keep its messages; they travel back with the result (and how
    many models the unit opened)."""
    return _work(unit, new_kept())


def _work(unit: Unit, kept: Kept) -> tuple[list[tuple[Any, ...]], Any, int]:
    messages: list[tuple[Any, ...]] = []
    loads = kept.loads
    result = unit.work(unit.payload, messages.append, kept)
    return [m for m in messages if m[0] != "progress"], result, kept.loads - loads


class UnitActor:
    """A Ray actor for units that open a model (``Unit.keeps``): it runs them one at a time and
    keeps what they opened for its whole life, so each slot opens the model once per run."""

    def __init__(self) -> None:
        self.kept = new_kept()

    def run(self, unit: Unit) -> tuple[list[tuple[Any, ...]], Any, int]:
        return _work(unit, self.kept)


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
        self.loads = 0
        """Models the units of the last ``run`` opened, summed over workers (one per actor when kept)."""
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
        """Run every unit, at most ``IN_FLIGHT`` queued at once (the driver's memory stays flat in
        the number of units); deliver each finished unit's messages, then its end. Units that
        keep a model run on one actor per slot (``_Actors``), the others as tasks (``_Tasks``).

        ``idle`` is called while waiting: when it raises (the user cancelled), the units still
        queued or running are cancelled and nothing more is committed."""
        where = _Actors(self._ray, units) if any(unit.keeps for unit in units) else _Tasks(self._ray)
        refs: dict[Any, int] = {}
        pending = iter(enumerate(units))
        self.loads = 0
        try:
            while True:
                for number, unit in itertools.islice(pending, where.room(len(refs))):
                    refs[where.send(unit)] = number
                if not refs:
                    return
                done, _ = self._ray.wait(list(refs), num_returns=1, timeout=POLL_S)
                if not done:
                    if idle is not None:
                        idle()
                    continue
                number = refs.pop(done[0])
                where.returned(done[0])
                messages, result, loads = engine_name.from_workers(self._get(done[0], units[number]))
                self.loads += loads
                for message in messages:
                    deliver(number, message)
                deliver(number, ("end", result))
        finally:
            where.stop(list(refs))  # cancelled or failed: stop what is still queued or running

    def _get(self, ref: Any, unit: Unit) -> Any:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as error:
            raise RuntimeError(f"{unit.name} failed on the Ray cluster: {error}") from error


class _Tasks:
    """Each unit one Ray task with the resources it asks for; Ray retries a task whose worker died."""

    def __init__(self, ray: Any) -> None:
        self._ray = ray
        self._task = ray.remote(engine_name.top_level("scale.ray_runner", "_run_unit"))

    def room(self, in_flight: int) -> int:
        return max(0, IN_FLIGHT - in_flight)

    def send(self, unit: Unit) -> Any:
        options = {"max_retries": MAX_RETRIES, "retry_exceptions": False, **unit.resources}
        return self._task.options(**options).remote(engine_name.to_workers(unit))

    def returned(self, ref: Any) -> None:
        """A task needs nothing back."""

    def stop(self, refs: list[Any]) -> None:
        for ref in refs:
            self._ray.cancel(ref, force=True)


class _Actors:
    """One ``UnitActor`` per slot the cluster has for the units' resources (a GPU each for a GPU
    model), at most one unit in flight per actor; Ray restarts an actor whose process died and
    retries its unit. The actors end with the run, and the models they held with them."""

    def __init__(self, ray: Any, units: list[Unit]) -> None:
        self._ray = ray
        need = units[0].resources if units else {"num_cpus": 1}
        actor = ray.remote(engine_name.top_level("scale.ray_runner", "UnitActor")).options(
            max_restarts=MAX_RETRIES, max_task_retries=MAX_RETRIES, **need)
        self.actors = [actor.remote() for _ in range(max(1, min(len(units), _slots(ray, need))))]
        self._idle = list(self.actors)
        self._busy: dict[Any, Any] = {}

    def room(self, in_flight: int) -> int:
        return len(self._idle)

    def send(self, unit: Unit) -> Any:
        actor = self._idle.pop()
        ref = actor.run.remote(engine_name.to_workers(unit))
        self._busy[ref] = actor
        return ref

    def returned(self, ref: Any) -> None:
        self._idle.append(self._busy.pop(ref))

    def stop(self, refs: list[Any]) -> None:
        for actor in self.actors:
            self._ray.kill(actor)


def _slots(ray: Any, need: dict[str, float]) -> int:
    """How many units asking ``need`` the cluster can run at once."""
    total = ray.cluster_resources()
    fits = [int(total.get(_RESOURCE_NAMES.get(key, key), 0) // amount) for key, amount in need.items() if amount > 0]
    return max(1, min(fits)) if fits else 1


_RESOURCE_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}
