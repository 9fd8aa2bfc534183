"""``unlearnkit bench`` and ``unlearnkit work``: a bench's units through a backend, then the score.

Read the path a bench takes as a sentence: the job is checked and its setting resolved once; the
folder's records are written (or checked against a resumed run); the units run on a backend; the
score unit reads every stored result and writes the leaderboard. The reports are the command
layer's: it calls the bench, then :mod:`unlearnkit.report`.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rich.console import Console

from unlearnkit.errors import InputError
from unlearnkit.io import provenance, write_npz
from unlearnkit.runner.backends import run_units
from unlearnkit.runner.backends.local import local_executor
from unlearnkit.runner.backends.plan import Lock, read_units, run_next, run_planned, write_job_list
from unlearnkit.runner.jobs import BenchJob, bench_from_dict, bench_retime_reason, default_workers, prepare_bench
from unlearnkit.runner.progress import BenchProgress
from unlearnkit.runner.score import per_example_arrays, score_bench
from unlearnkit.runner.setting import resolve_setting
from unlearnkit.results.leaderboard import Leaderboard, write_leaderboard
from unlearnkit.results.store import BenchStore, read_bench_record

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class Backend:
    """Where a bench's units run.

    Attributes:
        name: ``local`` (this process, or ``workers`` processes) or ``ray``.
        workers: Local worker processes (None: what this machine's cores and memory allow).
        address: Ray cluster address (None: start a local Ray).
        cpus_per_unit: CPUs a Ray task asks for (None: the bench's threads per unit).
        gpus_per_unit: GPUs a Ray task asks for; fractions share a GPU between units.
        retries: Times Ray retries a failed unit before reporting it.
    """

    name: str = "local"
    workers: int | None = None
    address: str | None = None
    cpus_per_unit: float | None = None
    gpus_per_unit: float = 0.0
    retries: int = 2

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise InputError(f"--backend {self.name!r}: expected one of {', '.join(BACKENDS)}")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers {self.workers}: expected at least 1")
        if self.name != "ray" and (self.address or self.cpus_per_unit or self.gpus_per_unit):
            raise InputError("--address, --cpus-per-unit and --gpus-per-unit apply to --backend ray")
        if self.name == "ray" and self.workers is not None:
            raise InputError("--workers applies to --backend local; Ray sizes itself from --cpus-per-unit")
        if (self.cpus_per_unit is not None and self.cpus_per_unit <= 0) or self.gpus_per_unit < 0:
            raise InputError(f"--cpus-per-unit {self.cpus_per_unit} / --gpus-per-unit {self.gpus_per_unit}: "
                             "expected more than 0 CPUs and at least 0 GPUs")

    def check(self) -> None:
        """Fail before anything is written when the backend cannot start (Ray missing, address silent)."""
        if self.name == "ray":
            from unlearnkit.runner.backends.ray import check_address, import_ray

            import_ray()
            if self.address:
                check_address(self.address)

    def executor(self, job: BenchJob, store: BenchStore):
        if self.name == "ray":
            from unlearnkit.runner.backends.ray import RayExecutor

            return RayExecutor(job, store, address=self.address, cpus_per_unit=self.cpus_per_unit or job.threads,
                               gpus_per_unit=self.gpus_per_unit, retries=self.retries)
        return local_executor(job, store, self.workers or default_workers(job.threads))


def run_bench(job: BenchJob, backend: Backend = Backend(), *, plan: str | None = None,
              console: Console | None = None) -> Leaderboard | None:
    """Run (or resume) the bench; returns the leaderboard, or None when only planned.

    Args:
        job: The bench.
        backend: Where its units run.
        plan: Instead of running, write this job list (one ``unlearnkit work`` command per unit).
        console: Where progress goes (default: stdout).
    """
    console = console or Console()
    if plan is None:
        backend.check()
    with bench_lock(job.out):
        store, units = prepare_bench(job)
        if any(u.kind == "retime" for u in units) and not store.retimed_retrain.exists():
            # Time ratios must divide by a retrain timed where the methods run (units.retime_reason).
            console.print(f"re-timing one retrain here: {bench_retime_reason(job, store)}", highlight=False)
        if plan is not None:
            write_job_list(plan, store.out, units)
            console.print(f"{len(units)} units planned in {plan}; run each line (e.g. a SLURM array task per line), "
                          f"or `unlearnkit work {store.out} --next` in as many workers as you like", highlight=False)
            return None
        progress = BenchProgress(console, store, units)
        with progress:
            run_units(store, units, backend.executor(job, store), progress.event)
        board = finish_bench(job, store)
    console.print(progress.summary())
    return board


@contextlib.contextmanager
def bench_lock(out: str | Path) -> Iterator[None]:
    """Hold folder ``out`` for one ``unlearnkit bench``; a second one on it is refused.

    Refused, not queued: the first bench computes every model, and once it has finished the same
    command again only reads them (a resume), where two running at once would both train every
    model. Workers that share a folder on purpose use ``--plan`` and ``unlearnkit work --next``,
    whose per-unit locks this lock is one of (a lock whose process died on this host is taken over).
    """
    path = BenchStore.bench_lock(out)
    lock = Lock(path)
    if not lock.acquire():
        try:
            owner = json.loads(path.read_text())
            who = f"pid {owner['pid']} on {owner['host']}, since {time.strftime('%Y-%m-%d %H:%M', time.localtime(owner['since']))}"
        except (OSError, ValueError, KeyError, TypeError):
            who = "a process starting this instant"
        raise InputError(f"bench folder {out} is in use by another `unlearnkit bench` ({who}); wait for it to finish "
                         f"(running the command again then resumes) or use another --out; if that process is gone, "
                         f"delete {path}")
    try:
        yield
    finally:
        lock.release()
        # What the lock alone created (a refused new bench leaves no folder behind).
        for folder in (path.parent, path.parent.parent):
            with contextlib.suppress(OSError):
                folder.rmdir()


def finish_bench(job: BenchJob, store: BenchStore) -> Leaderboard:
    """The score unit: read every result, write ``per_example.npz`` and then ``leaderboard.json``.

    The reports are the command layer's to write (``unlearnkit.cli``), from the returned board.
    """
    setting = resolve_setting(job.setting)
    board, per_example = score_bench(job, setting, store, provenance())
    write_npz(store.per_example, **per_example_arrays(setting, per_example))
    write_leaderboard(store.leaderboard, board)  # last: its presence marks the score unit finished
    return board


def run_work(out: str, *, unit: int | None = None, next_unit: bool = False, drain: bool = False,
             console: Console | None = None) -> Leaderboard | None:
    """``unlearnkit work``: run planned unit ``unit``, claim the next unfinished one, or claim until none is left.

    Returns:
        The leaderboard when this call ran the score unit (the caller writes the reports), else None.
    """
    console = console or Console()
    if sum((unit is not None, next_unit, drain)) != 1:
        raise InputError("work needs exactly one of --unit I, --next and --drain")
    read_bench_record(out)
    store = BenchStore.open(out)
    raw_job, units = read_units(store)
    job = bench_from_dict(raw_job)
    if Path(job.out).resolve() != Path(out).resolve():
        job = bench_from_dict({**raw_job, "out": str(out)})

    def log(text: str) -> None:
        console.print(text, highlight=False)

    scored: list[Leaderboard] = []

    def score() -> None:
        scored.append(finish_bench(job, store))
        log(f"leaderboard: {store.leaderboard} ({len(scored[-1].rows)} rows)")

    if unit is not None:
        run_planned(job, store, units, unit, log, score)
        return scored[-1] if scored else None
    while run_next(job, store, units, log, score) is not None:
        if next_unit:
            break
    else:
        log(f"every unit of {out} is finished")
    return scored[-1] if scored else None
