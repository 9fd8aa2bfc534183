"""How close to a retrain can a method get whose runs aim at a per-example target estimated from m models?

    python benchmarks/target_bound.py --forget-seeds 0,1,2,9,10 --name synthetic
    python benchmarks/target_bound.py --dataset digits --forget class:3 --name digits_c3

A prepared method (shadow_matching) learns, for each forget example, where models that never saw
it put it, from the m shadows that left it out, and moves run k to its own draw around that
location. Its best case is a pool of exact retrains on D minus S whose draws the fine-tune hits
exactly. This script measures that best case on finished benches (N references and N ceiling
retrains in the cache): for m = 1, 2, 4, 8, 16 and N, the location is the mean of m of the ceiling
retrains (exact retrains, never the references), the spread each example's standard deviation
over all N ceiling retrains (as if it were known), and N normal draws per example are scored
against the N references as if they were N unlearned runs. ``inflated`` widens each draw by the
location's own uncertainty (sd^2 x (1 + 1/m), the posterior predictive), which a method could
do. Each cell is the mean over ``--repeats`` choices of the m retrains and draws.

Why it matters: the score is a test between N unlearned and N retrained outputs per example. A
location wrong by e shifts one sample against the other; with N samples each the test sees
e x sqrt(N) / sd, so a location estimated from m models (error variance sd^2 / m) is told apart
at N/m standard deviations squared: reaching the ceiling needs m well above N. A pool of at most
32 retrains that leaves each person out of K x share of them (4 at K = 32, share 1/8) is far
below N = 32. The table says how far, in the score itself.

Writes benchmarks/results/target_bound-NAME.{json,md}. Reads references to evaluate only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.metrics.forgetting import forgetting_quality, logit_scaled_confidence
from unlearnkit.results.store import BenchStore, load_run
from unlearnkit.runner.setting import make_setting_config, resolve_setting

RESULTS = Path(__file__).parent / "results"
CLIP = 30.0  # the confidences are clipped as prepare_ablation clips them before moments are taken


def f_of(draws: np.ndarray, refs: np.ndarray) -> float:
    return float(forgetting_quality(draws, refs).forget_quality)


def cached_confidences(dataset: str, forget: str, forget_seed: int | None, cache_dir: str) -> tuple[np.ndarray, np.ndarray]:
    """(references [N, |S|], ceiling retrains [N, |S|]): the score's statistic on the forget set, from the cache."""
    options = {} if forget_seed is None else {"seed": forget_seed}
    setting = resolve_setting(make_setting_config(dataset=dataset, forget=forget, forget_options=options))
    store = BenchStore.for_setting("/tmp/unused", cache_dir, setting)
    n = 0
    while store.reference(n).is_file():
        n += 1
    if n < 4:
        raise SystemExit(f"{dataset} {forget} seed {forget_seed}: {n} cached retrains; run a bench with its ceiling first")
    labels = setting.sets.forget.y.cpu().numpy()
    conf = [logit_scaled_confidence(load_run(store.reference(k))["forget_logits"], labels) for k in range(n - n % 2)]
    half = len(conf) // 2
    return np.stack(conf[:half]), np.stack(conf[half:])


def bound_rows(refs: np.ndarray, ceiling: np.ndarray, repeats: int, seed: int) -> list[dict]:
    """One row per m: F of N draws around the mean of m exact retrains (plain and inflated)."""
    n = len(refs)
    rng = np.random.default_rng(seed)
    cc = np.clip(ceiling, -CLIP, CLIP)
    sd = cc.std(0, ddof=1)
    rows = [{"m": 0, "what": "ceiling (N retrains)", "F": f_of(ceiling, refs), "F_inflated": None}]
    for m in sorted({1, 2, 4, 8, 16, n} & set(range(1, n + 1))):
        plain, inflated = [], []
        for _ in range(repeats):
            loc = cc[rng.choice(n, m, replace=False)].mean(0)
            z = rng.standard_normal(cc.shape)
            plain.append(f_of(loc + sd * z, refs))
            inflated.append(f_of(loc + sd * np.sqrt(1 + 1 / m) * z, refs))
        rows.append({"m": m, "what": f"mean of {m} exact retrains", "F": float(np.mean(plain)),
                     "F_inflated": float(np.mean(inflated)), "F_sd": float(np.std(plain))})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--forget", default="identity_skewed:0.02")
    ap.add_argument("--forget-seeds", default="", help="comma-separated forget seeds (none for a class forget)")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--cache-dir", default="")
    ap.add_argument("--name", required=True)
    args = ap.parse_args()

    seeds = [int(s) for s in args.forget_seeds.split(",") if s] or [None]
    benches = []
    for s in seeds:
        refs, ceiling = cached_confidences(args.dataset, args.forget, s, args.cache_dir)
        rows = bound_rows(refs, ceiling, args.repeats, seed=0)
        benches.append({"forget_seed": s, "N": len(refs), "forget_examples": refs.shape[1], "rows": rows})
        print(f"seed {s} N={len(refs)}: " + "  ".join(f"m={r['m']} {r['F']:.3f}" for r in rows))
    record = {"dataset": args.dataset, "forget": args.forget, "repeats": args.repeats, "benches": benches,
              "provenance": provenance()}
    out = RESULTS / f"target_bound-{args.name}"
    write_json(out.with_suffix(".json"), record)
    ms = sorted({r["m"] for b in benches for r in b["rows"] if r["m"]})
    lines = [f"# Targets from m exact retrains: {args.dataset} `{args.forget}`", "",
             "F of N normal draws per example around the mean of m exact retrains on D minus S (each example's "
             "spread known), scored against the N references; in brackets, with each draw widened by the "
             f"location's uncertainty (sd x sqrt(1 + 1/m)). Mean of {args.repeats} repeats; % of the ceiling's F.", "",
             "| forget seed | N | ceiling | " + " | ".join(f"m = {m}" for m in ms) + " |",
             "|---|---|---|" + "---|" * len(ms)]
    for b in benches:
        ceil = b["rows"][0]["F"]
        by_m = {r["m"]: r for r in b["rows"][1:]}
        cells = [f"{by_m[m]['F']:.3f} ({by_m[m]['F'] / ceil:.0%}) [{by_m[m]['F_inflated']:.3f}]" if m in by_m else "-" for m in ms]
        seed = "-" if b["forget_seed"] is None else b["forget_seed"]
        lines.append(f"| {seed} | {b['N']} | {ceil:.3f} | " + " | ".join(cells) + " |")
    write_bytes(out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
