"""``unlearnkit bench``: N seeds of each method against N cached retrains, scored and ranked.

The protocol is the NeurIPS 2023 competition's: one original model A(D); N unlearned models
U(A(D), S, D) from N method seeds; N models retrained from scratch on D \\ S; the per-example
(ε, δ) forgetting quality on the forget set, adjusted by retain and test accuracy. A second,
independent set of N retrains scored against the first gives the score of a perfect unlearner,
the ceiling every other row is read against (about 0.18 in compat mode, at every N).

Everything a model produced is stored as it finishes (one ``.npz`` per model: logits on the forget
set, the test set and a fixed retain probe, accuracies, cost), so an interrupted bench resumes, and
the retrains live in a cache shared by every bench over the same data, forget set, model and recipe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from unlearnkit.config import to_dict
from unlearnkit.data.base import ImageDataset
from unlearnkit.data.cache import resolve_cache_dir
from unlearnkit.data.splits import ForgetSet, retain_indices
from unlearnkit.engine.checkpoint import checkpoint_complete, load_checkpoint, save_checkpoint, spec_to_dict
from unlearnkit.engine.ensemble import train_seeds
from unlearnkit.engine.tensors import TensorSet, tensor_set, train_stats
from unlearnkit.engine.train import Runtime, TrainConfig, TrainResult, default_recipe, predict, resolve_runtime
from unlearnkit.errors import InputError
from unlearnkit.methods import METHODS, make_unlearn_data, run_method
from unlearnkit.metrics.efficiency import COMPETITION_TIME_LIMIT
from unlearnkit.metrics.forgetting import MIN_MODELS, final_score, forgetting_quality, logit_scaled_confidence
from unlearnkit.metrics.mia import loss_mia, svc_mia, ulira
from unlearnkit.models import ModelSpec
from unlearnkit.runs import DataChoice, load_dataset, model_seed, model_spec, resolve_forget, resolve_method_config, write_run_record
from unlearnkit.store import fingerprint, provenance, read_npz, write_json, write_npz

# What `unlearnkit bench` runs when no --methods are given: the competition's top three, the
# strongest literature baselines, and the cheap baselines they beat.
DEFAULT_METHODS = ("finetune", "neggrad_plus", "scrub", "salun", "ssd", "fanchuan", "kookmin", "seif")
RETAIN_PROBE = 2000


@dataclass(frozen=True)
class BenchJob:
    """One benchmark: ``methods`` x ``seeds`` unlearning runs against ``seeds`` retrains."""

    data: DataChoice
    model: str = "small_cnn"
    model_options: dict = field(default_factory=dict)
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: int = 8
    run_seed: int = 0
    train: TrainConfig | None = None
    preset: str | None = "auto"
    method_options: dict = field(default_factory=dict)
    ceiling: bool = True
    strategy: str = "auto"
    cache_dir: str = ""
    out: str = "runs/bench"


@dataclass(frozen=True, eq=False)
class EvalSets:
    """The examples every model is evaluated on."""

    forget: TensorSet
    test: TensorSet
    retain_probe: TensorSet
    retain: TensorSet
    val: TensorSet


def eval_sets(ds: ImageDataset, forget: ForgetSet, device: torch.device) -> EvalSets:
    stats = train_stats(ds)
    retain = retain_indices(ds, forget)
    probe = np.sort(np.random.default_rng(0).choice(retain, min(RETAIN_PROBE, len(retain)), replace=False))
    sets = {name: tensor_set(ds, idx, stats=stats).to(device) for name, idx in
            (("forget", forget.indices), ("test", ds.indices("test")), ("retain_probe", probe),
             ("retain", retain), ("val", ds.indices("val")))}
    return EvalSets(**sets)


def model_outputs(model: torch.nn.Module, sets: EvalSets, rt: Runtime, meta: dict) -> dict[str, np.ndarray]:
    """Logits and accuracies of one model, as the arrays of its ``.npz`` record."""
    logits = {name: predict(model, getattr(sets, name), runtime=rt) for name in ("forget", "test", "retain_probe")}
    retain_logits = predict(model, sets.retain, runtime=rt)
    acc = {name: float((lg.argmax(1) == getattr(sets, name).y.cpu()).float().mean()) for name, lg in logits.items()}
    acc["retain"] = float((retain_logits.argmax(1) == sets.retain.y.cpu()).float().mean())
    acc["val"] = float((predict(model, sets.val, runtime=rt).argmax(1) == sets.val.y.cpu()).float().mean()) if len(sets.val) else float("nan")
    out = {f"{name}_logits": lg.numpy().astype(np.float32) for name, lg in logits.items()}
    out["meta"] = np.array(json.dumps({**meta, "accuracy": acc}))
    return out


def record_meta(record: dict[str, np.ndarray]) -> dict:
    return json.loads(str(record["meta"]))


def _reference_key(ds: ImageDataset, forget: ForgetSet, spec: ModelSpec, cfg: TrainConfig, run_seed: int) -> str:
    # Device and numeric settings change the bits, not the distribution; they stay in the key anyway
    # so that a cached reference is exactly reproducible.
    return fingerprint("retrain-v1", ds.fingerprint, forget.fingerprint, spec_to_dict(spec), to_dict(cfg), run_seed)


def train_models(
    spec: ModelSpec,
    train: TensorSet,
    val: TensorSet,
    cfg: TrainConfig,
    ks: list[int],
    run_seed: int,
    strategy: str,
    on_result: Callable[[int, TrainResult], None],
) -> None:
    """Train model indices ``ks`` of a run, calling ``on_result(k, result)`` as each finishes."""
    by_seed = {model_seed(run_seed, k): k for k in ks}
    train_seeds(spec, train, val, cfg, list(by_seed), strategy=strategy,
                on_result=lambda r: on_result(by_seed[r.seed], r))


def run_bench(job: BenchJob, *, log: Callable[[str], None] = print) -> dict:
    """Run (or resume) the benchmark and return the leaderboard record written to ``OUT/leaderboard.json``."""
    if job.seeds < MIN_MODELS:
        raise InputError(f"--seeds {job.seeds}: the forgetting-quality score needs at least {MIN_MODELS} seeds per side")
    if job.data.forget is None:
        raise InputError("bench needs a forget set: pass --forget SPEC (e.g. identity_skewed:0.02)")
    if not job.methods:
        raise InputError("bench needs at least one method; see `unlearnkit methods`")
    for name in job.methods:
        METHODS.entry(name)
    unknown = sorted(set(job.method_options) - set(job.methods))
    if unknown:
        raise InputError(f"method settings for {unknown[0]!r}, which is not among --methods {', '.join(job.methods)}")
    out = Path(job.out)
    ds = load_dataset(job.data)
    forget = resolve_forget(ds, job.data, out)
    spec = model_spec(job.model, job.model_options, ds)
    cfg = job.train or default_recipe(job.model)
    configs = {m: resolve_method_config(m, job.preset, ds.name, job.model, job.method_options.get(m, {})) for m in job.methods}
    rt = resolve_runtime(cfg)
    sets = eval_sets(ds, forget, rt.device)
    cache = resolve_cache_dir(job.cache_dir) / "references" / _reference_key(ds, forget, spec, cfg, job.run_seed)
    write_run_record(out, {
        "job": "bench",
        "config": {"data": to_dict(job.data), "model": spec_to_dict(spec), "train": to_dict(cfg),
                   "seeds": job.seeds, "run_seed": job.run_seed, "ceiling": job.ceiling},
        "dataset": ds.summary(), "dataset_fingerprint": ds.fingerprint, "forget_fingerprint": forget.fingerprint,
        "reference_cache": str(cache), "provenance": provenance(),
    })
    # Methods may be added to a bench folder later; each one's settings must stay what they were.
    for name, (mcfg, preset) in configs.items():
        write_run_record(out / "methods" / name, {"job": "bench-method", "config": {"method": name, "config": to_dict(mcfg), "preset": preset}}, name="config.json")
    forget.save(out / "forget.json")

    # The original model A(D): model 0 of the run, on the full training split.
    original_path = resolve_cache_dir(job.cache_dir) / "originals" / (
        fingerprint("original-v1", ds.fingerprint, spec_to_dict(spec), to_dict(cfg), job.run_seed) + ".safetensors")
    stats = train_stats(ds)
    if not checkpoint_complete(original_path):
        log("training the original model A(D)")
        train_all = tensor_set(ds, ds.indices("train"), stats=stats)
        train_models(spec, train_all, sets.val, cfg, [0], job.run_seed, "sequential",
                     lambda k, r: save_checkpoint(original_path, r.model, spec, {
                         "kind": "original", "seconds": r.seconds, "steps": r.steps, "train": to_dict(cfg),
                         "train_examples": len(train_all), "dataset_fingerprint": ds.fingerprint}))
    original, _, _ = load_checkpoint(original_path, device=rt.device)

    # Retrained references A(D \ S), cached across benches.
    n_ref = job.seeds * (2 if job.ceiling else 1)
    missing = [k for k in range(n_ref) if not (cache / f"seed_{k:04d}.npz").is_file()]
    if missing:
        log(f"retraining {len(missing)} reference models from scratch on D \\ S (cache: {cache})")
        retain_set = tensor_set(ds, retain_indices(ds, forget), stats=stats)

        def save_ref(k: int, r: TrainResult) -> None:
            write_npz(cache / f"seed_{k:04d}.npz", **model_outputs(r.model, sets, rt, {
                "kind": "retrain", "k": k, "seconds": r.seconds, "steps": r.steps, "best_epoch": r.best_epoch}))
            log(f"  retrain {k}: {r.seconds:.1f}s")

        train_models(spec, retain_set, sets.val, cfg, missing, job.run_seed, job.strategy, save_ref)
    references = [read_npz(cache / f"seed_{k:04d}.npz") for k in range(n_ref)]

    data = make_unlearn_data(ds, forget, spec, cfg, rt)
    runs: dict[str, list[dict[str, np.ndarray]]] = {}
    for name in job.methods:
        mcfg, _ = configs[name]
        folder = out / "methods" / name
        records = []
        for k in range(job.seeds):
            path = folder / f"seed_{k:04d}.npz"
            if not path.is_file():
                result = run_method(name, original, data, mcfg, seed=model_seed(job.run_seed, k))
                write_npz(path, **model_outputs(result.model, sets, rt, {
                    "kind": "unlearn", "method": name, "k": k, **result.cost.to_dict()}))
            records.append(read_npz(path))
        log(f"{name}: {job.seeds} seeds done")
        runs[name] = records
    board = leaderboard(runs, references[: job.seeds], references[job.seeds :] if job.ceiling else None, sets)
    board_record = {"rows": board, "seeds": job.seeds, "forget_examples": int(len(forget.indices)),
                    "dataset": ds.name, "model": job.model, "forget": forget.kind, "provenance": provenance()}
    write_json(out / "leaderboard.json", board_record)
    return board_record


def _confidences(records: list[dict[str, np.ndarray]], labels: np.ndarray) -> np.ndarray:
    return np.stack([logit_scaled_confidence(r["forget_logits"], labels) for r in records])


def _mean_acc(records: list[dict[str, np.ndarray]], name: str) -> float:
    return float(np.mean([record_meta(r)["accuracy"][name] for r in records]))


def leaderboard(
    runs: dict[str, list[dict[str, np.ndarray]]],
    references: list[dict[str, np.ndarray]],
    ceiling: list[dict[str, np.ndarray]] | None,
    sets: EvalSets,
) -> list[dict]:
    """Score every method's records against the references; rows sorted by final score (best first)."""
    forget_y = sets.forget.y.cpu().numpy()
    ref_conf = _confidences(references, forget_y)
    ref_acc = {n: _mean_acc(references, n) for n in ("retain", "test", "forget")}
    # Every retrain on record is a sample of one retrain's cost: the more, the less timing noise.
    retrain_seconds = float(np.mean([record_meta(r)["seconds"] for r in references + (ceiling or [])]))
    rows = []
    entries = dict(runs)
    if ceiling is not None:
        entries = {"retrain (ceiling)": ceiling, **entries}
    for name, records in entries.items():
        conf = _confidences(records, forget_y)
        compat = forgetting_quality(conf, ref_conf, mode="compat")
        bounded = forgetting_quality(conf, ref_conf, mode="bounded")
        acc = {n: _mean_acc(records, n) for n in ("retain", "test", "forget")}
        metas = [record_meta(r) for r in records]
        seconds = float(np.mean([m["seconds"] for m in metas]))
        first = records[0]
        forget_loss = F.cross_entropy(torch.from_numpy(first["forget_logits"]), torch.from_numpy(forget_y), reduction="none").numpy()
        test_y = sets.test.y.cpu().numpy()
        test_loss = F.cross_entropy(torch.from_numpy(first["test_logits"]), torch.from_numpy(test_y), reduction="none").numpy()
        probs = {k: torch.softmax(torch.from_numpy(first[f"{k}_logits"]), 1).numpy() for k in ("forget", "test", "retain_probe")}
        svc = svc_mia(probs["retain_probe"], sets.retain_probe.y.cpu().numpy(), probs["test"], test_y, probs["forget"], forget_y, seed=0)
        lira = ulira(conf, ref_conf, seed=0)
        rows.append({
            "method": name,
            "forget_quality": compat.forget_quality,
            "forget_quality_bounded": bounded.forget_quality,
            "score": final_score(compat.forget_quality, acc["retain"], acc["test"], ref_acc["retain"], ref_acc["test"]),
            "score_bounded": final_score(bounded.forget_quality, acc["retain"], acc["test"], ref_acc["retain"], ref_acc["test"]),
            "accuracy": acc,
            "retrain_accuracy": ref_acc,
            "seconds": seconds,
            "time_ratio": seconds / retrain_seconds if retrain_seconds else None,
            "over_time_limit": bool(name != "retrain (ceiling)" and seconds > COMPETITION_TIME_LIMIT * retrain_seconds),
            "steps": float(np.mean([m.get("steps", 0) for m in metas])),
            "peak_memory_bytes": max((m.get("peak_memory_bytes") or 0) for m in metas) or None,
            "loss_mia": loss_mia(forget_loss, test_loss, seed=0).accuracy,
            "svc_mia_efficacy": svc.efficacy,
            "ulira": lira.accuracy,
            "ulira_baseline": lira.baseline,
        })
    rows.sort(key=lambda r: -r["score"])
    return rows
