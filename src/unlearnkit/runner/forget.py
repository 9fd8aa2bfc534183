"""``unlearnkit forget``: erase people or images from a trained model, and measure the erasure.

The request is checked and resolved by :func:`~unlearnkit.runner.forget_request.make_forget_job`
(every bad input is refused there, before any work). :func:`run_forget` then runs one unlearning
method under a budget, with the torch thread count the references were trained and timed with,
measures the model before and after, checks the erasure against its targets, and writes::

    OUT/model.safetensors, OUT/model.json   the unlearned model (our checkpoint format)

It returns the audit's numbers; the command layer hands them to :mod:`unlearnkit.report.audit`,
which writes ``OUT/audit.html`` and, last, ``OUT/audit.json`` (whose presence marks a finished job).

The targets the forget set should move to (see :func:`forget_targets`): the retrained references'
forget-set accuracy and confidence where references exist (cached, or trained with ``--references``);
else, for a forget set that holds whole classes, what a model that never saw them gives (0 %
accuracy, confidence at most chance); else the original's level on the test split (people or
images it never saw). The validation split is never a target: methods train and calibrate on it.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from unlearnkit.engine.checkpoint import checkpoint_bytes, sidecar_info
from unlearnkit.engine.model_import import load_model
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.io import provenance, read_json, read_npz, write_bytes
from unlearnkit.methods import METHODS, run_method
from unlearnkit.metrics.efficiency import COMPETITION_TIME_LIMIT, cost_ratios, retrain_steps, run_conditions
from unlearnkit.metrics.forgetting import MIN_MODELS, final_score, forgetting_quality, logit_scaled_confidence
from unlearnkit.metrics.utility import (MEASURED_SETS, accuracy_of, forgotten_classes, true_class_confidence,
                                        utility_measures)
from unlearnkit.results.pool import load_pool
from unlearnkit.results.store import RESULTS_VERSION, BenchStore, load_run, run_meta
from unlearnkit.runner.forget_request import ForgetJob, forget_to_dict, make_forget_job, read_examples
from unlearnkit.runner.jobs import BenchJob
from unlearnkit.runner.setting import Setting, resolve_setting
from unlearnkit.runner.score import probe_confidences, worst_placement
from unlearnkit.runner.shadow_audit import shadow_reference_confidences, split_pool
from unlearnkit.runner.units import (Unit, budget_compute, execute, model_outputs, model_seed, setting_retrain_compute,
                                      torch_threads)

AUDIT_VERSION = 2
# A forget-set accuracy or confidence within this of its target passes, or within two standard
# errors of the forget-set mean where that is wider (a small forget set's mean is noisy).
TARGET_TOLERANCE = 0.05
# Retain and test accuracy may fall this much (absolute) and still count as kept.
KEPT_TOLERANCE = 0.02
# The (ε, δ) check passes when the method's F is at least this share of the ceiling's F (N more retrains).
CEILING_SHARE = 0.5
# Runs of the method the shadow-based audit scores where no exact score ran (whose runs it would reuse).
SHADOW_AUDIT_RUNS = 16


@dataclass(frozen=True)
class ForgetOutcome:
    """What :func:`run_forget` returns: the audit's numbers, and whether ``OUT`` already held them."""

    audit: dict[str, Any]
    already_done: bool


# What makes two jobs the same erasure (a rerun into the same folder returns the finished audit).
_IDENTITY = ("setting", "checkpoint", "method", "method_config", "budget", "references", "guard", "regime", "pool")


