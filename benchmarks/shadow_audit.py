"""How well does the shadow-based audit track the exact (ε, δ) score? Benches with both, compared.

    python benchmarks/shadow_audit.py --pool POOL --name synthetic_f8_f9_f10 runs/f8 runs/f9 runs/f10

For each finished ``unlearnkit bench`` folder (its references cached), every method row's N runs
and the N ceiling retrains are scored twice: against the bench's N exact references (F, the
leaderboard's) and against N approximate references drawn from the pool's second half
(``runner.shadow_audit``: what ``unlearnkit forget`` reports when it has a pool and no retrains).
The first row of each bench is the audit's own ceiling, as ``forget`` reports it: N draws from the
pool's first half scored against the second half's. A prepared method's row whose targets came from
the audit's own shadows (its config's ``shadows``
is not K / 2, the first half) is marked "not independent". The table gives both F, their difference, and whether
the shadow-based F lies inside the exact score's 95 % interval (F_N +- 1.96 jackknife SE, the
leaderboard's forget_quality_interval).
Writes benchmarks/results/shadow_audit-NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from unlearnkit.engine.checkpoint import load_checkpoint
from unlearnkit.engine.train import predict
from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.metrics.forgetting import forgetting_quality, logit_scaled_confidence
from unlearnkit.results.pool import load_pool
from unlearnkit.results.store import BenchStore, load_run, read_bench_record
from unlearnkit.runner.setting import resolve_setting, setting_from_dict
from unlearnkit.runner.shadow_audit import shadow_reference_confidences, split_pool

RESULTS = Path(__file__).parent / "results"


def independent(store: BenchStore, name: str, pool_size: int) -> bool:
    """Whether row ``name`` took nothing from the pool's second half (the audit's references)."""
    path = store.method_dir(name) / "config.json"
    cfg = json.loads(path.read_text())["config"] if path.is_file() else {}
    return "pool" not in cfg or cfg.get("shadows") == pool_size // 2


def compare(bench: Path, pool_dir: str) -> list[dict]:
    """One bench's rows: exact F and shadow-based F of each method and of the ceiling."""
    record = read_bench_record(bench)
    setting = resolve_setting(setting_from_dict(record["setting"]))
    store = BenchStore.for_setting(bench, record["cache"], setting)
    n = int(record["seeds"])
    y = setting.sets.forget.y.cpu().numpy()
    conf = lambda path: logit_scaled_confidence(load_run(path)["forget_logits"], y)  # noqa: E731
    refs = np.stack([conf(store.reference(k)) for k in range(n)])
    original, _, _ = load_checkpoint(store.original_checkpoint, device=setting.runtime.device)
    data = setting.unlearn_data
    pool = load_pool(pool_dir)
    target_half, audit_half = split_pool(pool)
    original_val = predict(original, data.val, runtime=data.runtime)
    approx = shadow_reference_confidences(audit_half, original_val, data, n)
    halves = shadow_reference_confidences(target_half, original_val, data, n, seed=1)
    board = json.loads((bench / "leaderboard.json").read_text())
    # The audit's own ceiling, as `forget` reports it: the first half's draws against the second's.
    rows = [{"bench": str(bench), "method": "pool halves (the audit's ceiling)", "F_exact": None, "F_leaderboard": None,
             "F_shadow": forgetting_quality(halves, approx).forget_quality, "interval": [None, None], "inside": None,
             "independent": True}]
    for row in board["rows"]:
        name = row["method"]
        if name == "retrain (ceiling)":
            runs = np.stack([conf(store.reference(n + k)) for k in range(n)])
        else:
            runs = np.stack([conf(store.method_run(name, k)) for k in range(n)])
        exact = forgetting_quality(runs, refs).forget_quality
        shadow = forgetting_quality(runs, approx).forget_quality
        lo, hi = row.get("forget_quality_interval") or (None, None)
        rows.append({"bench": str(bench), "method": name, "F_exact": exact, "F_leaderboard": row["forget_quality"],
                     "F_shadow": shadow, "interval": [lo, hi],
                     "inside": None if lo is None else bool(lo <= shadow <= hi),
                     "independent": name == "retrain (ceiling)" or independent(store, name, pool.size)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("benches", nargs="+", type=Path, help="finished bench folders")
    ap.add_argument("--pool", required=True, help="the prepared pool the approximate references come from")
    ap.add_argument("--name", required=True)
    args = ap.parse_args()
    rows = [r for b in args.benches for r in compare(b, args.pool)]
    out = RESULTS / f"shadow_audit-{args.name}"
    write_json(out.with_suffix(".json"), {"pool": args.pool, "rows": rows, "provenance": provenance()})
    lines = [f"# Shadow-based audit against the exact score ({args.name})", "",
             "F against N exact references (the bench's) and against N approximate references drawn from the pool's "
             "second half (what `unlearnkit forget` reports with a pool and no retrains). 'inside': the shadow-based F "
             "lies in the exact F's 95 % interval.", "",
             "| bench | method | F exact | F shadow-based | shadow - exact | inside exact interval |", "|---|---|---|---|---|---|"]
    for r in rows:
        inside = "-" if r["inside"] is None else ("yes" if r["inside"] else "no")
        note = "" if r["independent"] else " (targets from the same shadows: not independent)"
        exact, diff = ("-", "-") if r["F_exact"] is None else (f"{r['F_exact']:.3f}", f"{r['F_shadow'] - r['F_exact']:+.3f}")
        lines.append(f"| {Path(r['bench']).name} | {r['method']}{note} | {exact} | {r['F_shadow']:.3f} | {diff} | {inside} |")
    text = "\n".join(lines) + "\n"
    write_bytes(out.with_suffix(".md"), text.encode())
    print(text)


if __name__ == "__main__":
    main()
