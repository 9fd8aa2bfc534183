"""The score unit: every stored model's outputs in, the leaderboard out.

The protocol is the NeurIPS 2023 competition's: N unlearned models U(A(D), S, D) from N method seeds
against N models retrained from scratch on D \\ S; the per-example (ε, δ) forgetting quality on the
forget set, adjusted by retain and test accuracy. A second, independent set of N retrains scored
against the first is the score of a perfect unlearner, the ceiling every other row is read against.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearnkit.metrics.efficiency import COMPETITION_TIME_LIMIT
from unlearnkit.metrics.forgetting import ModelAccuracies, final_score, forgetting_quality, logit_scaled_confidence, score_intervals
from unlearnkit.metrics.klom import klom, margins
from unlearnkit.metrics.mia import loss_mia, svc_mia, ulira
from unlearnkit.results.store import BenchStore, load_run, run_meta
from unlearnkit.runner.units import OUTPUT_SETS

CEILING = "retrain (ceiling)"
# Model subsamples behind each row's intervals: each costs one score (about 30 ms at N = 16 and 124
# forget examples on one core); 100 estimate the standard error to within about 14 %.
INTERVAL_SUBSAMPLES = 100
# score_intervals' coverage was measured from N = 16 on; below it a row has no interval.
MIN_INTERVAL_MODELS = 16


def score_bench(job, setting, store: BenchStore) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """The leaderboard record of a finished bench (rows best first), read from the store, and each
    row's per-example ε (``{name: {"compat": [E], "bounded": [E]}}``)."""
    n = job.seeds
    references = [load_run(store.reference(k)) for k in range(n)]
    entries = {}
    if job.ceiling:
        entries[CEILING] = [load_run(store.reference(k)) for k in range(n, 2 * n)]
    for name in job.methods:
        entries[name] = [load_run(store.method_run(name, k)) for k in range(n)]
    original = load_run(store.original_outputs)
    diverged_refs = [run_meta(r)["k"] for r in references if "diverged" in run_meta(r)]
    if diverged_refs:
        raise ValueError(f"retrained references {diverged_refs} produced non-finite logits; the recipe diverges. "
                         "Lower train.lr or use train.precision=fp32")
    sets = setting.sets
    forget_y = sets.forget.y.cpu().numpy()
    ref_conf = np.stack([logit_scaled_confidence(r["forget_logits"], forget_y) for r in references])
    ref_acc = {k: _mean([run_meta(r)["accuracy"][k] for r in references]) for k in ("retain", "test", "forget")}
    retrain = retrain_cost(references + entries.get(CEILING, []), run_meta(original), setting)
    ref_metas = [run_meta(r) for r in references]
    ref_margins = {name: _margins(references, name, sets) for name in OUTPUT_SETS}
    scored = {name: _row(name, records, ref_conf, ref_acc, retrain, sets, ref_metas, ref_margins)
              for name, records in entries.items()}
    rows = sorted((row for row, _ in scored.values()), key=lambda r: -r["score"])
    per_example = {name: eps for name, (_, eps) in scored.items()}
    orig_meta = run_meta(original)
    return {
        "rows": rows,
        "seeds": n,
        "forget_examples": int(len(forget_y)),
        "dataset": setting.dataset.name,
        "model": setting.spec.name,
        "forget": setting.config.forget_label,
        "budget": job.budget,
        "retrain_cost": retrain,
        "original": {"accuracy": orig_meta["accuracy"], "seed": orig_meta["seed"], "seconds": orig_meta["seconds"]},
        "setting": setting.summary(),
    }, per_example


