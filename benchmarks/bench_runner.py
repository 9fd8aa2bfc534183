"""Runner throughput: units and models per hour for each backend on this machine.

    python benchmarks/bench_runner.py                  # CPU: local 1 and 2 workers, Ray with 2 CPUs
    python benchmarks/bench_runner.py --gpu            # CUDA: small_cnn and resnet18 at 1, 2, 4, 8 units per GPU

Each row runs the same bench from an empty store and cache (original, references, methods, score),
so it measures everything a cold bench pays. On a GPU machine the rows are Ray runs with
``--gpus-per-unit 1/k``: k units share the GPU, each training its block of models as one vectorised
ensemble. Prints a table and writes benchmarks/results/bench_runner[-cuda].json.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from unlearnkit.io import provenance, write_json
from unlearnkit.runner.bench import Backend, run_bench
from unlearnkit.runner.jobs import make_bench_job, plan_units
from unlearnkit.runner.setting import make_setting_config


def cpu_job(out: Path):
    setting = make_setting_config(dataset_options={"people": 200}, forget="identity_skewed:0.02",
                                  train_options={"epochs": 10})
    return make_bench_job(setting, methods=("finetune", "seif"), seeds=8, out=str(out / "out"), cache_dir=str(out / "cache"))


def gpu_job(out: Path, model: str, seeds: int):
    setting = make_setting_config(dataset_options={"image_size": 32}, forget="identity_skewed:0.02", model=model,
                                  train_options={"epochs": 5, "device": "cuda"})
    return make_bench_job(setting, methods=("finetune",), seeds=seeds, block=16, out=str(out / "out"), cache_dir=str(out / "cache"))


def measure(job, backend: Backend, quiet: Console) -> dict:
    units = [u for u in plan_units(job) if u.kind != "score"]
    start = time.perf_counter()
    run_bench(job, backend, console=quiet)
    wall = time.perf_counter() - start
    models = sum(u.models for u in units)
    return {"units": len(units), "models": models, "seconds": wall,
            "units_per_hour": len(units) / wall * 3600, "models_per_hour": models / wall * 3600}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpu", action="store_true", help="measure units packed per GPU (needs CUDA and Ray)")
    ap.add_argument("--seeds", type=int, default=64, help="models per side on the GPU")
    args = ap.parse_args()
    console = Console()
    quiet = Console(quiet=True)
    rows = []
    if args.gpu:
        cases = [(f"{model}, {k} per GPU", lambda out, m=model: gpu_job(out, m, args.seeds),
                  Backend("ray", cpus_per_unit=1, gpus_per_unit=1 / k))
                 for model in ("small_cnn", "resnet18") for k in (1, 2, 4, 8)]
    else:
        cases = [("local, 1 worker", cpu_job, Backend("local", workers=1)),
                 ("local, 2 workers", cpu_job, Backend("local", workers=2)),
                 ("ray, 2 CPUs", cpu_job, Backend("ray", cpus_per_unit=1))]
    for label, make, backend in cases:
        tmp = Path(tempfile.mkdtemp(prefix="bench_runner_"))
        try:
            rows.append({"case": label, **measure(make(tmp), backend, quiet)})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        console.print(f"{label}: {rows[-1]['seconds']:.0f}s, {rows[-1]['units_per_hour']:.0f} units/h", highlight=False)
    table = Table(title="runner throughput (cold bench: original, references, 2 methods, score)")
    for col in ("backend", "units", "models", "wall s", "units / h", "models / h", "x 1 worker"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in rows:
        table.add_row(r["case"], str(r["units"]), str(r["models"]), f"{r['seconds']:.0f}", f"{r['units_per_hour']:.0f}",
                      f"{r['models_per_hour']:.0f}", f"{rows[0]['seconds'] / r['seconds']:.2f}")
    console.print(table)
    name = "bench_runner-cuda" if args.gpu else "bench_runner"
    write_json(f"benchmarks/results/{name}.json", {"benchmark": name, "rows": rows, "provenance": provenance()})


if __name__ == "__main__":
    main()