def run_forget(job: ForgetJob, *, log: Callable[[str], None] = print) -> ForgetOutcome:
    """Unlearn the job's forget set from its checkpoint, measure and check the result, write the model.

    A folder that already holds this job's ``audit.json`` is left as it is (``already_done``); one
    holding another job's is refused.

    Raises:
        InputError: a checkpoint that does not fit, a forget set the dataset does not have, an ``OUT``
            that holds another run; nothing has been written to ``OUT``.
    """
    out = Path(job.out)
    record = json.loads(json.dumps(forget_to_dict(job), default=str))
    existing = out / "audit.json"
    if existing.is_file():
        old = read_json(existing)
        differs = [k for k in _IDENTITY if (old.get("job") or {}).get(k) != record[k]]
        if differs:
            raise InputError(f"--out {out} holds the audit of another forget run ({', '.join(differs)} differ); "
                             "use a new --out")
        log(f"{out} already holds this run's audit")
        return ForgetOutcome(old, True)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder")

    setting = resolve_setting(job.setting)
    original, info = load_model(job.checkpoint, setting.spec, setting.dataset, setting.runtime.device)
    log(f"forgetting {len(setting.forget.indices)} training examples of {setting.dataset.name} from {job.checkpoint} "
        f"with {job.method} ({job.method_reason})")
    classes = forgotten_classes(setting.dataset.labels[setting.forget.indices],
                                setting.dataset.labels[setting.dataset.indices("train")])
    before = measure_model(original, setting, classes)
    cap = budget_compute(job.budget, setting)
    seed = model_seed(setting.config.run_seed, f"unlearn/{job.method}", 0)
    # The references were trained and timed with job.threads; the method's time is comparable only so.
    with torch_threads(job.threads):
        conditions = run_conditions(setting.runtime)
        result = run_method(job.method, original, setting.unlearn_data, job.method_config, seed=seed, max_compute=cap,
                            guard=job.guard, regime=job.regime)
    if result.regime is not None:
        log(f"regime: {result.regime.summary()}")
    if result.guard is not None:
        log(f"utility guard: {result.guard.summary()}")
    after = measure_model(result.model, setting, classes)
    store = BenchStore.for_setting(out, job.cache_dir, setting)
    quality = verify_with_references(job, setting, original, result, store, cap, conditions, log=log)
    shadows = verify_with_shadows(job, setting, original, result, cap, quality, log=log)
    if shadows["computed"]:
        log(f"shadow-based estimate (not a verification): F about {shadows['method']:.3f} against {shadows['n']} "
            f"approximate references from {job.pool}, where the pool's halves score {shadows['halves']:.3f}")
    cost = _cost(result, setting, info, quality, conditions)
    targets = forget_targets(before, quality, classes, setting)
    measures = _before_after(before, after)
    log(f"{job.method}: {result.cost.seconds:.1f}s, forget accuracy {before['accuracy']['forget']:.3f} -> "
        f"{after['accuracy']['forget']:.3f} (target {targets['accuracy']:.3f}, {targets['from']}), retain "
        f"{before['accuracy']['retain']:.3f} -> {after['accuracy']['retain']:.3f}")
    audit = {
        "audit_version": AUDIT_VERSION,
        "results_version": RESULTS_VERSION,
        "job": record,
        "setting": setting.summary(),
        "checkpoint": {"path": job.checkpoint, "format": info["format"], "model": info.get("model"),
                       "recipe_from": "the checkpoint's sidecar" if info["format"].startswith("unlearnkit")
                       else "the architecture's default recipe and train.* settings (a state dict records none)"},
        "forget": {"request": job.request, "kind": setting.forget.kind, "examples": len(setting.forget.indices),
                   "people": _people(setting), "classes": list(classes), "fingerprint": setting.forget.fingerprint,
                   "indices": setting.forget.indices.tolist()},
        "method": {"name": job.method, "config": result.config, "preset": job.method_preset,
                   "chosen_because": job.method_reason, "leaderboard": job.method_leaderboard, "seed": seed,
                   "budget": job.budget, "budget_compute": cap, "stopped_by_budget": result.stopped_by_budget,
                   "regime": result.regime.to_dict() if result.regime is not None else None,
                   "regime_summary": result.regime.summary() if result.regime is not None else None},
        "guard": result.guard.to_dict() if result.guard is not None else None,
        "targets": targets,
        "measures": measures,
        "checks": erasure_checks(measures, targets, quality, cost, job.budget, classes, len(setting.forget.indices),
                                 guard=result.guard.to_dict() if result.guard is not None else None, shadows=shadows),
        "per_identity": _per_identity(setting, before, after, quality),
        "cost": cost,
        "forgetting_quality": {k: v for k, v in quality.items() if not k.startswith("_")},
        "shadow_audit": shadows,
        "provenance": provenance(),
    }
    weights, sidecar = checkpoint_bytes(result.model, setting.spec, sidecar_info(
        "unlearn", k=0, seed=seed, recipe=setting.recipe, dataset_fingerprint=setting.dataset.fingerprint,
        forget_fingerprint=setting.forget.fingerprint, provenance=audit["provenance"],
        extra={"method": job.method, "config": result.config, "cost": cost, "stopped_by_budget": result.stopped_by_budget,
               "accuracy": after["accuracy"], "source_checkpoint": job.checkpoint}))
    # Both files exist as bytes before the first write; the audit's files follow (report.audit).
    write_bytes(out / "model.safetensors", weights)
    write_bytes(out / "model.json", sidecar)
    log(f"unlearned model: {out / 'model.safetensors'}")
    return ForgetOutcome(json.loads(json.dumps(audit, default=_plain)), False)


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


