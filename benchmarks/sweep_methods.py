"""The sweep behind every method's ``auto`` defaults for small_cnn (unlearnkit.methods.defaults).

    python benchmarks/sweep_methods.py                       # every method, 2 processes
    python benchmarks/sweep_methods.py --methods ssd,scrub --workers 1

Procedure (stated here, recorded in benchmarks/results/sweep_methods.{json,md}):

1. Tuning settings, four forget sets on three originals: the built-in dataset with two identity
   forget sets (``identity_skewed:0.02`` with forget seeds 1 and 0, the latter the default bench's),
   ``digits`` with a random 5 % forget set, and ``digits`` with a whole class (``class:3``).
   Validation setting, not used by the choice (but not unseen: see results/tuning_log.md): ``fashion_mnist`` (5,000 training photos at 16x16,
   a random 2 % forget set).
2. Per setting: one original and two retrains (seeds 0, 1; the retrain is timed, one thread).
3. Per method: the reference defaults (uncapped: what the authors ran), then candidates stated
   relative to the setting (:class:`~unlearnkit.methods.defaults.OfRecipe`: epochs as a fraction
   of the retrain's, learning rates as multiples of the recipe's), each run once (seed 0) under a
   budget of 20 % of one retrain's optimizer steps.
4. The loss of a model on a setting is how far it is from the retrains where the score looks:
   ``|forget acc - retrain's| + |forget confidence - retrain's|`` (confidence: mean probability of
   the true label) plus any retain or validation accuracy below the retrains' (a model with
   non-finite outputs: 4, every term at its maximum). A candidate's gap closed on a setting is
   ``(the original's loss - its loss) / max(the original's loss, 0.5)``: 1 is a retrain, 0 doing
   nothing, negative worse than nothing. The floor keeps a setting whose original is already near
   the retrains (a random forget set) from turning small damage into huge negatives, while that
   damage still counts. The tuning score is the mean over the tuning settings, so each counts the
   same.
5. Chosen: the most gap closed among the reference defaults and the candidates that are within
   the budget (never stopped by the step cap, at most 20 % of a retrain's steps and median time)
   and *safe* (lose at most 5 points of the original's retain accuracy on any tuning setting). If
   none closes at least a quarter of the gap, the method keeps its reference defaults where they
   are safe, else takes its safe setting with the most gap closed whatever its cost, else (nothing
   tried is safe) the setting that loses the least retain accuracy; the leaderboard marks any
   time over 20 %.

The chosen column is copied by hand into ``TRANSFER`` in src/unlearnkit/methods/defaults.py; a
test checks the two agree.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import math
import multiprocessing as mp
import os
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from unlearnkit.config import to_dict
from unlearnkit.engine.checkpoint import load_checkpoint, save_checkpoint
from unlearnkit.engine.train import predict, train_model
from unlearnkit.methods import method_config, run_method
from unlearnkit.methods.defaults import E, L, describe, resolve_values
from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.metrics.efficiency import measure, retrain_compute, retrain_steps
from unlearnkit.runner.setting import make_setting_config, resolve_setting

BUDGET = 0.2
USEFUL = 0.25
FLOOR = 0.5  # the smallest gap a setting is measured against (see step 4)
MEASURES = ("forget", "confidence", "retain", "val")
RETAIN_DROP = 0.05  # the most retain accuracy a chosen candidate may lose on any tuning setting
WORST = 4.0  # the loss of a model with non-finite outputs: every term at its maximum
CACHE = Path(__file__).parent / ".cache" / "sweep"
OUT = Path(__file__).parent / "results" / "sweep_methods"

SETTINGS = {
    "synthetic/identity_skewed": dict(dataset="synthetic", forget="identity_skewed:0.02", forget_options={"seed": 1}),
    "synthetic/identity_skewed_0": dict(dataset="synthetic", forget="identity_skewed:0.02"),
    "digits/random": dict(dataset="digits", forget="random:0.05"),
    "digits/class": dict(dataset="digits", forget="class:3"),
    "fashion_mnist/random": dict(dataset="fashion_mnist", forget="random:0.02",
                                 dataset_options={"train_size": 5556, "test_size": 2000, "image_size": 16}),
}
TUNING = ("synthetic/identity_skewed", "synthetic/identity_skewed_0", "digits/random", "digits/class")
VALIDATION = "fashion_mnist/random"


def grid(**axes) -> list[dict]:
    """Every combination of ``axes`` (each a list of values; a dict value merges its items)."""
    out = [{}]
    for key, values in axes.items():
        out = [{**c, **(v if isinstance(v, dict) else {key: v})} for c in out for v in values]
    return out


# Candidates per method, besides the reference defaults (always run first). The recipe is 20
# epochs at batch 128, so E(0.1) is 2 epochs: 20 % of a retrain's steps at batch 64.
NO_BN = {"track_forget_norm_stats": False}
CANDIDATES: dict[str, list[dict]] = {
    "finetune": grid(epochs=[E(0.05), E(0.1)], lr=[L(1 / 3), L(1), L(3), L(10)]),
    "salun": grid(epochs=[E(0.1), E(0.2)], lr=[L(13 / 3), L(26 / 3)]),
    "cf_k": grid(k=[1, 2, 3], epochs=[E(0.1)], lr=[L(10 / 3), L(10), L(30)]),
    "eu_k": grid(k=[1, 2], epochs=[E(0.1)], lr=[L(10 / 3), L(10)]),
    "kookmin": grid(epochs=[E(0.05), E(0.1)], lr=[L(1 / 3), L(1), L(3), L(10)]),
    "seif": grid(epochs=[E(0.1)], lr=[L(7 / 30), L(1), L(10 / 3)], other_class_weight=[0.05, 1.0], first_noise_std=[0.6, 0.2]),
    "fanchuan": grid(epochs=[E(0.1), E(0.2)], lrs=[{"forget_lr": L(0.1), "retain_lr": L(1 / 3)},
                                                   {"forget_lr": L(2 / 3), "retain_lr": L(5 / 6)}]),
    "scrub": grid(epochs=[E(0.1), E(0.15)], lr=[L(1 / 6), L(1 / 3), L(1 / 2)]),
    "ssd": grid(alpha=[7.0, 5.0, 4.0, 3.0, 2.0]),
    "neggrad_plus": grid(epochs=[E(0.1), E(0.2)], alpha=[0.95, 0.98, 0.99], lr=[L(1), L(10 / 3)]),
    "neggrad": grid(lr=[L(1 / 30), L(1 / 75), L(1 / 150)], bn=[NO_BN]),
    "bad_teacher": grid(epochs=[E(0.05), E(0.15), E(0.5)], lr=[L(1 / 30), L(1 / 3)]),
    "boundary_shrink": grid(lr=[L(1 / 30), L(1 / 300), L(1 / 3000)], bn=[{"freeze_norm_stats": True}]),
    "euclid": grid(ep=[{"distill_epochs": 1, "retain_epochs": 1}],
                   lrs=[{"lr": L(f), "distill_lr": L(0.9 * f)} for f in (1 / 30, 1 / 10, 1 / 3, 10 / 3, 10)], temperature=[5.0, 2.0])
              + grid(lrs=[{"lr": L(f), "distill_lr": L(0.9 * f)} for f in (10, 50 / 3)], temperature=[2.0]),  # the reference's 3 + 3 epochs
    "gan": grid(epochs=[E(0.05), E(0.1)], lr=[L(1 / 3), L(1)]),
    "l1_sparse": grid(epochs=[E(0.15), E(0.3)], lr=[L(10 / 3), L(10)]),
    "random_label": grid(epochs=[E(0.1), E(0.2)], lr=[L(10 / 3), L(10)], bn=[{}, NO_BN]),
    "noise_injection": grid(ep=[{"reset_epochs": 1, "noise_epochs": 1}],
                            lrs=[{"lr": L(1 / 15), "fine_lrs": (2e-4, 2e-4, 2e-4, 1e-3)},
                                 {"lr": L(4 / 3), "fine_lrs": (4e-3, 4e-3, 4e-3, 1e-2)},
                                 {"lr": L(1 / 15), "fine_lrs": (2e-4, 2e-4, 2e-4, 1e-3), "noise_std": 0.01},
                                 {"lr": L(4 / 3), "fine_lrs": (4e-3, 4e-3, 4e-3, 1e-2), "noise_std": 0.01}]),
    "oleszko": grid(epochs=[E(0.1)], p=[{"prune_fraction": 0.99, "lr": L(1 / 6)}, {"prune_fraction": 0.95, "lr": L(5 / 3)},
                                        {"prune_fraction": 0.9, "lr": L(5 / 3)}, {"prune_fraction": 0.7, "lr": L(5 / 3)},
                                        {"prune_fraction": 0.5, "lr": L(5 / 3)}]),
    "transposed": grid(epochs=[E(0.05), E(0.1)], lr=[L(1 / 30), L(1 / 3), L(10 / 3)]) + grid(epochs=[E(0.15), E(0.25)], lr=[L(10 / 3)])
                  + grid(epochs=[E(0.5)], lr=[L(10 / 3), L(10)])
                  + grid(optimizer=["adam"], epochs=[E(0.1)], lr=[L(1 / 3), L(1)])
                  + grid(optimizer=["adam"], batch_size=[128], epochs=[E(0.2)], lr=[L(1 / 3), L(1), L(3)]),
    "orthogonal_surgery": grid(surgery_lr=[L(3), L(10), L(30)], batch_size=[256], epochs=[2, 4]),
    "activation_pruning": grid(lr=[L(1 / 10), L(1 / 3), L(1)], epochs=[2, 5]),
    "fisher": [],
}


def config_for(name: str) -> dict:
    return dict(SETTINGS[name])


@functools.lru_cache(maxsize=None)
def prepared(name: str):
    """The resolved setting, its original, its two retrains and the retrain's seconds (cached on disk)."""
    setting = resolve_setting(make_setting_config(**config_for(name)))
    folder = CACHE / name.replace("/", "__")
    models, seconds = [], []
    for tag, train, seed in (("original", setting.sets.train, 0), ("retrain0", setting.sets.retain, 0), ("retrain1", setting.sets.retain, 1)):
        path = folder / f"{tag}.safetensors"
        if path.exists():
            model, _, info = load_checkpoint(path)
        else:
            with measure(setting.runtime.device) as cost:
                model = train_model(setting.spec, train, setting.sets.val, setting.recipe, seed=seed).model
            info = {"seconds": cost.seconds}
            save_checkpoint(path, model, setting.spec, info)
        models.append(model.eval())
        seconds.append(info["seconds"])
    return setting, models[0], models[1:], sum(seconds[1:]) / 2


