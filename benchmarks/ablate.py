"""Ablation of unlearnkit's own methods on the bench protocol: the method with each component removed.

    python benchmarks/ablate.py                                          # scramble_relearn, built-in dataset, N = 16
    python benchmarks/ablate.py --method heldout_matching
    python benchmarks/ablate.py --dataset digits --forget class:3 --seeds 32

Every variant is one ``unlearnkit bench`` of the method alone with some settings changed, in
its own results folder; all share unlearnkit's cache, so the original and the 2N retrains are
trained once (or not at all after a bench of the same setting).
Prints a table and writes benchmarks/results/ablate_METHOD-DATASET-FORGET-fSEED-nN.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from unlearnkit.config import parse_overrides
from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.results.leaderboard import CEILING
from unlearnkit.runner.bench import Backend, run_bench
from unlearnkit.runner.jobs import make_bench_job
from unlearnkit.runner.setting import make_setting_config

VARIANTS: dict[str, dict[str, dict]] = {
    "scramble_relearn": {
        "full method (defaults)": {},
        "no scramble (relearn from the original)": {"scramble": False},
        "one symmetry for all layers, strength 1": {"per_layer": False, "strength": 1.0},
        "kernels mixed with themselves (strength 0.9)": {"strength": 0.9},
        "no held-out level term": {"level_weight": 0.0},
        "no calibration": {"calibrate": False},
        "none of the three (fine-tuning on R)": {"scramble": False, "level_weight": 0.0, "calibrate": False},
        "class-weighted relearning": {"class_weighted": True},
        "no utility floor": {"retain_floor": 1.0},
        "half the steps (the first defaults' budget)": {"budget": 0.12},
        # The budget study: does relearning for longer close the gap to the ceiling? (no floor: the
        # budget alone decides)
        "twice the steps, no utility floor": {"budget": 0.5, "retain_floor": 1.0},
        "4x the steps (a retrain's), no utility floor": {"budget": 1.0, "retain_floor": 1.0},
    },
    "heldout_matching": {
        "full method (defaults)": {},
        "no look-alike draw (mean of the k)": {"draw": False},
        "no difficulty matching (any held-out example)": {"neighbours": 1_000_000},
        "look-alikes of the same class": {"same_class": True},
        "no retain distillation (cross-entropy)": {"distill": False},
        "no forget matching (distillation only)": {"forget_weight": 0.0},
        "plus reset of the last 2 stages": {"reset": 2},
        "plus shrink-perturb 0.1": {"perturb": 0.1},
        "half the steps": {"budget": 0.03},
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="scramble_relearn", choices=sorted(VARIANTS))
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="dataset options, e.g. image_size=16")
    ap.add_argument("--forget", default="identity_skewed:0.02")
    ap.add_argument("--forget-seed", type=int, default=0)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", default="runs/ablate")
    ap.add_argument("--cache-dir", default="", help="where the original and references are cached (default: unlearnkit's)")
    args = ap.parse_args()
    options = parse_overrides(args.set)
    setting = make_setting_config(dataset=args.dataset, dataset_options=options, forget=args.forget,
                                  forget_options={"seed": args.forget_seed})
    tag = f"{args.dataset}-{args.forget.replace(':', '')}-f{args.forget_seed}-n{args.seeds}"
    method = args.method
    out = Path(args.out) / method / tag
    backend = Backend(workers=args.workers)
    quiet = Console(quiet=True)
    rows, start = [], time.perf_counter()
    for i, (label, overrides) in enumerate(VARIANTS[method].items()):
        job = make_bench_job(setting, methods=(method,), method_options={method: overrides}, seeds=args.seeds,
                             ceiling=i == 0, out=str(out / f"variant{i}"), cache_dir=args.cache_dir)
        board = run_bench(job, backend, console=quiet)
        for row in board.rows:
            if row.method == method or i == 0:
                rows.append({"variant": label if row.method == method else CEILING, "overrides": overrides,
                             "score": row.score, "score_interval": row.score_interval, "forget_quality": row.forget_quality,
                             "forget_quality_bounded": row.forget_quality_bounded, "time_ratio": row.time_ratio,
                             "compute_ratio": row.compute_ratio, "klom_forget": row.klom_forget,
                             "forget": row.accuracy.forget, "retain": row.accuracy.retain, "test": row.accuracy.test})
    rows.sort(key=lambda r: r["variant"] != CEILING)
    table = Table(title=f"{method} ablation: {args.dataset}, {args.forget} (forget seed {args.forget_seed}), N = {args.seeds}")
    cols = ("variant", "score [95 % CI]", "F", "F bounded", "KLoM forget", "forget", "retain", "test", "compute x retrain",
            "time x retrain")
    for col in cols:
        table.add_column(col)
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        ci = f" [{r['score_interval'][0]:.3f}, {r['score_interval'][1]:.3f}]" if r["score_interval"] else ""
        cells = (r["variant"], f"{r['score']:.3f}{ci}", f"{r['forget_quality']:.3f}", f"{r['forget_quality_bounded']:.3f}",
                 f"{r['klom_forget']:.2f}" if r["klom_forget"] is not None else "", f"{r['forget']:.3f}", f"{r['retain']:.3f}",
                 f"{r['test']:.3f}", f"{r['compute_ratio']:.1%}" if r["compute_ratio"] is not None else "",
                 f"{r['time_ratio']:.1%}" if r["time_ratio"] is not None else "")
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    Console().print(table)
    name = str(Path(__file__).parent / "results" / f"ablate_{method}-{tag}")  # the tag holds dots: no with_suffix
    write_bytes(Path(name + ".md"), ("\n".join([f"# {table.title}", "", *md]) + "\n").encode())
    write_json(Path(name + ".json"), {"benchmark": f"ablate_{method}", "dataset": args.dataset, "dataset_options": options,
                                           "forget": args.forget, "forget_seed": args.forget_seed, "seeds": args.seeds,
                                           "rows": rows, "seconds": time.perf_counter() - start, "provenance": provenance()})


if __name__ == "__main__":
    main()
