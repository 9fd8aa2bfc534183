"""The utility guard's tables: each bench folder's rows, guarded and not, against the original.

Reads what ``unlearnkit bench ... --guard`` stored (docs/guard.md) and prints, per row: score, F,
feature F, retain and validation accuracy (full splits, mean over the runs) and their change from
the original's, compute x retrain, and the guard's verdict. A row is ``ok`` where both changes are
at most 2 points, ``marked`` where the guard says it failed, and ``VIOLATION`` where neither (the
guard passed on its probes but the full splits lost more than 2 points).

    python benchmarks/guard_tables.py NAME=BENCH_DIR ... --out benchmarks/results/guard_defaults

writes OUT.json and OUT.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from unlearnkit.io import write_json
from unlearnkit.results.leaderboard import read_leaderboard
from unlearnkit.results.records import model_meta
from unlearnkit.results.store import load_run

TOLERANCE = 0.02


def bench_rows(out: Path) -> dict:
    board = read_leaderboard(out / "leaderboard.json")
    orig = board.original.accuracy
    rows = []
    for r in board.rows:
        runs = sorted((out / "methods" / r.method).glob("seed_*.npz")) if r.method != "retrain (ceiling)" else []
        val = float(np.mean([model_meta(load_run(p)).accuracy["val"] for p in runs])) if runs else None
        d_ret = r.accuracy.retain - orig["retain"]
        d_val = None if val is None else val - orig["val"]
        kept = d_ret >= -TOLERANCE and (d_val is None or d_val >= -TOLERANCE)
        verdict = ("ok" if kept else "marked" if r.guard is not None and r.guard.passed < r.guard.runs
                   else "VIOLATION" if r.guard is not None else "-")
        rows.append({"method": r.method, "score": r.score, "score_interval": r.score_interval, "F": r.forget_quality,
                     "feature_F": r.feature_quality, "retain": r.accuracy.retain, "d_retain": d_ret, "val": val,
                     "d_val": d_val, "test": r.accuracy.test, "compute_ratio": r.compute_ratio, "over_limit": r.over_limit,
                     "guard_passed": None if r.guard is None else f"{r.guard.passed}/{r.guard.runs}",
                     "guard_repaired": None if r.guard is None else r.guard.repaired,
                     "guard_compute": None if r.guard is None else r.guard.compute, "verdict": verdict})
    return {"dataset": board.dataset, "model": board.model, "forget": board.forget, "seeds": board.seeds,
            "setting": board.setting, "original": {k: orig[k] for k in ("retain", "val", "test")},
            "retrain_compute": board.retrain_cost.compute, "rows": rows}


def fmt(v, spec="{:.3f}") -> str:
    return "-" if v is None else spec.format(v)


def markdown(name: str, b: dict) -> list[str]:
    o = b["original"]
    lines = [f"## {name}: {b['dataset']} / {b['model']} / forget {b['forget']}, N = {b['seeds']}", "",
             f"original: retain {o['retain']:.3f}, val {o['val']:.3f}, test {o['test']:.3f}", "",
             "| method | score | F | feature F | retain (Δ) | val (Δ) | compute x retrain | guard | verdict |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in b["rows"]:
        lines.append(f"| {r['method']} | {fmt(r['score'])} | {fmt(r['F'])} | {fmt(r['feature_F'])} | "
                     f"{fmt(r['retain'])} ({fmt(r['d_retain'], '{:+.3f}')}) | {fmt(r['val'])} ({fmt(r['d_val'], '{:+.3f}')}) | "
                     f"{fmt(r['compute_ratio'], '{:.0%}')}{' !' if r['over_limit'] else ''} | {r['guard_passed'] or '-'} | "
                     f"{r['verdict']} |")
    return lines + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("benches", nargs="+", help="NAME=BENCH_DIR")
    ap.add_argument("--out", default="benchmarks/results/guard_defaults")
    args = ap.parse_args()
    result = {}
    for item in args.benches:
        name, _, path = item.partition("=")
        result[name] = bench_rows(Path(path))
    write_json(Path(args.out + ".json"), result)
    md = ["# Method defaults under the utility guard", "", "Written by benchmarks/guard_tables.py (docs/guard.md).", ""]
    for name, b in result.items():
        md += markdown(name, b)
    Path(args.out + ".md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
