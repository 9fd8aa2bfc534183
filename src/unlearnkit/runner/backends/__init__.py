"""Backends: one interface, "run these units", over this process, worker processes or a Ray cluster.

A backend is an :class:`Executor` (start a unit, wait for some to finish); :func:`run_units` drives
any executor through a bench's dependency graph: a unit starts once the units it reads from are
finished, a failed unit is reported by name after the others have finished, and the units that
depend on it are reported as not run. The third way to run a bench, a job list for a cluster's
scheduler, is :mod:`unlearnkit.runner.backends.plan`.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from unlearnkit.errors import InputError
from unlearnkit.results.store import BenchStore
from unlearnkit.runner.units import Unit, dependencies, unit_done, unit_todo


class UnitsFailed(RuntimeError):
    """Some units failed (after their retries); every other unit's results are stored.

    ``bad_input`` is true when every unit that raised raised an InputError (the rest were not run
    for their sake): the run stopped on a bad setting, not on a fault, and the CLI exits 2.
    """

    def __init__(self, failures: dict[str, str], bad_input: bool = False):
        self.failures = failures
        self.bad_input = bad_input
        lines = "\n".join(f"  {name}: {why}" for name, why in failures.items())
        super().__init__(f"{len(failures)} unit(s) did not finish; finished units are kept, rerun to retry:\n{lines}")


class Executor(Protocol):
    """Where units run. ``start`` returns a handle; ``wait`` returns finished (handle, record or error) pairs."""

    name: str

    def start(self, unit: Unit, todo: list[int]) -> Any: ...

    def wait(self, handles: list[Any]) -> list[tuple[Any, dict | BaseException]]: ...

    def close(self, abort: bool = False) -> None: ...


OnEvent = Callable[[str, Unit, Any], None]


def run_units(store: BenchStore, units: list[Unit], executor: Executor, on_event: OnEvent) -> None:
    """Run every unit of ``units`` except ``score`` that is not finished, respecting dependencies.

    Args:
        store: The bench's store (finished units are found there).
        units: The bench's units (:func:`~unlearnkit.runner.jobs.plan_units`).
        executor: Where units run.
        on_event: Called as ``on_event(kind, unit, payload)`` with kind ``"cached"`` (nothing to
            do), ``"started"``, ``"done"`` (payload: the unit's run record) or ``"failed"``
            (payload: the reason).

    Raises:
        UnitsFailed: after every runnable unit has finished, if any failed.
    """
    waiting = [u for u in units if u.kind != "score"]
    failed: dict[str, str] = {}
    raised: list[BaseException] = []
    running: dict[Any, Unit] = {}
    finished = False
    try:
        while waiting or running:
            for unit in list(waiting):
                deps = dependencies(unit, units)
                broken = [d.name for d in deps if d.name in failed]
                if broken:
                    waiting.remove(unit)
                    failed[unit.name] = f"not run: it needs {', '.join(broken)}"
                    on_event("failed", unit, failed[unit.name])
                elif all(unit_done(store, d) for d in deps):
                    waiting.remove(unit)
                    todo = unit_todo(store, unit)
                    if not todo:
                        on_event("cached", unit, None)
                        continue
                    running[executor.start(unit, todo)] = unit
                    on_event("started", unit, len(todo))
            if not running:
                if waiting:  # only reachable if a dependency finished without writing its results
                    for unit in waiting:
                        failed[unit.name] = "not run: a unit it needs finished without its results"
                    break
                continue
            for handle, outcome in executor.wait(list(running)):
                unit = running.pop(handle)
                if isinstance(outcome, BaseException):
                    raised.append(outcome)
                    failed[unit.name] = f"{type(outcome).__name__}: {outcome}"
                    on_event("failed", unit, failed[unit.name])
                else:
                    on_event("done", unit, outcome)
        finished = True
    finally:
        # Interrupted (Ctrl-C, an error here): stop the workers now; what they finished is stored.
        executor.close(abort=not finished)
    if failed:
        raise UnitsFailed(failed, bad_input=bool(raised) and all(isinstance(e, InputError) for e in raised))