def measures(model, setting) -> dict[str, float]:
    """Forget accuracy and confidence, retain and validation accuracy of ``model``."""
    out = {}
    for key, data in (("forget", setting.sets.forget), ("retain", setting.sets.retain), ("val", setting.sets.val)):
        logits = predict(model, data, runtime=setting.runtime)
        out[key] = float((logits.argmax(1) == data.y).float().mean())
        if key == "forget":
            out["confidence"] = float(logits.softmax(1).gather(1, data.y[:, None]).mean())
    return out


def loss(m: dict, ref: dict) -> float:
    """Distance from the retrains' forget behaviour plus utility lost below theirs (see the docstring)."""
    if not all(math.isfinite(v) for v in m.values()):
        return WORST
    return (abs(m["forget"] - ref["forget"]) + abs(m["confidence"] - ref["confidence"])
            + max(0.0, ref["retain"] - m["retain"]) + max(0.0, ref["val"] - m["val"]))


@functools.lru_cache(maxsize=None)
def reference(name: str) -> dict:
    setting, original, retrains, seconds = prepared(name)
    rs = [measures(r, setting) for r in retrains]
    ref = {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]}
    steps = retrain_steps(len(setting.sets.retain), setting.recipe.batch_size, setting.recipe.epochs)
    return {"original": measures(original, setting), "retrain": ref, "retrain_seconds": seconds, "retrain_steps": steps}


