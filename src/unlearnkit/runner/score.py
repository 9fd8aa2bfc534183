"""The score unit: every stored model's outputs in, the leaderboard out.

The protocol is the NeurIPS 2023 competition's: N unlearned models U(A(D), S, D) from N method seeds
against N models retrained from scratch on D \\ S; the per-example (ε, δ) forgetting quality on the
forget set, adjusted by retain and test accuracy. A second, independent set of N retrains scored
against the first is the score of a perfect unlearner, the ceiling every other row is read against.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from unlearnkit.io import json_bytes, read_json
from unlearnkit.metrics.efficiency import COMPETITION_TIME_LIMIT
from unlearnkit.metrics.forgetting import final_score, forgetting_quality, logit_scaled_confidence
from unlearnkit.metrics.intervals import ModelAccuracies, score_intervals
from unlearnkit.metrics.klom import klom, margins
from unlearnkit.metrics.mia import loss_mia, svc_mia, ulira
from unlearnkit.results.fields import finite_or_none, number
from unlearnkit.results.leaderboard import (
    CEILING,
    Accuracy,
    DivergedRun,
    Leaderboard,
    LeaderboardRow,
    OriginalModel,
    RetrainCost,
    RowGuard,
)
from unlearnkit.results.records import ModelMeta, model_meta
from unlearnkit.results.store import BenchStore, load_run
from unlearnkit.methods import METHODS
from unlearnkit.results.pool import load_pool
from unlearnkit.runner.units import OUTPUT_SETS, run_labels, split_label

# Model subsamples behind each row's intervals: each costs one score (about 30 ms at N = 16 and 124
# forget examples on one core); 100 estimate the standard error to within about 14 %.
INTERVAL_SUBSAMPLES = 100
# score_intervals' coverage was measured from N = 16 on; below it a row has no interval.
MIN_INTERVAL_MODELS = 16


def score_bench(job, setting, store: BenchStore, provenance: dict[str, Any]) -> tuple[Leaderboard, dict[str, dict[str, np.ndarray]]]:
    """The leaderboard of a finished bench (rows best first), read from the store, and each row's
    per-example ε (``{name: {"compat": [E], "bounded": [E]}}``).

    Args:
        job: The bench.
        setting: Its resolved setting.
        store: Where its results are.
        provenance: The software and machine scoring it (goes into the leaderboard).
    """
    n = job.seeds
    references = [_load(store.reference(k)) for k in range(n)]
    entries = {}
    if job.ceiling:
        entries[CEILING] = [_load(store.reference(k)) for k in range(n, 2 * n)]
    for name in run_labels(job):
        entries[name] = [_load(store.method_run(name, k)) for k in range(n)]
    original = model_meta(load_run(store.original_outputs), str(store.original_outputs))
    diverged_refs = [m.k for _, m in references if not m.healthy]
    if diverged_refs:
        raise ValueError(f"retrained references {diverged_refs} produced non-finite logits; the recipe diverges. "
                         "Lower train.lr or use train.precision=fp32")
    sets = setting.sets
    forget_y = sets.forget.y.cpu().numpy()
    ref_conf = np.stack([logit_scaled_confidence(r["forget_logits"], forget_y) for r, _ in references])
    ref_acc = Accuracy(**{k: _mean([m.accuracy[k] for _, m in references]) for k in ("retain", "test", "forget")})
    # Time ratios are read under the conditions the method runs were timed in (the ceiling's without any).
    method_metas = [m for name, runs in entries.items() if name != CEILING for _, m in runs]
    timed = method_metas or [m for runs in entries.values() for _, m in runs]
    retrain = retrain_cost([m for _, m in references + entries.get(CEILING, [])], original, len(sets.retain),
                           _conditions(timed), store)
    ref_margins = {name: _margins([r for r, _ in references], name, sets) for name in OUTPUT_SETS}
    ref_probe = probe_confidences([r for r, _ in references], forget_y)
    if ref_probe is not None and not np.isfinite(ref_probe).all():
        ref_probe = None  # a reference with non-finite features gives no yardstick for the feature level
    scored = {name: _row(name, runs, ref_conf, ref_acc, retrain, sets, [m for _, m in references], ref_margins, ref_probe)
              for name, runs in entries.items()}
    rows = sorted((_with_one_time(row, job, retrain) for row, _ in scored.values()), key=lambda r: -r.score)
    per_example = {name: eps for name, (_, eps) in scored.items()}
    board = Leaderboard(
        rows=tuple(rows), seeds=n, forget_examples=int(len(forget_y)), dataset=setting.dataset.name,
        model=setting.spec.name, forget=setting.config.forget_label, budget=job.budget, retrain_cost=retrain,
        original=OriginalModel(accuracy=dict(original.accuracy), seed=original.seed, seconds=original.seconds,
                               compute=original.compute),
        setting=json.loads(json_bytes(setting.summary())), provenance=provenance,
    )
    return board, per_example


def _with_one_time(row: LeaderboardRow, job, retrain: RetrainCost) -> LeaderboardRow:
    """``row`` with the compute its method paid once before any run (a prepared method's pool,
    ``unlearnkit prepare``), as a multiple of one retrain's; other rows as they are."""
    name = split_label(row.method)[0]
    if name == CEILING or not METHODS.entry(name).meta.get("prepared"):
        return row
    cfg = job.method_configs.get(name)
    if not getattr(cfg, "pool", ""):
        return row
    spent = load_pool(cfg.pool, getattr(cfg, "shadows", 0) or None).cost()
    ratio = spent["compute"] / retrain.compute if retrain.compute else spent["compute_ratio"]
    return dataclasses.replace(row, one_time_ratio=ratio)


