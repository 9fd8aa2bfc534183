"""Seed throughput: time per model-epoch and test accuracy of each multi-seed training strategy.

    python benchmarks/bench_training.py                      # small_cnn, 5,000 images, CPU
    python benchmarks/bench_training.py --model resnet18 --device cuda --seeds 16 --block 16

Prints a table and writes benchmarks/results/bench_training[-TAG].json.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from unlearnkit.data.synthetic import SyntheticConfig, load_synthetic
from unlearnkit.engine.ensemble import train_seeds
from unlearnkit.engine.tensors import tensor_set, train_stats
from unlearnkit.engine.train import accuracy, default_recipe, resolve_runtime
from unlearnkit.models import ModelSpec
from unlearnkit.io import provenance, write_json

# name -> (strategy, precision, channels_last)
STRATEGIES = {
    "naive_fp32": ("sequential", "fp32", "off"),
    "fp32_channels_last": ("sequential", "fp32", "on"),
    "bf16": ("sequential", "bf16", "off"),
    "bf16_channels_last": ("sequential", "bf16", "on"),
    "vmap_fp32": ("vmap", "fp32", "off"),
    "vmap_bf16": ("vmap", "bf16", "off"),
    "processes_bf16_channels_last": ("processes", "bf16", "on"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="small_cnn")
    ap.add_argument("--images", type=int, default=5000, help="training images (synthetic)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--block", type=int, default=16, help="models per vmap block")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--tag", default="")
    args = ap.parse_args()

    ds = load_synthetic(SyntheticConfig(people=360, seed=0))
    stats = train_stats(ds)
    train_idx = ds.indices("train")[: args.images]
    train = tensor_set(ds, train_idx, stats=stats)
    test = tensor_set(ds, ds.indices("test"), stats=stats)
    spec = ModelSpec(args.model, ds.num_classes, 3, 32)
    base_cfg = dataclasses.replace(default_recipe(args.model), epochs=args.epochs, keep_best=False, device=args.device)
    seeds = list(range(args.seeds))
    rows = []
    console = Console()
    for name in args.strategies.split(","):
        strategy, precision, cl = STRATEGIES[name]
        cfg = dataclasses.replace(base_cfg, precision=precision, channels_last=cl)
        if strategy == "processes" and args.device != "cpu":
            continue
        # Warm-up (CUDA context, cuDNN autotuning, oneDNN primitive caches) stays out of the timing.
        train_seeds(spec, train.subset(np.arange(min(256, len(train)))), None, dataclasses.replace(cfg, epochs=1),
                    seeds[:2], strategy="sequential" if strategy == "processes" else strategy, block_size=args.block)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        results = train_seeds(spec, train, None, cfg, seeds, strategy=strategy, block_size=args.block)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rt = resolve_runtime(dataclasses.replace(cfg, precision="fp32", channels_last="off"))
        accs = [accuracy(r.model.to(rt.device).float(), test, runtime=rt) for r in results]
        rows.append({
            "strategy": name,
            "engine": strategy,
            "precision": precision,
            "channels_last": cl,
            "seconds": seconds,
            "seconds_per_model_epoch": seconds / (len(seeds) * args.epochs),
            "test_acc_mean": float(np.mean(accs)),
            "test_acc_per_seed": accs,
        })
        console.print(f"{name}: {rows[-1]['seconds_per_model_epoch']:.3f} s/model-epoch, test acc {np.mean(accs):.3f}")
    base = next((r for r in rows if r["strategy"] == "naive_fp32"), rows[0])
    table = Table(title=f"{args.model}, {len(train)} images, {args.seeds} seeds x {args.epochs} epochs, {args.device}")
    for col in ("strategy", "s / model-epoch", "speed-up vs naive fp32", "test acc", "Δ acc (points)"):
        table.add_column(col)
    for r in rows:
        r["speedup_vs_naive"] = base["seconds_per_model_epoch"] / r["seconds_per_model_epoch"]
        r["acc_delta_points"] = 100 * (r["test_acc_mean"] - base["test_acc_mean"])
        table.add_row(
            r["strategy"], f"{r['seconds_per_model_epoch']:.3f}", f"{r['speedup_vs_naive']:.2f}x",
            f"{r['test_acc_mean']:.3f}", f"{r['acc_delta_points']:+.1f}",
        )
    console.print(table)
    out = f"benchmarks/results/bench_training{'-' + args.tag if args.tag else ''}.json"
    write_json(out, {
        "benchmark": "bench_training",
        "args": vars(args),
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine(),
        "rows": rows,
        "provenance": provenance(),
    })
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
