"""Cost accounting: compute (example passes), wall time, peak memory and optimizer steps of a block of work.

Compute is the measure to compare (:mod:`unlearnkit.engine.compute`: the same on every machine);
wall time is shown beside it, and means something only against a retrain timed under the same
:func:`run_conditions`.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from unlearnkit.engine.compute import count_compute, train_compute
from unlearnkit.engine.train import Runtime, TrainConfig

# The competition rejected unlearning runs above about 20 % of one retrain's time.
COMPETITION_TIME_LIMIT = 0.2


@dataclass
class Cost:
    """What a block of work cost. ``compute`` is in example passes (engine.compute);
    ``peak_memory_bytes`` is the process peak RSS on a CPU and the peak allocated device memory on
    CUDA; None where the platform cannot tell."""

    seconds: float = 0.0
    peak_memory_bytes: int | None = None
    steps: int = 0
    compute: float = 0.0

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "peak_memory_bytes": self.peak_memory_bytes, "steps": self.steps,
                "compute": self.compute}


def _reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets the kernel's peak-RSS counter (Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def proc_bytes(path: str, key: str) -> int | None:
    """A kB figure from a Linux /proc file (e.g. ``VmHWM`` of /proc/self/status) in bytes; None elsewhere."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(f"{key}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _peak_rss() -> int | None:
    return proc_bytes("/proc/self/status", "VmHWM")


@contextlib.contextmanager
def measure(device: torch.device | str = "cpu", *, max_compute: float | None = None) -> Iterator[Cost]:
    """Measure the enclosed block: example passes, wall seconds, peak memory and every optimizer step taken.

    Args:
        device: Where the block runs (CUDA is synchronised around it).
        max_compute: A cap on the block's example passes: work that would pass it raises
            :class:`~unlearnkit.engine.compute.BudgetSpent` before it runs.
    """
    cost = Cost()
    device = torch.device(device)
    counted = {"steps": 0}

    def count(_opt, _args, _kwargs) -> None:
        counted["steps"] += 1

    handle = register_optimizer_step_post_hook(count)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    rss_ok = not cuda and _reset_peak_rss()
    start = time.perf_counter()
    try:
        with count_compute(max_compute) as counter:
            yield cost
    finally:
        cost.compute = counter.total
        if cuda:
            torch.cuda.synchronize(device)
        cost.seconds = time.perf_counter() - start
        handle.remove()
        cost.steps = counted["steps"]
        if cuda:
            cost.peak_memory_bytes = int(torch.cuda.max_memory_allocated(device))
        elif rss_ok:
            cost.peak_memory_bytes = _peak_rss()


def retrain_steps(retain_size: int, batch_size: int, epochs: int) -> int:
    """Optimizer steps of one retrain on ``retain_size`` examples."""
    return epochs * -(-retain_size // batch_size)


def retrain_compute(retain_size: int, val_size: int, recipe: TrainConfig) -> float:
    """Example passes of one retrain on ``retain_size`` examples with ``recipe``: every epoch's
    training passes, and, where the recipe keeps the best-validation epoch, its validation predictions."""
    predicted = val_size if recipe.keep_best and val_size else 0
    return train_compute(retain_size, recipe.epochs, predicted)


def run_conditions(runtime: Runtime) -> dict:
    """Where and how wall time is measured now: host, device, torch threads, precision (bf16 or fp32).

    Two wall times are comparable only when these are equal.
    """
    device = runtime.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return {"host": socket.gethostname(), "device": f"{device.type} ({name})" if device.type == "cuda" else name,
            "threads": torch.get_num_threads(), "precision": "bf16" if runtime.bf16 else "fp32"}


def cost_ratios(cost: Cost, *, retrain_seconds: float | None, retrain_steps: int | None,
                retrain_compute: float | None = None) -> dict:
    """The cost relative to one retrain, and whether the competition's ~20 % limit is exceeded.

    The limit is judged on compute where one retrain's compute is known (the same on every
    machine), else on time, else on steps.
    """
    time_ratio = cost.seconds / retrain_seconds if retrain_seconds else None
    step_ratio = cost.steps / retrain_steps if retrain_steps else None
    compute_ratio = cost.compute / retrain_compute if retrain_compute else None
    ratio = next((r for r in (compute_ratio, time_ratio, step_ratio) if r is not None), None)
    return {
        "compute_ratio": compute_ratio,
        "time_ratio": time_ratio,
        "step_ratio": step_ratio,
        "over_time_limit": bool(ratio is not None and ratio > COMPETITION_TIME_LIMIT),
    }