def _load(path: Path) -> tuple[dict[str, np.ndarray], ModelMeta]:
    record = load_run(path)
    return record, model_meta(record, str(path))


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


def retrain_cost(references: list[ModelMeta], original: ModelMeta, retain_size: int,
                 conditions: dict[str, Any] | None, store: BenchStore) -> RetrainCost:
    """One retrain's cost, measured as methods run (one model at a time).

    Steps and compute: the references trained one at a time (compute: every reference, since example
    passes do not depend on how models were batched), else the original (always trained alone)
    scaled to the retain set. Seconds: only a retrain timed under ``conditions``, the host, device,
    threads and precision the method runs were timed under (see :func:`retrain_time`).
    """
    scale = retain_size / max(original.train_examples or 0, 1)
    alone = [m for m in references if m.timed_alone]
    if alone:
        steps, source = _mean([m.steps for m in alone]), f"{len(alone)} retrains trained one at a time"
    else:
        steps, source = original.steps * scale, "the original model, trained alone, scaled to the retain set's size"
    if references and all(m.compute is not None for m in references):
        compute = _mean([m.compute for m in references])
    else:
        compute = original.compute * scale if original.compute is not None else None
    seconds, timed_on, note = retrain_time(alone, original, scale, conditions, store)
    return RetrainCost(seconds=seconds, steps=steps, compute=compute, peak_memory_bytes=original.peak_memory_bytes,
                       measured_on=f"steps and compute: {source}; seconds: {timed_on}",
                       conditions=conditions, timing_note=note)


def retrain_time(alone: list[ModelMeta], original: ModelMeta, scale: float, conditions: dict[str, Any] | None,
                 store: BenchStore) -> tuple[float | None, str, str | None]:
    """One retrain's wall time under ``conditions``: (seconds or None, what it was measured on, why None).

    In order: the references trained one at a time under those conditions; a retrain re-timed in
    this bench's folder (``store.retimed_retrain``, where the bench planned one) under them; the
    original, trained alone under them and scaled to the retain set. Records from before conditions
    were recorded (None) match each other.
    """
    same = [m for m in alone if m.conditions == conditions]
    if same:
        return _mean([m.seconds for m in same]), f"{len(same)} retrains trained one at a time", None
    retimed = store.retimed_retrain  # written by the bench's ``retime`` unit, where one was planned
    if retimed.is_file():
        record = read_json(retimed)
        if isinstance(record, dict) and record.get("conditions") == conditions:
            seconds = number(record.get("seconds"), f"{retimed}: seconds")
            return seconds, f"one retrain re-timed in this bench's folder ({record.get('reason', 'no reason recorded')})", None
    if original.conditions == conditions:
        return original.seconds * scale, "the original model, trained alone, scaled to the retain set's size", None
    return None, "none", (f"no retrain was timed under the conditions the methods ran in ({_describe(conditions)}); "
                          "time x retrain is left out, compute x retrain stands")


def _conditions(metas: list[ModelMeta]) -> dict[str, Any] | None:
    """The conditions most method runs were timed under (None where they recorded none)."""
    seen = [json.dumps(m.conditions, sort_keys=True) for m in metas]
    return json.loads(max(sorted(set(seen)), key=seen.count)) if seen else None  # sorted: ties break the same way everywhere


def _describe(conditions: dict[str, Any] | None) -> str:
    return "not recorded" if conditions is None else ", ".join(f"{k} {v}" for k, v in sorted(conditions.items()))


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _margins(records: list[dict], name: str, sets) -> np.ndarray:
    """``[N, E]`` margins of the models' logits on output set ``name`` (KLoM's statistic)."""
    y = getattr(sets, name).y.cpu().numpy()
    return np.stack([margins(r[f"{name}_logits"], y) for r in records])