# -- measuring ---------------------------------------------------------------------------------------

def measure_model(model: torch.nn.Module, setting: Setting, classes: tuple[int, ...] = ()) -> dict[str, Any]:
    """One model's accuracies, confidences, attacks and per-example forget outputs (metrics.utility)."""
    sets = setting.sets
    logits = {name: predict(model, getattr(sets, name), runtime=setting.runtime) for name in MEASURED_SETS}
    return utility_measures(logits, {name: getattr(sets, name).y for name in MEASURED_SETS}, classes=classes)


# What the audit lists before and after: (measure key, set or None).
MEASURES = {
    "retain_accuracy": ("accuracy", "retain"),
    "test_accuracy": ("accuracy", "test"),
    "test_accuracy_kept_classes": ("test_kept", None),
    "forget_accuracy": ("accuracy", "forget"),
    "forget_confidence": ("confidence", "forget"),
    "loss_mia": ("loss_mia", None),
    "svc_mia_efficacy": ("svc_mia_efficacy", None),
    "svc_mia_baseline": ("svc_mia_baseline", None),
}


def _before_after(before: dict, after: dict) -> dict[str, dict]:
    out = {}
    for name, (key, sub) in MEASURES.items():
        b, a = (m[key][sub] if sub else m[key] for m in (before, after))
        out[name] = {"before": b, "after": a}
    for key, name in (("loss_mia", "loss_mia"), ("svc_mia", "svc_mia_efficacy")):
        why = before.get(f"{key}_why_not")
        if why:
            out[name]["not_computed"] = why
    return out


def forget_targets(before: dict, quality: dict, classes: tuple[int, ...], setting: Setting) -> dict[str, Any]:
    """The forget-set accuracy and confidence a model that never trained on it would give.

    From the retrained references where any are cached for this setting; else, for whole classes,
    0 accuracy and at most chance confidence (a model never trained on a class is never pushed
    towards it, so the probability it gives the class is below 1/classes; the level itself needs a
    retrain); else the original's test-split level (never the validation split).
    """
    ref = quality.get("_reference_forget")
    if ref:
        return {"accuracy": ref["accuracy"], "confidence": ref["confidence"], "confidence_is_bound": False,
                "from": f"the {ref['models']} retrained references (models trained without these images)"}
    if classes and set(classes) >= set(np.unique(setting.dataset.labels[setting.forget.indices]).tolist()):
        return {"accuracy": 0.0, "confidence": 1.0 / setting.dataset.num_classes, "confidence_is_bound": True,
                "from": "a model that never saw the forgotten classes (0 accuracy; confidence at most chance)"}
    return {"accuracy": before["accuracy"]["test"], "confidence": before["confidence"]["test"],
            "confidence_is_bound": False, "from": "the original model on the test split (data it never trained on)"}