def run_candidate(task: tuple[str, str, int]) -> dict:
    """One method run: ``(setting, method, candidate index)``; index -1 is the reference defaults, uncapped."""
    name, method, index = task
    setting, original, _, _ = prepared(name)
    ref = reference(name)
    values = {} if index < 0 else CANDIDATES[method][index]
    cfg = method_config(method, resolve_values(values, setting.recipe))
    # The cap is on compute (example passes, engine.compute), so work without optimizer steps counts too.
    cap = None if index < 0 else BUDGET * retrain_compute(len(setting.sets.retain), len(setting.sets.val), setting.recipe)
    result = run_method(method, original, setting.unlearn_data, cfg, seed=0, max_compute=cap)
    m = measures(result.model, setting)
    return {"setting": name, "method": method, "index": index, **m, "loss": loss(m, ref["retrain"]),
            "time_ratio": result.cost.seconds / ref["retrain_seconds"], "step_ratio": result.cost.steps / ref["retrain_steps"],
            "stopped_by_budget": result.stopped_by_budget, "config": to_dict(cfg)}


def recorded(methods: list[str]) -> dict[tuple[str, str, int], dict]:
    """The runs in the last JSON whose candidate still resolves to the config that ran, by (setting, method, index)."""
    path = OUT.with_suffix(".json")
    if not path.exists():
        return {}
    out = {}
    for m, result in json.loads(path.read_text())["methods"].items():
        if m not in methods:
            continue
        for row in result["rows"]:
            for r in row["runs"]:
                i = r["index"]
                if i >= len(CANDIDATES[m]):
                    continue
                recipe = make_setting_config(**config_for(r["setting"])).train
                now = to_dict(method_config(m, resolve_values({} if i < 0 else CANDIDATES[m][i], recipe)))
                if json.loads(json.dumps(now)) == r["config"]:
                    out[(r["setting"], m, i)] = r
    return out


