"""The local backend: units in this process, or in a pool of worker processes.

Each worker process runs one unit at a time with the bench's torch thread count, so N workers at
T threads keep N x T cores busy without oversubscribing them, and every unit computes the same bits
as it would in this process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing as mp
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from unlearnkit.runner.jobs import bench_from_dict, bench_to_dict
from unlearnkit.results.store import BenchStore
from unlearnkit.runner.units import Unit, run_unit_here


class InProcess:
    """Runs each unit to completion when it is started (``--workers 1``)."""

    name = "local"

    def __init__(self, job, store: BenchStore):
        self.job, self.store = job, store

    def start(self, unit: Unit, todo: list[int]) -> Future:
        fut: Future = Future()
        try:
            fut.set_result(run_unit_here(self.job, self.store, unit, backend="local") or {})
        except (ValueError, RuntimeError, FloatingPointError, OSError) as exc:
            fut.set_exception(exc)
        return fut

    def wait(self, handles: list[Future]) -> list[tuple[Future, Any]]:
        return [(h, h.exception() or h.result()) for h in handles]

    def close(self, abort: bool = False) -> None:
        pass


def _die_with_parent() -> None:
    """Ask Linux to end this worker when the bench process dies (killed, or interrupted)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned worker finishes its unit (written atomically) and exits


_PR_SET_PDEATHSIG = 1


def _worker_unit(job_record: dict, store: BenchStore, unit_record: dict) -> dict:
    return run_unit_here(bench_from_dict(job_record), store, Unit.from_dict(unit_record), backend="local") or {}


class WorkerPool:
    """Runs units in ``workers`` spawned processes."""

    name = "local"

    def __init__(self, job, store: BenchStore, workers: int):
        self.job_record, self.store = bench_to_dict(job), store
        self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_die_with_parent)

    def start(self, unit: Unit, todo: list[int]) -> Future:
        return self.pool.submit(_worker_unit, self.job_record, self.store, unit.to_dict())

    def wait(self, handles: list[Future]) -> list[tuple[Future, Any]]:
        done, _ = wait(handles, return_when=FIRST_COMPLETED)
        return [(h, h.exception() or h.result()) for h in done]

    def close(self, abort: bool = False) -> None:
        if abort:
            for process in list(self.pool._processes.values()):  # no public way to stop a running task
                process.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


def local_executor(job, store: BenchStore, workers: int):
    """The in-process executor for one worker, a process pool for more."""
    return InProcess(job, store) if workers <= 1 else WorkerPool(job, store, workers)