def erasure_checks(measures: dict, targets: dict, quality: dict, cost: dict, budget: float | None,
                   classes: tuple[int, ...], examples: int, *, guard: dict | None = None,
                   shadows: dict | None = None) -> list[dict[str, Any]]:
    """Each check of the erasure: ``check`` (its name), ``passed`` (True, False, or None: not computed)
    and the numbers it compared; ``guard`` (a GuardOutcome's fields) adds the utility guard's verdict,
    ``shadows`` (:func:`verify_with_shadows`) the shadow-based estimate, which is never a pass: its
    references are shadows, not retrains. report.audit puts them in words."""
    out = []
    if guard is not None:
        out.append({"check": "utility_guard", "passed": bool(guard["passed"]), **guard})
    fa = measures["forget_accuracy"]
    slack = max(TARGET_TOLERANCE, 2 * math.sqrt(max(targets["accuracy"] * (1 - targets["accuracy"]), 0) / max(examples, 1)))
    out.append({"check": "forget_accuracy", "passed": abs(fa["after"] - targets["accuracy"]) <= slack,
                "before": fa["before"], "after": fa["after"], "target": targets["accuracy"], "tolerance": slack})
    fc = measures["forget_confidence"]
    passed = (fc["after"] <= targets["confidence"] if targets["confidence_is_bound"]
              else abs(fc["after"] - targets["confidence"]) <= TARGET_TOLERANCE)
    out.append({"check": "forget_confidence", "passed": passed, "before": fc["before"], "after": fc["after"],
                "target": targets["confidence"], "bound": targets["confidence_is_bound"], "tolerance": TARGET_TOLERANCE})
    for name in ("retain_accuracy", "test_accuracy_kept_classes" if classes else "test_accuracy"):
        m = measures[name]
        if m["before"] is not None and m["after"] is not None:
            out.append({"check": name, "passed": m["after"] >= m["before"] - KEPT_TOLERANCE, "before": m["before"],
                        "after": m["after"], "tolerance": KEPT_TOLERANCE})
    if not classes:  # a whole class is told from test data by its label alone; the attacks say nothing there
        mia = measures["loss_mia"]
        out.append({"check": "loss_mia", "passed": None if mia["after"] is None else mia["after"] <= 0.5 + 2 * TARGET_TOLERANCE,
                    "before": mia["before"], "after": mia["after"], "why_not": mia.get("not_computed")})
        svc, base = measures["svc_mia_efficacy"], measures["svc_mia_baseline"]
        out.append({"check": "svc_mia", "passed": None if svc["after"] is None
                    else abs(svc["after"] - base["after"]) <= 2 * TARGET_TOLERANCE,
                    "before": svc["before"], "after": svc["after"], "baseline": base["after"], "why_not": svc.get("not_computed")})
    if quality.get("verified"):
        meth, ceil = quality["method"]["forget_quality"], quality["ceiling"]["forget_quality"]
        out.append({"check": "eps_delta", "passed": meth >= CEILING_SHARE * ceil, "method": meth, "ceiling": ceil,
                    "share": CEILING_SHARE, "n": quality["n"]})
        meth, ceil = quality["method"].get("feature_quality"), quality["ceiling"].get("feature_quality")
        if meth is None or ceil is None:
            out.append({"check": "feature_forgetting", "passed": None,
                        "why_not": "the cached references predate re-headed outputs; retrain them (a new --cache-dir)"})
        else:
            out.append({"check": "feature_forgetting", "passed": meth >= CEILING_SHARE * ceil, "method": meth,
                        "ceiling": ceil, "share": CEILING_SHARE, "n": quality["n"]})
    else:
        out.append({"check": "eps_delta", "passed": None, "why_not": quality["why_not"]})
        out.append({"check": "feature_forgetting", "passed": None, "why_not": quality["why_not"]})
    if shadows is not None and shadows.get("computed"):
        out.append({"check": "eps_delta_shadows", "passed": None,
                    **{k: shadows[k] for k in ("method", "halves", "n", "shadows", "leave_out", "independent", "exact")}})
    limit = budget if budget is not None else COMPETITION_TIME_LIMIT
    ratio, unit = _judged_ratio(cost)
    out.append({"check": "cost", "passed": None if ratio is None else ratio <= limit + 1e-9, "ratio": ratio,
                "unit": unit, "limit": limit})
    return out


