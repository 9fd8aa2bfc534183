"""The feature probe's fit in busy worker processes, with numpy's BLAS pool capped and uncapped.

    python benchmarks/bench_probe_threads.py            # 2 workers (this machine's cores), 20 fits each

Every model a bench computes gets a fresh linear head fitted on its penultimate features
(``metrics.features.reheaded_logits``: sklearn's lbfgs logistic regression, numpy's BLAS). The local
backend runs one worker per core, each with its torch threads set; numpy's BLAS pool, left alone,
starts a thread per core in every worker, so W workers run W x cores BLAS threads that spin for
cores the others hold. ``runner.units.torch_threads`` now caps that pool at the unit's thread count.

Each case starts ``--workers`` spawned processes at once, as the local backend does, and each fits
the probe ``--fits`` times on the same features: 2,000 probe examples x 128 features, 10 classes (a
small_cnn's retain probe), drawn as rectified class-centred noise so that the fit takes the
hundreds of lbfgs iterations real features take. Prints a table and writes
benchmarks/results/bench_probe_threads.json; the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from threadpoolctl import threadpool_info, threadpool_limits

from unlearnkit.io import provenance, write_json
from unlearnkit.metrics.features import reheaded_logits

PROBE, WIDTH, CLASSES = 2000, 128, 10


def features(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, PROBE)
    centres = rng.normal(size=(CLASSES, WIDTH)) * 0.6
    x = np.maximum(centres[y] + rng.normal(size=(PROBE, WIDTH)), 0)
    forget = np.maximum(centres[rng.integers(0, CLASSES, 64)] + rng.normal(size=(64, WIDTH)), 0)
    return x, y, forget


def worker(cap: int | None, fits: int, start: mp.Event, out: mp.Queue) -> None:
    x, y, forget = features()
    start.wait()
    times = []
    with threadpool_limits(limits=cap, user_api="blas"):
        blas = max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=0)
        for _ in range(fits):
            t = time.perf_counter()
            reheaded_logits(x, y, CLASSES, forget)
            times.append(time.perf_counter() - t)
    out.put((blas, times))


def run_case(cap: int | None, workers: int, fits: int) -> dict:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(cap, fits, start, out)) for _ in range(workers)]
    for p in procs:
        p.start()
    start.set()  # each worker waits for it after its imports, so the fits overlap
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    per_fit = [s for _, times in results for s in times]
    return {"blas_threads_per_worker": results[0][0], "workers": workers, "fits_per_worker": fits,
            "median_fit_s": statistics.median(per_fit), "max_fit_s": max(per_fit),
            "slowest_worker_s": max(sum(times) for _, times in results)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="worker processes fitting at once")
    ap.add_argument("--fits", type=int, default=20, help="probe fits per worker")
    args = ap.parse_args()
    console = Console()
    rows = [{"case": "uncapped (before)", **run_case(None, args.workers, args.fits)},
            {"case": "capped at 1 (torch_threads)", **run_case(1, args.workers, args.fits)}]
    table = Table(title=f"feature probe fits, {args.workers} workers at once, {args.fits} fits each")
    for col in ("case", "BLAS threads / worker", "median fit s", "slowest fit s", "slowest worker s", "x capped"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for r in rows:
        table.add_row(r["case"], str(r["blas_threads_per_worker"]), f"{r['median_fit_s']:.3f}", f"{r['max_fit_s']:.3f}",
                      f"{r['slowest_worker_s']:.1f}", f"{r['slowest_worker_s'] / rows[1]['slowest_worker_s']:.1f}")
    console.print(table)
    write_json("benchmarks/results/bench_probe_threads.json",
               {"benchmark": "bench_probe_threads", "probe": {"examples": PROBE, "features": WIDTH, "classes": CLASSES},
                "rows": rows, "provenance": provenance()})


if __name__ == "__main__":
    main()
