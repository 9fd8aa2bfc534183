"""The Ray backend: each unit a Ray task, results written by the driver into the same store.

A task receives everything it reads (the bench record, the original model's weights) and returns
every file it produced, so worker nodes need the dataset (a generated one, or the same data root)
but not the bench folder: the store can live on the driver's disk alone. Tasks ask for
``cpus_per_unit`` and ``gpus_per_unit`` (fractions allowed, so several small-model units share one
GPU); a task that fails is retried ``retries`` times and then reported by name, while every
finished unit stays in the store.
"""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlparse

from unlearnkit.errors import InputError
from unlearnkit.io import write_bytes
from unlearnkit.runner.jobs import bench_from_dict, bench_to_dict
from unlearnkit.results.store import BenchStore
from unlearnkit.runner.units import Unit, execute, record_unit

INSTALL_HINT = "pip install 'unlearnkit[ray]'  (or: pip install ray)"
CONNECT_TIMEOUT = 5.0


def import_ray():
    """The ``ray`` module, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--backend ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


def check_address(address: str) -> None:
    """Fail within a few seconds when ``address`` (HOST:PORT or ray://HOST:PORT) does not answer."""
    if address == "auto":
        return
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parsed.hostname, parsed.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise InputError(f"--address {address!r}: expected HOST:PORT or ray://HOST:PORT (or auto)")
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        raise InputError(f"--address {address}: no Ray cluster answers there within {CONNECT_TIMEOUT:.0f} s ({exc}); "
                         "check the head node's address and port (`ray status` on the head node)") from None


def _task(job_record: dict, store: BenchStore, unit_record: dict, todo: list[int],
          original: bytes | None) -> tuple[list[tuple[str, bytes]], float]:
    files: list[tuple[str, bytes]] = []
    start = time.perf_counter()
    # The store only names paths here: the files come back to the driver, which writes them.
    execute(bench_from_dict(job_record), Unit.from_dict(unit_record), todo, store,
            lambda path, data: files.append((str(path), data)), original)
    return files, time.perf_counter() - start


class RayExecutor:
    """Runs units as Ray tasks."""

    name = "ray"

    def __init__(self, job, store: BenchStore, *, address: str | None, cpus_per_unit: float, gpus_per_unit: float,
                 retries: int = 2, num_cpus: int | None = None):
        ray = import_ray()
        self.ray, self.store = ray, store
        self.owns_cluster = not ray.is_initialized()
        if self.owns_cluster:
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=num_cpus, **kwargs)
        self.job_record = bench_to_dict(job)
        self.remote = ray.remote(_task).options(num_cpus=cpus_per_unit, num_gpus=gpus_per_unit,
                                                max_retries=retries, retry_exceptions=True)
        self.units: dict[Any, Unit] = {}
        self.todos: dict[Any, list[int]] = {}

    def start(self, unit: Unit, todo: list[int]) -> Any:
        original = self.store.original_checkpoint.read_bytes() if unit.kind == "method" else None
        ref = self.remote.remote(self.job_record, self.store, unit.to_dict(), todo, original)
        self.units[ref], self.todos[ref] = unit, todo
        return ref

    def wait(self, handles: list[Any]) -> list[tuple[Any, Any]]:
        ready, _ = self.ray.wait(handles, num_returns=1)
        out = []
        for ref in ready:
            unit = self.units.pop(ref)
            todo = self.todos.pop(ref)
            try:
                files, seconds = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                out.append((ref, RuntimeError(_first_line(exc))))
                continue
            for path, data in files:
                write_bytes(path, data)
            out.append((ref, record_unit(self.store, unit, seconds, len(todo), "ray")))
        return out

    def close(self, abort: bool = False) -> None:
        if abort:
            for ref in self.units:
                self.ray.cancel(ref, force=True)
        if self.owns_cluster:
            self.ray.shutdown()


def _first_line(exc: BaseException) -> str:
    """The cause of a Ray task error without Ray's traceback framing."""
    cause = getattr(exc, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    return str(exc).strip().splitlines()[-1]
