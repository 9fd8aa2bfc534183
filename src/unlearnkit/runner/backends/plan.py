"""The plan backend: a bench as a job list that any scheduler can drive over a shared filesystem.

``unlearnkit bench ... --plan FILE`` writes the bench folder's records and FILE, one shell command
per unit (``unlearnkit work OUT --unit I``); a SLURM array, a Kubernetes indexed job or
``xargs -P`` runs them. ``unlearnkit work OUT --next`` instead claims the first unfinished unit
through an atomic lock file (``OUT/locks/NAME.lock``, created with O_EXCL), so identical workers can
share one list without coordination.

Units may run in any order: a unit whose inputs are missing first runs them itself (claiming them
like ``--next``), or waits while another worker holds them. A lock whose owner died on this host
is taken over; a lock left by a crashed node is removed by hand (its path is printed while waiting).
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

from unlearnkit.errors import InputError
from unlearnkit.io import read_json, write_bytes
from unlearnkit.results.store import BenchStore
from unlearnkit.runner.units import Unit, dependencies, run_unit_here, unit_done

POLL_SECONDS = 1.0


def write_job_list(path: str | Path, out: Path, units: list[Unit]) -> None:
    """FILE: one ``unlearnkit work`` command per unit, line I running unit I."""
    folder = out.resolve()
    lines = [f"unlearnkit work {folder} --unit {i}  # {u.name}" for i, u in enumerate(units)]
    write_bytes(path, ("\n".join(lines) + "\n").encode())


def read_units(store: BenchStore) -> tuple[dict, list[Unit]]:
    """The bench record and units that ``bench`` planned into ``OUT/units.json``."""
    if not store.units_file.is_file():
        raise InputError(f"{store.out} has no units.json; plan the bench with `unlearnkit bench ... --plan FILE`")
    raw = read_json(store.units_file)
    return raw["job"], [Unit.from_dict(u) for u in raw["units"]]


class Lock:
    """An atomic claim on one unit, released when the unit is finished or fails."""

    def __init__(self, path: Path):
        self.path = path

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._owner_dead():
                    return False
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}, f)
            return True
        return False

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def _owner_dead(self) -> bool:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):
            # Being written this instant by its owner, or gone: not ours to take.
            return False
        if owner.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError):
            return False
        return False


def run_planned(job, store: BenchStore, units: list[Unit], index: int, log: Callable[[str], None],
                score: Callable[[], None]) -> None:
    """Run unit ``index`` (after whatever inputs it lacks)."""
    if not 0 <= index < len(units):
        raise InputError(f"--unit {index}: this bench has units 0..{len(units) - 1} (see {store.units_file})")
    _ensure(job, store, units, units[index], log, score)


def run_next(job, store: BenchStore, units: list[Unit], log: Callable[[str], None], score: Callable[[], None]) -> Unit | None:
    """Claim and run the first unfinished unit nobody else holds; None when every unit is finished."""
    while True:
        pending = [u for u in units if not unit_done(store, u)]
        if not pending:
            return None
        for unit in pending:
            ready = all(unit_done(store, d) for d in dependencies(unit, units))
            if ready and _try_run(job, store, unit, log, score):
                return unit
        time.sleep(POLL_SECONDS)  # everything left is held by others or waits for them


def _ensure(job, store: BenchStore, units: list[Unit], unit: Unit, log, score) -> None:
    for dep in dependencies(unit, units):
        if not unit_done(store, dep):
            _ensure(job, store, units, dep, log, score)
    announced = False
    while not unit_done(store, unit):
        if _try_run(job, store, unit, log, score):
            return
        if not announced:
            log(f"waiting for {unit.name}, claimed by another worker ({store.lock(unit.name)})")
            announced = True
        time.sleep(POLL_SECONDS)


def _try_run(job, store: BenchStore, unit: Unit, log, score) -> bool:
    lock = Lock(store.lock(unit.name))
    if not lock.acquire():
        return False
    try:
        if unit_done(store, unit):
            return True
        log(f"running {unit.name}")
        if unit.kind == "score":
            score()
        else:
            record = run_unit_here(job, store, unit, backend="plan")
            if record:
                log(f"finished {unit.name}: {record['models']} models in {record['seconds']:.1f}s")
        return True
    finally:
        lock.release()
