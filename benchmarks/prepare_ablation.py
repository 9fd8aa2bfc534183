"""How good are a prepared pool's targets, and which part of shadow_matching makes them so?

    python benchmarks/prepare_ablation.py --pool POOL_A --pool POOL_B --forget-seed 0 --seeds 16 --name f0

For a forget set whose N references and N ceiling retrains are in the cache (a finished bench over
it), and for each pool and each variant of the method's target (every component removed in turn,
the first K shadows of a pool), this computes shadow_matching's per-example targets exactly as the
method does (``shadow_targets``), draws N target confidences per example (one per run, as the runs
do), and scores them against the references as if they were N unlearned models: the F a run
would reach if its fine-tune hit its target exactly. Beside it: the correlation of the target
locations with the references' per-example means (placement), the level difference, the spread
ratio, and the ceiling's F on the same references. It reads the references to evaluate only.

Writes benchmarks/results/prepare_ablation-NAME.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from unlearnkit.engine.checkpoint import load_checkpoint
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.methods import method_config
from unlearnkit.methods.shadow_matching import shadow_targets
from unlearnkit.metrics.forgetting import forgetting_quality, logit_scaled_confidence
from unlearnkit.results.pool import load_pool
from unlearnkit.results.store import BenchStore, load_run
from unlearnkit.runner.setting import make_setting_config, resolve_setting

RESULTS = Path(__file__).parent / "results"
CLIP = 30.0

VARIANTS = {
    "default (affine, shrink 4, draws)": {},
    "no level correction": {"correction": "none"},
    "shift only": {"correction": "shift"},
    "no spread shrinkage": {"shrink": 0.0},
    "pool-wide spread only": {"shrink": 1e6},
    "no draws (every run at the location)": {"spread_scale": 0.0},
    "spread x 0.7": {"spread_scale": 0.7},
    "spread x 1.4": {"spread_scale": 1.4},
}


def score(draws: np.ndarray, refs: np.ndarray) -> float:
    return float(forgetting_quality(draws, refs).forget_quality)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pool", action="append", required=True, help="a prepared pool folder (repeatable)")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--forget", default="identity_skewed:0.02")
    p.add_argument("--forget-seed", type=int, default=0, help="(-1: none, for a class forget)")
    p.add_argument("--seeds", type=int, default=16, help="N, references (and ceiling retrains) per side")
    p.add_argument("--shadows", default="", help="comma-separated K to try on each pool's first K shadows (default: all)")
    p.add_argument("--cache-dir", default="")
    p.add_argument("--name", required=True)
    args = p.parse_args()

    setting = resolve_setting(make_setting_config(dataset=args.dataset, forget=args.forget,
                                                  forget_options={} if args.forget_seed < 0 else {"seed": args.forget_seed}))
    store = BenchStore.for_setting("/tmp/unused", args.cache_dir, setting)
    labels = setting.sets.forget.y.cpu().numpy()
    conf = lambda path: logit_scaled_confidence(load_run(path)["forget_logits"], labels)  # noqa: E731
    refs = np.stack([conf(store.reference(k)) for k in range(args.seeds)])
    ceiling = np.stack([conf(store.reference(args.seeds + k)) for k in range(args.seeds)])
    original, _, _ = load_checkpoint(store.original_checkpoint, device=setting.runtime.device)
    data = setting.unlearn_data
    original_val = predict(original, data.val, runtime=data.runtime)
    ref_mean = np.clip(refs, -CLIP, CLIP).mean(0)
    rows = []
    ceiling_f = score(ceiling, refs)
    rows.append({"pool": "-", "variant": "ceiling (retrains)", "K": 0, "outs": 0, "F": ceiling_f, "of_ceiling": 1.0,
                 "corr": float(np.corrcoef(np.clip(ceiling, -CLIP, CLIP).mean(0), ref_mean)[0, 1]),
                 "level": float(np.clip(ceiling, -CLIP, CLIP).mean() - ref_mean.mean()),
                 "spread_ratio": float(np.clip(ceiling, -CLIP, CLIP).std(0).mean() / np.clip(refs, -CLIP, CLIP).std(0).mean())})
    sizes = [int(v) for v in args.shadows.split(",") if v] or [0]
    for folder in args.pool:
        for k in sizes:
            try:
                pool = load_pool(folder, k or None)
            except InputError as exc:  # a partial pool is reported, not fatal
                print(f"{folder} K={k}: {exc}")
                continue
            share = pool.leave_out
            for variant, overrides in VARIANTS.items():
                cfg = method_config("shadow_matching", {"pool": str(folder), **overrides})
                t = shadow_targets(pool, original_val, data, cfg)
                z = torch.randn(args.seeds, len(labels), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
                draws = (t.location + t.spread * z * cfg.spread_scale).numpy()
                if cfg.spread_scale == 0:
                    draws = draws + 1e-3 * z.numpy()  # identical values would trip the peaky rule on purpose
                f = score(draws, refs)
                loc = t.location.numpy()
                rows.append({"pool": f"share {share}", "variant": variant, "K": pool.size, "outs": float(t.outs.double().mean()),
                             "F": f, "of_ceiling": f / ceiling_f, "corr": float(np.corrcoef(loc, ref_mean)[0, 1]),
                             "level": float(loc.mean() - ref_mean.mean()),
                             "spread_ratio": float(t.spread.mean() * max(cfg.spread_scale, 0) / np.clip(refs, -CLIP, CLIP).std(0).mean())})
                print(rows[-1])
    record = {"forget": args.forget, "forget_seed": args.forget_seed, "dataset": args.dataset, "seeds": args.seeds,
              "rows": rows, "provenance": provenance()}
    out = RESULTS / f"prepare_ablation-{args.name}"
    write_json(out.with_suffix(".json"), record)
    lines = [f"# shadow_matching targets: {args.dataset} `{args.forget}` forget seed {args.forget_seed}, N = {args.seeds}", "",
             "F of N target draws per example scored against the N references (what the runs reach if the fine-tune "
             "hits its targets); corr: target locations vs the references' per-example means; level: mean difference.", "",
             "| pool | variant | K | out-shadows per example | F | of ceiling | corr | level | spread ratio |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['pool']} | {r['variant']} | {r['K']} | {r['outs']:.1f} | {r['F']:.3f} | {r['of_ceiling']:.0%} | "
                     f"{r['corr']:.3f} | {r['level']:+.2f} | {r['spread_ratio']:.2f} |")
    write_bytes(out.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