def probe_confidences(records: list[dict], forget_y: np.ndarray) -> np.ndarray | None:
    """``[N, E]`` logit-scaled confidences of the models' re-headed outputs on the forget set (NaN
    rows for models whose re-headed logits are not finite), or None where a record predates them."""
    if not all("forget_probe_logits" in r for r in records):
        return None
    return np.stack([logit_scaled_confidence(r["forget_probe_logits"], forget_y)
                     if np.isfinite(r["forget_probe_logits"]).all() else np.full(len(forget_y), np.nan) for r in records])


def feature_quality(runs: list[tuple[dict, ModelMeta]], ref_probe: np.ndarray | None,
                    forget_y: np.ndarray) -> tuple[float | None, tuple[float, float] | None]:
    """The feature-level forgetting quality of a row and its interval (docs/feature_forgetting.md).

    F, computed as for the outputs, on the re-headed outputs of the row's models against the
    references'; a diverged model (or one with non-finite features) takes the worst placement.
    (None, None) where a record predates re-headed outputs; the interval is None below
    MIN_INTERVAL_MODELS.
    """
    conf = probe_confidences([r for r, _ in runs], forget_y)
    if conf is None or ref_probe is None:
        return None, None
    conf[np.array([not m.healthy for _, m in runs], dtype=bool)] = np.nan
    if np.isnan(conf).any():
        conf = worst_placement(conf, ref_probe)
    quality = forgetting_quality(conf, ref_probe, mode="compat").forget_quality
    interval = None
    if len(runs) >= MIN_INTERVAL_MODELS:
        fq = score_intervals(conf, ref_probe, mode="compat", n_subsamples=INTERVAL_SUBSAMPLES, seed=0).forget_quality
        interval = (fq.low, fq.high)
    return quality, interval


def _row(name: str, runs: list[tuple[dict, ModelMeta]], ref_conf: np.ndarray, ref_acc: Accuracy, retrain: RetrainCost,
         sets, ref_metas: list[ModelMeta], ref_margins: dict[str, np.ndarray],
         ref_probe: np.ndarray | None) -> tuple[LeaderboardRow, dict]:
    forget_y = sets.forget.y.cpu().numpy()
    records, metas = [r for r, _ in runs], [m for _, m in runs]
    diverged = tuple(DivergedRun(seed_index=m.k, seed=m.seed, where=m.diverged) for m in metas if not m.healthy)
    conf = np.stack([logit_scaled_confidence(r["forget_logits"], forget_y) if m.healthy
                     else np.full(len(forget_y), np.nan) for r, m in runs])
    if diverged:
        conf = worst_placement(conf, ref_conf)
    acc = Accuracy(**{k: _mean([m.accuracy[k] if m.healthy else 0.0 for m in metas]) for k in ("retain", "test", "forget")})
    compat = forgetting_quality(conf, ref_conf, mode="compat")
    bounded = forgetting_quality(conf, ref_conf, mode="bounded")
    seconds = _mean([m.seconds for m in metas])
    steps = _mean([m.steps for m in metas])
    compute = _mean([m.compute for m in metas]) if all(m.compute is not None for m in metas) else None
    peak = max((m.peak_memory_bytes or 0) for m in metas) or None
    # Wall time is read against a retrain's only where both were timed under the same conditions.
    same_conditions = retrain.seconds is not None and all(m.conditions == retrain.conditions for m in metas)
    time_ratio = finite_or_none(seconds / retrain.seconds) if same_conditions and retrain.seconds else None
    compute_ratio = finite_or_none(compute / retrain.compute) if compute is not None and retrain.compute else None
    # The competition's 20 % limit, judged on compute where both sides counted it, else on time.
    judged = compute_ratio if compute_ratio is not None else time_ratio
    lira = ulira(conf, ref_conf, seed=0)
    per_model = ModelAccuracies(*(np.array([m.accuracy[k] if m.healthy else 0.0 for m in side])
                                  for side in (metas, ref_metas) for k in ("retain", "test")))
    fq_interval = score_interval = None
    if len(records) >= MIN_INTERVAL_MODELS:
        intervals = score_intervals(conf, ref_conf, mode="compat", accuracies=per_model, n_subsamples=INTERVAL_SUBSAMPLES, seed=0)
        fq_interval = (intervals.forget_quality.low, intervals.forget_quality.high)
        score_interval = (intervals.final_score.low, intervals.final_score.high)
    healthy_records = [r for r, m in runs if m.healthy]
    # KLoM over the healthy runs (a diverged model has no margins; the row says how many diverged).
    kloms = {s: klom(_margins(healthy_records, s, sets), ref_margins[s]).p95 if len(healthy_records) > 1 else None
             for s in OUTPUT_SETS}
    mias = _single_model_mias(healthy_records[0], sets) if healthy_records else {"loss_mia": None, "svc_mia_efficacy": None}
    feature_f, feature_interval = feature_quality(runs, ref_probe, forget_y)
    row = LeaderboardRow(
        method=name,
        score=final_score(compat.forget_quality, acc.retain, acc.test, ref_acc.retain, ref_acc.test),
        score_bounded=final_score(bounded.forget_quality, acc.retain, acc.test, ref_acc.retain, ref_acc.test),
        forget_quality=compat.forget_quality, forget_quality_bounded=bounded.forget_quality,
        accuracy=acc, retrain_accuracy=ref_acc, seconds=seconds, steps=steps, compute=compute,
        time_ratio=time_ratio, step_ratio=finite_or_none(steps / retrain.steps) if retrain.steps else None,
        compute_ratio=compute_ratio,
        over_limit=bool(name != CEILING and judged is not None and judged > COMPETITION_TIME_LIMIT),
        stopped_by_budget=int(sum(m.stopped_by_budget for m in metas)),
        peak_memory_bytes=peak,
        memory_ratio=peak / retrain.peak_memory_bytes if peak and retrain.peak_memory_bytes else None,
        diverged=diverged, ulira=lira.accuracy, ulira_baseline=lira.baseline, **mias,
        forget_quality_interval=fq_interval, score_interval=score_interval,
        klom_forget=kloms["forget"], klom_test=kloms["test"], klom_retain_probe=kloms["retain_probe"],
        feature_quality=feature_f, feature_quality_interval=feature_interval, guard=row_guard(metas),
    )
    return row, {"compat": compat.epsilons, "bounded": bounded.epsilons}