def per_example_arrays(setting, per_example: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """What the report reads besides the leaderboard (``OUT/per_example.npz``).

    ``methods`` [R] names the rows of ``eps_compat`` and ``eps_bounded`` [R, E] (per-example ε of
    each row, in the leaderboard's modes); ``forget_index``, ``forget_label`` and ``forget_group``
    [E] say which training example each column is (dataset index, class, person or -1);
    ``forget_images`` [E, H, W, C] are the examples themselves (uint8), so the report can show them
    without the dataset.
    """
    ds, idx = setting.dataset, setting.forget.indices
    names = list(per_example)
    return {
        "methods": np.array(names),
        "eps_compat": np.stack([per_example[n]["compat"] for n in names]).astype(np.float32),
        "eps_bounded": np.stack([per_example[n]["bounded"] for n in names]).astype(np.float32),
        "forget_index": idx.astype(np.int64),
        "forget_label": ds.labels[idx].astype(np.int64),
        "forget_group": ds.groups[idx].astype(np.int64),
        "forget_images": ds.images[idx],
    }


def retrain_cost(references: list[dict], original_meta: dict, setting) -> dict[str, Any]:
    """One retrain's cost, measured under the conditions methods run in (one model at a time).

    References trained one at a time are each a sample of it; where they were trained as a
    vectorised ensemble, the original (always trained alone) stands in, scaled to the retain set.
    """
    # Peak memory: the original's training (one model, alone), which a retrain's matches.
    memory = {"peak_memory_bytes": original_meta.get("peak_memory_bytes")}
    alone = [run_meta(r) for r in references if run_meta(r).get("timed_alone")]
    if alone:
        return {"seconds": _mean([m["seconds"] for m in alone]), "steps": _mean([m["steps"] for m in alone]),
                "measured_on": f"{len(alone)} retrains trained one at a time", **memory}
    scale = len(setting.sets.retain) / max(original_meta["train_examples"], 1)
    return {"seconds": original_meta["seconds"] * scale, "steps": original_meta["steps"] * scale,
            "measured_on": "the original model, trained alone, scaled to the retain set's size", **memory}


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _margins(records: list[dict], name: str, sets) -> np.ndarray:
    """``[N, E]`` margins of the models' logits on output set ``name`` (KLoM's statistic)."""
    y = getattr(sets, name).y.cpu().numpy()
    return np.stack([margins(r[f"{name}_logits"], y) for r in records])


def _row(name: str, records: list[dict], ref_conf: np.ndarray, ref_acc: dict, retrain: dict, sets,
         ref_metas: list[dict], ref_margins: dict[str, np.ndarray]) -> tuple[dict, dict]:
    forget_y = sets.forget.y.cpu().numpy()
    metas = [run_meta(r) for r in records]
    diverged = [{"seed_index": m["k"], "seed": m["seed"], "where": m["diverged"]} for m in metas if "diverged" in m]
    conf = np.stack([logit_scaled_confidence(r["forget_logits"], forget_y) if "diverged" not in m
                     else np.full(len(forget_y), np.nan) for r, m in zip(records, metas)])
    if diverged:
        # The worst case for a diverged model: outputs beyond every finite one on either side, so
        # the attack separates it from the retrains, and zero accuracy.
        finite = np.concatenate([conf[np.isfinite(conf)], ref_conf.ravel()])
        conf = np.where(np.isnan(conf), finite.max() + 1.0, conf)
    acc = {k: _mean([0.0 if "diverged" in m else m["accuracy"][k] for m in metas]) for k in ("retain", "test", "forget")}
    compat = forgetting_quality(conf, ref_conf, mode="compat")
    bounded = forgetting_quality(conf, ref_conf, mode="bounded")
    seconds = _mean([m["seconds"] for m in metas])
    steps = _mean([m.get("steps", 0) for m in metas])
    healthy = next((r for r, m in zip(records, metas) if "diverged" not in m), None)
    peak = max((m.get("peak_memory_bytes") or 0) for m in metas) or None
    row = {
        "method": name,
        "forget_quality": compat.forget_quality,
        "forget_quality_bounded": bounded.forget_quality,
        "score": final_score(compat.forget_quality, acc["retain"], acc["test"], ref_acc["retain"], ref_acc["test"]),
        "score_bounded": final_score(bounded.forget_quality, acc["retain"], acc["test"], ref_acc["retain"], ref_acc["test"]),
        "accuracy": acc,
        "retrain_accuracy": ref_acc,
        "seconds": seconds,
        "steps": steps,
        "time_ratio": seconds / retrain["seconds"] if retrain["seconds"] else None,
        "step_ratio": steps / retrain["steps"] if retrain["steps"] else None,
        "over_time_limit": bool(name != CEILING and retrain["seconds"] and seconds > COMPETITION_TIME_LIMIT * retrain["seconds"]),
        "stopped_by_budget": int(sum(bool(m.get("stopped_by_budget")) for m in metas)),
        "peak_memory_bytes": peak,
        "memory_ratio": peak / retrain["peak_memory_bytes"] if peak and retrain.get("peak_memory_bytes") else None,
        "diverged": diverged,
        "ulira": None, "ulira_baseline": None, "loss_mia": None, "svc_mia_efficacy": None,
    }
    lira = ulira(conf, ref_conf, seed=0)
    row["ulira"], row["ulira_baseline"] = lira.accuracy, lira.baseline
    per_model = ModelAccuracies(*(np.array([0.0 if "diverged" in m else m["accuracy"][k] for m in side])
                                  for side in (metas, ref_metas) for k in ("retain", "test")))
    row["forget_quality_interval"] = row["score_interval"] = None
    if len(records) >= MIN_INTERVAL_MODELS:
        intervals = score_intervals(conf, ref_conf, mode="compat", accuracies=per_model, n_subsamples=INTERVAL_SUBSAMPLES, seed=0)
        row["forget_quality_interval"] = [intervals.forget_quality.low, intervals.forget_quality.high]
        row["score_interval"] = [intervals.final_score.low, intervals.final_score.high]
    healthy_records = [r for r, m in zip(records, metas) if "diverged" not in m]
    for name in OUTPUT_SETS:
        # KLoM over the healthy runs (a diverged model has no margins; the row says how many diverged).
        row[f"klom_{name}"] = klom(_margins(healthy_records, name, sets), ref_margins[name]).p95 if len(healthy_records) > 1 else None
    if healthy is not None:
        row.update(_single_model_mias(healthy, sets))
    return row, {"compat": compat.epsilons, "bounded": bounded.epsilons}


def _single_model_mias(record: dict, sets) -> dict[str, float]:
    """Loss and SVC membership inference on one model (the competition's style of MIA)."""
    forget_y, test_y = sets.forget.y.cpu().numpy(), sets.test.y.cpu().numpy()

    def losses(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
        return F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y), reduction="none").numpy()

    probs = {k: torch.softmax(torch.from_numpy(record[f"{k}_logits"]), 1).numpy() for k in ("forget", "test", "retain_probe")}
    svc = svc_mia(probs["retain_probe"], sets.retain_probe.y.cpu().numpy(), probs["test"], test_y, probs["forget"], forget_y, seed=0)
    return {"loss_mia": loss_mia(losses(record["forget_logits"], forget_y), losses(record["test_logits"], test_y), seed=0).accuracy,
            "svc_mia_efficacy": svc.efficacy}
