"""Cost accounting: wall time, peak memory and optimizer steps of a block of work."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

# The competition rejected unlearning runs above about 20 % of one retrain's time.
COMPETITION_TIME_LIMIT = 0.2


@dataclass
class Cost:
    """What a block of work cost. ``peak_memory_bytes`` is the process peak RSS on a CPU and the
    peak allocated device memory on CUDA; None where the platform cannot tell."""

    seconds: float = 0.0
    peak_memory_bytes: int | None = None
    steps: int = 0

    def to_dict(self) -> dict:
        return {"seconds": self.seconds, "peak_memory_bytes": self.peak_memory_bytes, "steps": self.steps}


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
def measure(device: torch.device | str = "cpu") -> Iterator[Cost]:
    """Measure the enclosed block: wall seconds, peak memory and every optimizer step taken."""
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
        yield cost
    finally:
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


def cost_ratios(cost: Cost, *, retrain_seconds: float | None, retrain_steps: int | None) -> dict:
    """The cost relative to one retrain, and whether the competition's ~20 % time limit is exceeded."""
    time_ratio = cost.seconds / retrain_seconds if retrain_seconds else None
    step_ratio = cost.steps / retrain_steps if retrain_steps else None
    ratio = time_ratio if time_ratio is not None else step_ratio
    return {
        "time_ratio": time_ratio,
        "step_ratio": step_ratio,
        "over_time_limit": bool(ratio is not None and ratio > COMPETITION_TIME_LIMIT),
    }