def by_candidate(runs: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """``runs`` grouped by (method, candidate index)."""
    by: dict[tuple[str, int], list[dict]] = {}
    for r in runs:
        by.setdefault((r["method"], r["index"]), []).append(r)
    return by


def _init() -> None:
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def gap_closed(rows: list[dict], refs: dict, settings) -> float:
    """The mean over ``settings`` of (the original's loss - the candidate's) / max(the original's loss, FLOOR)."""
    per = []
    for s in settings:
        base = loss(refs[s]["original"], refs[s]["retrain"])
        run = next(r for r in rows if r["setting"] == s)
        per.append((base - loss({k: run[k] for k in MEASURES}, refs[s]["retrain"])) / max(base, FLOOR))
    return sum(per) / len(per)


def fits(rows: list[dict]) -> bool:
    """Within the budget: never stopped by the step cap, at most BUDGET x a retrain's steps on every
    tuning setting, and at most BUDGET x its time on their median."""
    tune = [r for r in rows if r["setting"] in TUNING]
    times = sorted(r["time_ratio"] for r in tune)
    return (not any(r["stopped_by_budget"] for r in tune) and all(r["step_ratio"] <= BUDGET for r in tune)
            and times[len(times) // 2] <= BUDGET)


def safe(rows: list[dict], refs: dict) -> bool:
    """Within RETAIN_DROP of the original's retain accuracy on every tuning setting."""
    return all(r["retain"] >= refs[r["setting"]]["original"]["retain"] - RETAIN_DROP for r in rows if r["setting"] in TUNING)


VERDICTS = {
    "chosen": "the most gap closed within the budget",
    "reference": "no useful setting within the budget: the reference defaults",
    "safe": "no useful setting within the budget, and the reference defaults damage the model: the safest best setting",
    "damaging": "every setting tried loses more than 5 points of retain accuracy: the least damaging one",
}


def choose(method: str, by: dict, refs: dict) -> tuple[int, str]:
    """(candidate index, -1 for the reference defaults; a VERDICTS key), by step 5 of the procedure."""
    scored = [(gap_closed(by[(method, i)], refs, TUNING), i) for i in range(-1, len(CANDIDATES[method]))]
    ok = [(g, i) for g, i in scored if safe(by[(method, i)], refs)]
    best = max(((g, i) for g, i in ok if fits(by[(method, i)])), default=None)
    if best is not None and best[0] >= USEFUL:
        return best[1], "chosen"
    if safe(by[(method, -1)], refs):
        return -1, "reference"
    if ok:
        return max(ok)[1], "safe"
    return min(range(-1, len(CANDIDATES[method])), key=lambda i: worst_drop(by[(method, i)], refs)), "damaging"


def worst_drop(rows: list[dict], refs: dict) -> float:
    """The most retain accuracy lost against the original on any tuning setting."""
    return max(refs[r["setting"]]["original"]["retain"] - r["retain"] for r in rows if r["setting"] in TUNING)


def _md_row(method: str, result: dict) -> str:
    """One row of the .md table: the chosen setting, why, and its gap closed against the reference defaults'."""
    pick, ref = result["rows"][result["chosen"] + 1], result["rows"][0]
    return (f"| {method} | {pick['values']} | {result['verdict']} | {ref['tuning']:+.3f} / {ref['validation']:+.3f} | "
            f"{pick['tuning']:+.3f} / {pick['validation']:+.3f} | {pick['time_ratio']:.0%}{'' if pick['fits'] else ' !'} |")


def before_after(results: dict) -> list[str]:
    """Rows of "reference defaults -> auto" forget / retain accuracy on the default bench's forget set
    and on the validation setting, for every method whose auto setting is not its reference defaults."""
    out = ["| method | built-in (the default bench's forget set): forget / retain | "
           f"{VALIDATION} (validation): forget / retain |", "|---|---|---|"]
    for m, r in results.items():
        if r["chosen"] < 0:
            continue
        cells = []
        for s in ("synthetic/identity_skewed_0", VALIDATION):
            a, b = (next(x for x in row["runs"] if x["setting"] == s) for row in (r["rows"][0], r["rows"][r["chosen"] + 1]))
            cells.append(f"{a['forget']:.2f} / {a['retain']:.2f} -> {b['forget']:.2f} / {b['retain']:.2f}")
        out.append(f"| {m} | {cells[0]} | {cells[1]} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", default=",".join(CANDIDATES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reuse", action="store_true",
                    help="keep the runs recorded in the JSON whose candidate and config are unchanged; run only the rest")
    args = ap.parse_args()
    methods = args.methods.split(",")
    unknown = [m for m in methods if m not in CANDIDATES]
    if unknown:
        ap.error(f"--methods: no sweep for {', '.join(unknown)}; known: {', '.join(CANDIDATES)}")
    console = Console()
    start = time.perf_counter()
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(args.workers, mp_context=ctx, initializer=_init) as pool:
        refs = dict(zip(SETTINGS, pool.map(reference, SETTINGS)))
        kept = recorded(methods) if args.reuse else {}
        tasks = [(s, m, i) for m in methods for i in range(-1, len(CANDIDATES[m])) for s in TUNING]
        runs = [kept[t] for t in tasks if t in kept] + list(pool.map(run_candidate, [t for t in tasks if t not in kept]))
        # Validation: the reference defaults and the chosen setting.
        picks = {m: choose(m, by_candidate(runs), refs) for m in methods}
        val_tasks = [(VALIDATION, m, i) for m in methods for i in {-1, picks[m][0]}]
        runs += [kept[t] for t in val_tasks if t in kept] + list(pool.map(run_candidate, [t for t in val_tasks if t not in kept]))
    by = by_candidate(runs)
    table = Table(title=f"sweep: gap to retrain closed (tuning: {', '.join(TUNING)}; validation: {VALIDATION})")
    for col in ("method", "candidate", "tuning", "validation", "x retrain (time)", "x retrain (steps)", ""):
        table.add_column(col)
    results = {}
    for m in methods:
        rows = []
        for i in range(-1, len(CANDIDATES[m])):
            rs = by[(m, i)]
            tune = [r for r in rs if r["setting"] in TUNING]
            val = [r for r in rs if r["setting"] == VALIDATION]
            row = {"index": i, "values": "reference defaults" if i < 0 else describe(CANDIDATES[m][i]),
                   "tuning": gap_closed(rs, refs, TUNING), "validation": gap_closed(rs, refs, (VALIDATION,)) if val else None,
                   "time_ratio": sorted(r["time_ratio"] for r in tune)[len(tune) // 2],
                   "step_ratio": max(r["step_ratio"] for r in tune), "fits": fits(rs), "safe": safe(rs, refs),
                   "stopped_by_budget": any(r["stopped_by_budget"] for r in tune), "chosen": picks[m][0] == i, "runs": rs}
            rows.append(row)
            mark = ("chosen" if row["chosen"] else "") + ("" if row["fits"] else " over budget") + ("" if row["safe"] else " unsafe")
            table.add_row(m if i < 0 else "", row["values"], f"{row['tuning']:+.3f}",
                          "" if row["validation"] is None else f"{row['validation']:+.3f}",
                          f"{row['time_ratio']:.0%}", f"{row['step_ratio']:.0%}", mark.strip())
        index, verdict = picks[m]
        results[m] = {"chosen": index, "verdict": verdict, "over_budget": not rows[index + 1]["fits"], "rows": rows}
    console.print(table)
    if args.reuse and OUT.with_suffix(".json").exists():
        earlier = json.loads(OUT.with_suffix(".json").read_text())["methods"]
        results = {m: results.get(m, earlier.get(m)) for m in CANDIDATES if m in results or m in earlier}
    md = [_md_row(m, r) for m, r in results.items()]
    header = ("| method | setting | why | reference defaults: gap closed, tuning / validation | chosen: tuning / validation | "
              "x retrain (time; ! over 20 %) |\n|---|---|---|---|---|---|\n")
    legend = "\n".join(f"* {k}: {v}" for k, v in VERDICTS.items())
    write_bytes(OUT.with_suffix(".md"), (f"# Sweep of the small_cnn defaults\n\n{__doc__.split('Procedure')[1].split('The chosen')[0].strip()}\n\n"
               + legend + "\n\n" + header + "\n".join(md)
               + "\n\n## Reference defaults -> auto (one seed each)\n\n" + "\n".join(before_after(results)) + "\n").encode())
    write_json(OUT.with_suffix(".json"), {
        "benchmark": "sweep_methods", "budget": BUDGET, "useful": USEFUL, "tuning": TUNING, "validation": VALIDATION,
        "settings": SETTINGS, "references": refs, "methods": results, "seconds": time.perf_counter() - start,
        "provenance": provenance(),
    })
    console.print(f"wrote {OUT.with_suffix('.json')} and .md in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
