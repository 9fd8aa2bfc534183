"""Every registered method once on the built-in dataset: accuracy and cost relative to one retrain.

    python benchmarks/bench_methods.py [--forget identity_skewed:0.05] [--seed 0]

Trains the original small_cnn and one retrain on D \\ S, then runs each method (with its
synthetic/small_cnn preset where it has one) from the original with the same seed, timing it in the
same process. Prints the table and writes benchmarks/results/bench_methods.json.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from setting import synthetic_setting
from unlearnkit.config import to_dict
from unlearnkit.methods import METHODS, run_method
from unlearnkit.metrics.efficiency import COMPETITION_TIME_LIMIT
from unlearnkit.runner.jobs import resolve_method_config
from unlearnkit.runner.setting import make_setting_config
from unlearnkit.io import provenance, write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--forget", default="identity_skewed:0.05")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(METHODS.names()))
    args = ap.parse_args()
    console = Console()
    setting = synthetic_setting(args.forget, args.seed)
    original, retrained, retrain_cost, data = setting.original, setting.retrained, setting.retrain_cost, setting.data
    accuracies = setting.accuracies

    rows = [{"method": "original", **accuracies(original)},
            {"method": "retrain (measured)", **accuracies(retrained), **retrain_cost.to_dict(), "time_ratio": 1.0, "step_ratio": 1.0}]
    for name in args.methods.split(","):
        mcfg, preset = resolve_method_config(name, "auto", make_setting_config())
        result = run_method(name, original, data, mcfg, seed=args.seed)
        rows.append({"method": name, "preset": preset, "config": to_dict(mcfg), **accuracies(result.model),
                     **result.cost.to_dict(), "time_ratio": result.cost.seconds / retrain_cost.seconds,
                     "step_ratio": result.cost.steps / retrain_cost.steps})
        console.print(f"{name}: {rows[-1]['forget']:.3f} / {rows[-1]['retain']:.3f} / {rows[-1]['test']:.3f}, "
                      f"{result.cost.seconds:.1f}s ({rows[-1]['time_ratio']:.1%} of a retrain)")
    table = Table(title=f"synthetic / small_cnn / {args.forget} ({setting.forget_size} examples), seed {args.seed}")
    for col in ("method", "preset", "forget acc", "retain acc", "test acc", "seconds", "x retrain (time)", "x retrain (steps)", "peak MB"):
        table.add_column(col)
    for r in rows:
        over = " !" if r.get("time_ratio", 0) > COMPETITION_TIME_LIMIT and r["method"] not in ("original", "retrain (measured)") else ""
        table.add_row(r["method"], "yes" if r.get("preset") else "", f"{r['forget']:.3f}", f"{r['retain']:.3f}", f"{r['test']:.3f}",
                      f"{r['seconds']:.1f}" if "seconds" in r else "", f"{r['time_ratio']:.1%}{over}" if "time_ratio" in r else "",
                      f"{r['step_ratio']:.1%}" if "step_ratio" in r else "",
                      f"{r['peak_memory_bytes'] / 2**20:.0f}" if r.get("peak_memory_bytes") else "")
    console.print(table)
    write_json("benchmarks/results/bench_methods.json", {"benchmark": "bench_methods", "forget": args.forget,
                                                          "seed": args.seed, "rows": rows, "provenance": provenance()})


if __name__ == "__main__":
    main()