def row_guard(metas: list[ModelMeta]) -> RowGuard | None:
    """The guard's outcome over a row's runs (None for an unguarded row)."""
    outcomes = [m.guard for m in metas if m.guard is not None]
    if not outcomes:
        return None

    def mean(key: str) -> float | None:
        values = [o[key] for o in outcomes if o.get(key) is not None]
        return _mean(values) if values else None

    return RowGuard(tolerance=float(outcomes[0]["tolerance"]), runs=len(outcomes),
                    passed=int(sum(bool(o["passed"]) for o in outcomes)),
                    repaired=int(sum(o["chosen"] == "blend" for o in outcomes)), retain=mean("retain"), val=mean("val"),
                    original_retain=mean("original_retain"), original_val=mean("original_val"), compute=mean("compute"))


def worst_placement(conf: np.ndarray, ref_conf: np.ndarray) -> np.ndarray:
    """``conf`` [N, E] with its diverged models' rows (NaN) filled in as the worst case, example by example.

    A diverged model has no outputs, so it is given, on each forget example, the placement among
    four that gives that example the largest ε: the row's highest or lowest healthy output there, or
    beyond every finite output of either side, above or below. Outputs beyond every finite one alone
    are not the worst case: they widen the attack's threshold grid and range and can lower ε (one
    diverged seed then scores better than the healthy model it replaces). ε is computed per example,
    so the column-wise choice gives each example its largest ε. The accuracy of a diverged model
    counts as zero elsewhere.
    """
    bad = np.isnan(conf).all(axis=1)
    finite = np.concatenate([conf[~bad].ravel(), ref_conf.ravel()])
    fills = [np.full(conf.shape[1], finite.max() + 1.0), np.full(conf.shape[1], finite.min() - 1.0)]
    if not bad.all():
        fills += [conf[~bad].max(axis=0), conf[~bad].min(axis=0)]
    candidates = [np.where(bad[:, None], fill[None, :], conf) for fill in fills]
    eps = np.stack([forgetting_quality(c, ref_conf, mode="compat").epsilons for c in candidates])
    pick = eps.argmax(axis=0)
    return np.stack(candidates)[pick, :, np.arange(conf.shape[1])].T


def _single_model_mias(record: dict, sets) -> dict[str, float]:
    """Loss and SVC membership inference on one model (the competition's style of MIA)."""
    forget_y, test_y = sets.forget.y.cpu().numpy(), sets.test.y.cpu().numpy()

    def losses(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
        return F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y), reduction="none").numpy()

    probs = {k: torch.softmax(torch.from_numpy(record[f"{k}_logits"]), 1).numpy() for k in ("forget", "test", "retain_probe")}
    svc = svc_mia(probs["retain_probe"], sets.retain_probe.y.cpu().numpy(), probs["test"], test_y, probs["forget"], forget_y, seed=0)
    return {"loss_mia": loss_mia(losses(record["forget_logits"], forget_y), losses(record["test_logits"], test_y), seed=0).accuracy,
            "svc_mia_efficacy": svc.efficacy}
