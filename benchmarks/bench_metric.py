"""Forgetting-quality speed: seconds and peak memory per mode for N models x E forget examples.

    python benchmarks/bench_metric.py                    # N in {64, 512} x E in {100, 3000}
    python benchmarks/bench_metric.py --models 512 --examples 3000 --modes compat

The statistics are synthetic logit-scaled confidences: per example a location in [-4, 8] and a
spread in [0.5, 3], the unlearned models slightly shifted. Peak memory is the process's peak RSS
during the call (torch and the input arrays included). Prints a table and writes
benchmarks/results/bench_metric.json.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from unlearnkit.metrics import MODES, forgetting_quality
from unlearnkit.metrics.efficiency import measure
from unlearnkit.io import provenance, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "bench_metric.json"


def statistics(n_models: int, n_examples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``[N, E]`` unlearned and retrained statistics shaped like logit-scaled confidences."""
    rng = np.random.default_rng(seed)
    loc = rng.uniform(-4, 8, n_examples)
    scale = rng.uniform(0.5, 3, n_examples)
    shift = rng.normal(0, 0.3, n_examples) * scale
    retrained = loc + scale * rng.normal(size=(n_models, n_examples))
    unlearned = loc + shift + scale * rng.normal(size=(n_models, n_examples))
    return unlearned, retrained


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="64,512", help="comma-separated N values")
    ap.add_argument("--examples", default="100,3000", help="comma-separated E values")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()

    console = Console()
    table = Table(title="forgetting quality: time and peak memory")
    for col in ("N", "E", "mode", "seconds", "ms / example", "peak MB", "F"):
        table.add_column(col, justify="right")
    rows = []
    forgetting_quality(*statistics(16, 8), mode="compat")  # warm-up: imports, thread pools
    for n in (int(x) for x in args.models.split(",")):
        for e in (int(x) for x in args.examples.split(",")):
            unlearned, retrained = statistics(n, e)
            for mode in args.modes.split(","):
                with measure("cpu") as cost:
                    result = forgetting_quality(unlearned, retrained, mode=mode)
                peak_mb = None if cost.peak_memory_bytes is None else cost.peak_memory_bytes / 2**20
                row = {
                    "n_models": n,
                    "n_examples": e,
                    "mode": mode,
                    "seconds": cost.seconds,
                    "peak_mb": peak_mb,
                    "forget_quality": result.forget_quality,
                    "load_average_1m": os.getloadavg()[0],
                }
                rows.append(row)
                table.add_row(
                    str(n), str(e), mode, f"{cost.seconds:.2f}", f"{1000 * cost.seconds / e:.2f}",
                    "n/a" if peak_mb is None else f"{peak_mb:.0f}", f"{result.forget_quality:.4f}",
                )
    console.print(table)
    write_json(args.out, {
        "benchmark": "bench_metric",
        "rows": rows,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "provenance": provenance(),
    })
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