def _judged_ratio(cost: dict) -> tuple[float | None, str | None]:
    # Compute is the same on every machine; steps only where compute was not counted. Never time.
    for key, unit in (("compute_ratio", "compute"), ("step_ratio", "optimizer steps")):
        if cost.get(key) is not None:
            return cost[key], unit
    return None, None


def _people(setting: Setting) -> list[int]:
    groups = setting.dataset.groups[setting.forget.indices]
    return sorted(int(g) for g in np.unique(groups[groups >= 0]))


def _per_identity(setting: Setting, before: dict, after: dict, quality: dict) -> list[dict]:
    groups = setting.dataset.groups[setting.forget.indices]
    eps = quality.get("_epsilons")
    rows = []
    for person in _people(setting):
        mask = groups == person
        row = {"identity": person, "images": int(mask.sum())}
        for name, key in (("accuracy", "_forget_correct"), ("confidence", "_forget_confidence")):
            row[name] = {"before": float(before[key][mask].mean()), "after": float(after[key][mask].mean())}
        row["mean_epsilon"] = float(eps[mask].mean()) if eps is not None else None
        rows.append(row)
    return rows


def _cost(result, setting: Setting, info: dict, quality: dict, conditions: dict) -> dict[str, Any]:
    """The run's cost against one retrain: compute and steps always; time only under equal conditions."""
    sets, recipe = setting.sets, setting.recipe
    steps = retrain_steps(len(sets.retain), recipe.batch_size, recipe.epochs)
    compute = setting_retrain_compute(setting)
    seconds, source = quality.get("_retrain_seconds"), "retrained references trained one at a time under these conditions"
    if seconds is None and info.get("seconds") and info.get("train_examples") and info.get("conditions") == conditions:
        seconds = info["seconds"] * len(sets.retain) / info["train_examples"]
        source = "the original's training time in its sidecar (same conditions), scaled to the retain set"
    why_no_time = None
    if seconds is None:
        why_no_time = ("no retrain was timed under this run's conditions"
                       + (f" (the original was trained under {info['conditions']})" if info.get("conditions") else
                          " (the checkpoint records none)"))
    ratios = cost_ratios(result.cost, retrain_seconds=seconds, retrain_steps=steps, retrain_compute=compute)
    return {**result.cost.to_dict(), "retrain_steps": steps, "retrain_compute": compute, "retrain_seconds": seconds,
            "retrain_seconds_from": source if seconds is not None else None, "no_time_ratio_because": why_no_time,
            "conditions": conditions, **ratios}


def _reference_level(refs: list[dict], y: np.ndarray) -> dict[str, Any]:
    """Mean forget-set accuracy and true-class confidence of retrained references (their stored logits)."""
    return {"accuracy": float(np.mean([accuracy_of(r["forget_logits"], y) for r in refs])),
            "confidence": float(np.mean([true_class_confidence(r["forget_logits"], y).mean() for r in refs])),
            "models": len(refs)}


# -- the (ε, δ) score against retrained references -----------------------------------------------------

def _feature_quality(probe: np.ndarray | None, ref_probe: np.ndarray | None) -> float | None:
    """Feature F (docs/feature_forgetting.md) of re-headed confidences against the references' (None
    where references were cached before re-headed outputs were recorded); a model whose features are
    not finite takes the worst placement, as in a bench."""
    if probe is None or ref_probe is None:
        return None
    if np.isnan(probe).any():
        probe = worst_placement(probe, ref_probe)
    return forgetting_quality(probe, ref_probe, mode="compat").forget_quality


def cached_references(store: BenchStore) -> int:
    """How many retrained references 0, 1, ... the cache holds for the store's setting."""
    k = 0
    while store.reference(k).is_file():
        k += 1
    return k


