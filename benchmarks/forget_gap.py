"""Where a method's forgetting quality is lost against the retrains: the forget set's level, or each example's place.

    python benchmarks/forget_gap.py protocol runs/proto/synthetic_f3 runs/proto/fashion_f0 runs/proto/digits_c2

For each finished bench, from the outputs it stored (``--method``, default scramble_relearn, against
the bench's N references), on the forget examples' logit-scaled confidences:

* the method's and the retrains' mean over models and examples (the forget set's level), the mean
  spread across seeds, and the correlation of the per-example means (the examples' placement);
* F (compat) as measured;
* F with every confidence shifted by the level difference: what a perfect estimate of the
  forget set's level would give, the placement left as it is;
* F with each example's confidences shifted to the retrains' per-example mean: what a perfect
  placement would give, the method's own spread across seeds left as it is.

Both shifts read the retrains: they are diagnostics of where the gap lies, not methods. Writes
benchmarks/results/forget_gap_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from protocol_table import load, refuse

from unlearnkit.errors import InputError
from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.metrics.forgetting import forgetting_quality, logit_scaled_confidence
from unlearnkit.results.leaderboard import Leaderboard
from unlearnkit.results.store import BenchStore, load_run

RESULTS = Path(__file__).parent / "results"
# Confidences are clipped here for the means and spreads only (a model can put an example at
# +-inf); F reads them unclipped, as the score does.
CLIP = 30.0


def confidences(folder: Path, method: str) -> tuple[np.ndarray, np.ndarray, Leaderboard, dict]:
    """``(method [N, E], references [N, E])`` forget-set confidences of a finished bench, its
    leaderboard and its bench.json."""
    board, bench = load(folder)
    if board.row(method) is None:
        refuse(f"{folder}: no {method} row; its methods are {', '.join(board.methods)}")
    try:
        store, n = BenchStore.open(folder), board.seeds
    except InputError as exc:  # a bench.json of another results version, or without its cache keys
        refuse(str(exc))
    runs = {"method": [store.method_run(method, k) for k in range(n)], "reference": [store.reference(k) for k in range(n)]}
    missing = [p for paths in runs.values() for p in paths if not p.is_file()]
    if missing or not store.per_example.is_file():
        refuse(f"{folder}: {missing[0] if missing else store.per_example} is missing; the bench's stored outputs "
               "(and its references in the cache it used) are needed")
    labels = np.load(store.per_example)["forget_label"]
    mine, refs = (np.stack([logit_scaled_confidence(load_run(p)["forget_logits"], labels) for p in runs[side]])
                  for side in ("method", "reference"))
    return mine, refs, board, bench


def gap(mine: np.ndarray, refs: np.ndarray) -> dict[str, float]:
    """Level, spread, placement and F as measured, with the level matched, and with each example's mean matched."""
    m, r = np.clip(mine, -CLIP, CLIP), np.clip(refs, -CLIP, CLIP)
    f = lambda x: float(forgetting_quality(x, refs, mode="compat").forget_quality)  # noqa: E731
    return {
        "level": float(m.mean()), "retrain_level": float(r.mean()),
        "spread": float(m.std(0).mean()), "retrain_spread": float(r.std(0).mean()),
        "placement_corr": float(np.corrcoef(m.mean(0), r.mean(0))[0, 1]),
        "f": f(mine), "f_level_matched": f(mine + (r.mean() - m.mean())),
        "f_placement_matched": f(mine + (r.mean(0) - m.mean(0))),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="the table's name: results/forget_gap_NAME.{md,json}")
    ap.add_argument("benches", nargs="+", type=Path, help="finished bench folders")
    ap.add_argument("--method", default="scramble_relearn")
    args = ap.parse_args()
    rows = []
    for folder in args.benches:
        mine, refs, board, bench = confidences(folder, args.method)
        ceiling = board.ceiling.forget_quality if board.ceiling else None
        rows.append({"bench": str(folder), "dataset": board.dataset, "forget": board.forget,
                     "forget_seed": bench["setting"]["forget_config"].get("seed"),
                     "seeds": board.seeds, "ceiling_f": ceiling, **gap(mine, refs)})
    lines = [
        f"# Where `{args.method}` loses forgetting quality: level or placement", "",
        "Logit-scaled confidence on the forget examples: level = mean over models and examples, spread = mean "
        "standard deviation across seeds, placement = correlation of the per-example means with the retrains'. "
        "F as measured; with the level shifted to the retrains'; with each example's mean shifted to the retrains' "
        "(both shifts read the retrains: diagnostics, not methods).", "",
        "| bench | forget set | level (retrains') | spread (retrains') | placement | F | F, level matched "
        "| F, placement matched | ceiling F |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        which = r["forget"] if r["forget_seed"] is None else f"{r['forget']} seed {r['forget_seed']}"
        lines.append(
            f"| {Path(r['bench']).name} | {r['dataset']} {which} | {r['level']:.2f} ({r['retrain_level']:.2f}) "
            f"| {r['spread']:.2f} ({r['retrain_spread']:.2f}) | {r['placement_corr']:.2f} | {r['f']:.3f} "
            f"| {r['f_level_matched']:.3f} | {r['f_placement_matched']:.3f} "
            f"| {'' if r['ceiling_f'] is None else format(r['ceiling_f'], '.3f')} |")
    out = RESULTS / f"forget_gap_{args.name}"
    write_bytes(out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    write_json(out.with_suffix(".json"), {"benchmark": f"forget_gap_{args.name}", "method": args.method, "rows": rows,
                                          "provenance": provenance()})
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