def verify_with_references(job: ForgetJob, setting: Setting, original: torch.nn.Module, first, store: BenchStore,
                           cap: float | None, conditions: dict[str, Any], *,
                           log: Callable[[str], None] = print) -> dict[str, Any]:
    """The (ε, δ) score of N runs of the method against N cached retrains, beside N more (the ceiling).

    With ``job.references`` = N, missing references 0..2N-1 are trained into the cache first (as a
    bench's references unit trains them, so benches over this setting reuse them); otherwise N is
    half of what the cache already holds, if that is at least 8. Run 0 of the method is ``first``
    (the delivered model); runs 1..N-1 use the bench's seeds for the method and are discarded. A
    retrain's time counts only from references timed alone under ``conditions`` (the method's).
    """
    have = cached_references(store)
    n = job.references or (have // 2 if have // 2 >= MIN_MODELS else 0)
    base = {"verified": False, "references_cache": str(store.reference(0).parent), "references_cached": have}
    y = setting.sets.forget.y.cpu().numpy()
    if n == 0:
        # Too few for the score, but any cached retrain still says where the forget set should be.
        level = _reference_level([load_run(store.reference(k)) for k in range(have)], y) if have else None
        return {**base, "_reference_forget": level,
                "why_not": (f"no retrained references for this setting were available ({have} cached, "
                            f"{2 * MIN_MODELS} needed); pass --references {2 * MIN_MODELS}")}
    trained = 0
    if have < 2 * n:
        todo = [k for k in range(2 * n) if not store.reference(k).is_file()]
        log(f"training {len(todo)} retrained references into {store.reference(0).parent} (cached for later runs)")
        bench = BenchJob(job.setting, (job.method,), {job.method: job.method_config}, seeds=n, budget=job.budget,
                         threads=job.threads, block=len(todo), out=str(job.out), cache_dir=job.cache_dir)
        execute(bench, Unit("references", None, 0, 2 * n), todo, store, write_bytes)
        trained = len(todo)
    refs = [load_run(store.reference(k)) for k in range(2 * n)]
    metas = [run_meta(r) for r in refs]
    if any("diverged" in m for m in metas):
        return {**base, "why_not": "some retrained references diverged (non-finite outputs); the recipe is unstable"}
    conf = np.stack([logit_scaled_confidence(r["forget_logits"], y) for r in refs])
    ref_conf, ceil_conf = conf[:n], conf[n:]
    ref_acc = {k: float(np.mean([m["accuracy"][k] for m in metas[:n]])) for k in ("retain", "test", "forget")}
    ceil_acc = {k: float(np.mean([m["accuracy"][k] for m in metas[n:]])) for k in ("retain", "test", "forget")}
    ref_forget = _reference_level(refs[:n], y)
    log(f"running {job.method} {n} times to score it against {n} references")
    records = method_runs(job, setting, original, first, n, cap)
    u_conf = np.stack([logit_scaled_confidence(r["forget_logits"], y) for r in records])
    if not np.isfinite(u_conf).all():
        return {**base, "why_not": f"some of the {n} runs of {job.method} diverged (non-finite outputs)"}
    acc = {k: float(np.mean([run_meta(r)["accuracy"][k] for r in records])) for k in ("retain", "test", "forget")}
    ref_probe = probe_confidences(refs[:n], y)
    rows = {}
    for name, c, a, probe in (("method", u_conf, acc, probe_confidences(records, y)),
                              ("ceiling", ceil_conf, ceil_acc, probe_confidences(refs[n:], y))):
        compat, bounded = (forgetting_quality(c, ref_conf, mode=mode) for mode in ("compat", "bounded"))
        rows[name] = {"forget_quality": compat.forget_quality, "forget_quality_bounded": bounded.forget_quality,
                      "score": final_score(compat.forget_quality, a["retain"], a["test"], ref_acc["retain"], ref_acc["test"]),
                      "feature_quality": _feature_quality(probe, ref_probe),
                      "accuracy": a, "_eps": compat.epsilons}
    timed = [m["seconds"] for m in metas if m.get("timed_alone") and m.get("conditions") == conditions]
    return {**base, "verified": True, "n": n, "references_trained_now": trained, "delta": 1e-5,
            "method": {k: v for k, v in rows["method"].items() if k != "_eps"},
            "ceiling": {k: v for k, v in rows["ceiling"].items() if k != "_eps"},
            "retrain_accuracy": ref_acc,
            "epsilons": rows["method"]["_eps"].tolist(),
            "_epsilons": rows["method"]["_eps"],
            "_reference_forget": ref_forget,
            "_records": records,
            "_retrain_seconds": float(np.mean(timed)) if timed else None}


def method_runs(job: ForgetJob, setting: Setting, original: torch.nn.Module, first, n: int,
                cap: float | None) -> list[dict[str, np.ndarray]]:
    """N runs of the job's method, each recorded as a bench records a method run (units.model_outputs):
    run 0 is ``first`` (the delivered model); runs 1..N-1 use the bench's seeds for the method."""
    with torch_threads(job.threads):
        runs = [first.model] + [
            run_method(job.method, original, setting.unlearn_data, job.method_config,
                       seed=model_seed(setting.config.run_seed, f"unlearn/{job.method}", k), max_compute=cap,
                       guard=job.guard, regime=job.regime).model
            for k in range(1, n)]
    return [read_npz(io.BytesIO(model_outputs(model, setting, {}))) for model in runs]


# -- the (ε, δ) score against a prepared pool's shadows (approximate references) ------------------------

def verify_with_shadows(job: ForgetJob, setting: Setting, original: torch.nn.Module, first, cap: float | None,
                        quality: dict[str, Any], *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """The (ε, δ) score of N runs of the method against N approximate references drawn from the
    second half of the job's prepared pool (runner.shadow_audit), beside the score the pool's two
    halves give each other (this audit's ceiling). N is the exact score's where it ran (its runs are
    reused), else SHADOW_AUDIT_RUNS. ``independent`` is False where the method took its targets from
    the audit's shadows (a prepared method given the whole pool with method.NAME.shadows)."""
    if not job.pool:
        return {"computed": False, "why_not": "no prepared pool for this dataset, model and recipe (`unlearnkit prepare`)"}
    pool = load_pool(job.pool)
    try:
        targets_half, audit_half = split_pool(pool)
    except InputError as exc:
        return {"computed": False, "pool": job.pool, "why_not": str(exc)}
    n = int(quality.get("n") or SHADOW_AUDIT_RUNS)
    records = quality.get("_records")
    if records is None:
        log(f"running {job.method} {n} times to score it against {n} approximate references from {job.pool}")
        records = method_runs(job, setting, original, first, n, cap)
    y = setting.sets.forget.y.cpu().numpy()
    u_conf = np.stack([logit_scaled_confidence(r["forget_logits"], y) for r in records])
    if not np.isfinite(u_conf).all():
        return {"computed": False, "pool": job.pool, "why_not": f"some of the {n} runs of {job.method} diverged"}
    data = setting.unlearn_data
    original_val = predict(original, data.val, runtime=data.runtime)
    seed = model_seed(setting.config.run_seed, "shadow_audit", 0)
    approx = shadow_reference_confidences(audit_half, original_val, data, n, seed=seed)
    halves = shadow_reference_confidences(targets_half, original_val, data, n, seed=seed + 1)
    used = getattr(job.method_config, "shadows", None)
    prepared = METHODS.entry(job.method).meta.get("prepared", False)
    return {"computed": True, "pool": job.pool, "n": n, "delta": 1e-5,
            "shadows": [targets_half.size, pool.size - 1],
            "leave_out": pool.leave_out,
            "method": forgetting_quality(u_conf, approx).forget_quality,
            "halves": forgetting_quality(halves, approx).forget_quality,
            "independent": not prepared or used == targets_half.size,
            "exact": quality["method"]["forget_quality"] if quality.get("verified") else None}


__all__ = ["ForgetJob", "ForgetOutcome", "erasure_checks", "forget_targets", "make_forget_job", "measure_model",
           "method_runs", "read_examples", "run_forget", "verify_with_references", "verify_with_shadows"]
