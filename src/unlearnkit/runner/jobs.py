"""The jobs: ``train`` and ``unlearn`` (many seeds of one thing) and ``bench`` (a set of units).

Each job takes a frozen description with resolved configs, resolves its setting once, and writes its
results through the store; every job resumes where an interrupted run stopped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from unlearnkit.config import from_dict, to_dict
from unlearnkit.engine.checkpoint import checkpoint_complete, save_checkpoint, sidecar_info
from unlearnkit.engine.ensemble import STRATEGIES, train_seeds
from unlearnkit.engine.model_import import load_model
from unlearnkit.engine.train import TrainConfig, TrainResult, accuracy
from unlearnkit.errors import InputError
from unlearnkit.io import provenance, write_json
from unlearnkit.methods import METHODS, method_config, run_method
from unlearnkit.methods.defaults import resolve_values, transfer_defaults
from unlearnkit.methods.guard import GuardConfig
from unlearnkit.methods.regime import UNDERFIT_SCALE
from unlearnkit.metrics.efficiency import cost_ratios, proc_bytes, retrain_steps, run_conditions
from unlearnkit.metrics.forgetting import MIN_MODELS
from unlearnkit.runner.setting import SettingConfig, resolve_setting, setting_from_dict, setting_to_dict
from unlearnkit.runner.prepare import find_pool, with_pools
from unlearnkit.results.store import RESULTS_VERSION, BenchStore, check_record, write_record_once
from unlearnkit.runner.units import (Unit, bench_conditions, budget_compute, model_seed, retime_reason, run_labels,
                                     setting_retrain_compute, split_label)

# What `unlearnkit bench` runs when no --methods are given: our strongest method (scramble_relearn),
# the competition's top three, the strongest literature baseline on the built-in set (salun), the
# proposal's own orthogonal surgery, and the cheap baseline they must all beat; chosen so that the
# default bench stays within minutes on two cores (neggrad_plus and scrub cost 54 % and 35 % of a
# retrain there).
DEFAULT_METHODS = ("finetune", "salun", "orthogonal_surgery", "fanchuan", "kookmin", "seif", "scramble_relearn")
# Prepared methods join the default list where the cache holds a pool for the setting (`unlearnkit prepare`).
PREPARED_DEFAULTS = ("shadow_matching",)


def default_methods(setting: SettingConfig, cache_dir: str = "") -> tuple[str, ...]:
    """The methods a bench runs when none are named: DEFAULT_METHODS, and PREPARED_DEFAULTS where a
    complete pool for ``setting``'s data, model and recipe is in the cache."""
    return DEFAULT_METHODS + (PREPARED_DEFAULTS if find_pool(setting, cache_dir) is not None else ())


DEFAULT_SEEDS = 16


def resolve_method_config(method: str, preset: str | None, setting: SettingConfig, options: dict | None = None):
    """A method's config: its reference defaults, then (``preset="auto"``) the swept defaults for the
    setting's model family, resolved against the setting's recipe (see
    :mod:`unlearnkit.methods.defaults`), then ``options``. Returns (config, the family used or None)."""
    if preset not in (None, "auto"):
        raise InputError(f"--preset {preset!r}: expected auto (the swept defaults for the model) or none (the reference defaults)")
    swept = transfer_defaults(method, setting.model) if preset == "auto" else None
    base = resolve_values(swept, setting.train) if swept else {}
    used = setting.model.removeprefix("test_") if swept else None
    return method_config(method, {**base, **(options or {})}), used


def regime_fields(method: str, preset: str | None, options: dict | None = None) -> tuple[str, ...] | None:
    """The fields the regime rule (:mod:`unlearnkit.methods.regime`) may scale in a run of ``method``:
    the strength fields it declares that ``options`` (the user's settings) do not set; None under
    the reference defaults (``preset`` none), which stay as published, where the method's factor is 1
    (the rule could change nothing, so its probe is not paid for) and where no such field is left."""
    if preset != "auto" or UNDERFIT_SCALE.get(method, 1.0) == 1.0:
        return None
    fields = tuple(f for f in METHODS.entry(method).meta.get("strength", ()) if f not in (options or {}))
    return fields or None


# -- train ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainJob:
    """Train models ``seeds`` from scratch: originals A(D), or retrains A(D \\ S) given a forget set.

    Model k's seed is the bench's for the same role: original k = 0 is a bench's original, retrain k
    its reference k.
    """

    setting: SettingConfig
    seeds: tuple[int, ...] = (0,)
    strategy: str = "auto"
    out: str = "runs/train"


def run_train(job: TrainJob, *, log: Callable[[str], None] = print) -> list[Path]:
    """Train every model of ``job`` not already on disk; returns the checkpoint paths in seed order."""
    if job.strategy not in STRATEGIES:
        raise InputError(f"--strategy {job.strategy!r}: expected one of {', '.join(STRATEGIES)}")
    setting = resolve_setting(job.setting)
    out = Path(job.out)
    role = "retrain" if setting.forget is not None else "original"
    record = {"job": role, "setting": setting_to_dict(job.setting), "strategy": job.strategy,
              "dataset_fingerprint": setting.dataset.fingerprint,
              "forget_fingerprint": setting.forget.fingerprint if setting.forget else None,
              "results_version": RESULTS_VERSION, "summary": setting.summary(), "provenance": provenance()}
    write_record_once(out / "run.json", record, ("job", "setting", "dataset_fingerprint", "forget_fingerprint", "results_version"),
                      f"output folder {out}")
    if setting.forget is not None:
        setting.forget.save(out / "forget.json")
    todo = [k for k in job.seeds if not checkpoint_complete(_ckpt(out, k))]
    if len(todo) < len(job.seeds):
        log(f"resuming: {len(job.seeds) - len(todo)} of {len(job.seeds)} models already in {out / 'models'}")
    if len(setting.sets.val) == 0 and setting.recipe.keep_best:
        log("the validation split is empty: each model keeps its last epoch (no best-validation checkpoint)")
    by_seed = {model_seed(setting.config.run_seed, role, k): k for k in todo}
    sets, rt = setting.sets, setting.runtime
    train_set = sets.retain if setting.forget is not None else sets.train

    def save(result: TrainResult) -> None:
        k = by_seed[result.seed]
        acc = {name: accuracy(result.model, getattr(sets, name), runtime=rt) for name in ("train", "val", "test")}
        if sets.forget is not None:
            acc["forget"] = accuracy(result.model, sets.forget, runtime=rt)
        save_checkpoint(_ckpt(out, k), result.model, setting.spec, sidecar_info(
            role, k=k, seed=result.seed, recipe=setting.recipe, dataset_fingerprint=setting.dataset.fingerprint,
            forget_fingerprint=record["forget_fingerprint"], provenance=record["provenance"], extra={
                "run_seed": setting.config.run_seed, "seconds": result.seconds, "steps": result.steps,
                "compute": result.compute, "conditions": run_conditions(rt), "train_examples": len(train_set),
                "best_epoch": result.best_epoch, "history": result.history, "accuracy": acc}))
        log(f"model {k}: {result.seconds:.1f}s, " + ", ".join(f"{n} acc {v:.3f}" for n, v in acc.items()))

    train_seeds(setting.spec, train_set, sets.val, setting.recipe, list(by_seed), strategy=job.strategy, on_result=save)
    return [_ckpt(out, k) for k in job.seeds]


def _ckpt(out: Path, k: int) -> Path:
    return out / "models" / f"seed_{k:04d}.safetensors"


# -- unlearn --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UnlearnJob:
    """Run ``method`` (config ``method_config``) on the model at ``checkpoint`` for seeds ``seeds``."""

    setting: SettingConfig
    method: str
    checkpoint: str
    method_config: Any
    seeds: tuple[int, ...] = (0,)
    budget: float | None = None
    out: str = "runs/unlearn"


def checkpoint_for_setting(path: str, setting) -> tuple[Any, dict]:
    """Load the checkpoint at ``path`` (ours, or a state dict) for ``setting``; returns (model, info).

    The same loading and checks as ``unlearnkit forget`` (:func:`unlearnkit.engine.model_import.load_model`).
    """
    return load_model(path, setting.spec, setting.dataset, setting.runtime.device)


def run_unlearn(job: UnlearnJob, *, log: Callable[[str], None] = print) -> list[Path]:
    """Unlearn the forget set from the checkpoint with every seed not already on disk."""
    setting = resolve_setting(job.setting)
    data = setting.unlearn_data
    original, info = checkpoint_for_setting(job.checkpoint, setting)
    out = Path(job.out)
    record = {"job": "unlearn", "setting": setting_to_dict(job.setting), "method": job.method,
              "method_config": to_dict(job.method_config), "budget": job.budget, "checkpoint": str(job.checkpoint),
              "dataset_fingerprint": setting.dataset.fingerprint, "forget_fingerprint": setting.forget.fingerprint,
              "results_version": RESULTS_VERSION, "provenance": provenance()}
    write_record_once(out / "run.json", record, ("job", "setting", "method", "method_config", "budget", "checkpoint",
                                                 "forget_fingerprint", "results_version"), f"output folder {out}")
    setting.forget.save(out / "forget.json")
    # One retrain costs about the original's training, scaled to the retain set's size; its time
    # compares only where the original was timed under this run's conditions.
    same = info.get("conditions") == run_conditions(setting.runtime)
    ref_seconds = info.get("seconds", 0.0) * len(data.retain) / max(info.get("train_examples", len(data.retain)), 1) if same else 0.0
    ref_steps = retrain_steps(len(data.retain), setting.recipe.batch_size, setting.recipe.epochs)
    ref_compute = setting_retrain_compute(setting)
    cap = budget_compute(job.budget, setting)
    paths = []
    for k in job.seeds:
        path = _ckpt(out, k)
        paths.append(path)
        if checkpoint_complete(path):
            log(f"model {k}: already done")
            continue
        seed = model_seed(setting.config.run_seed, f"unlearn/{job.method}", k)
        result = run_method(job.method, original, data, job.method_config, seed=seed, max_compute=cap)
        acc = {name: accuracy(result.model, getattr(setting.sets, name), runtime=setting.runtime)
               for name in ("forget", "retain", "val", "test")}
        ratios = cost_ratios(result.cost, retrain_seconds=ref_seconds or None, retrain_steps=ref_steps,
                             retrain_compute=ref_compute)
        save_checkpoint(path, result.model, setting.spec, sidecar_info(
            "unlearn", k=k, seed=seed, recipe=setting.recipe, dataset_fingerprint=setting.dataset.fingerprint,
            forget_fingerprint=setting.forget.fingerprint, provenance=record["provenance"], extra={
                "method": job.method, "config": result.config, "cost": {**result.cost.to_dict(), **ratios},
                "stopped_by_budget": result.stopped_by_budget, "accuracy": acc}))
        flag = "  OVER the competition's 20% limit (on compute)" if ratios["over_time_limit"] else ""
        log(f"model {k}: {result.cost.seconds:.1f}s, {ratios['compute_ratio']:.1%} of a retrain's compute{flag}, "
            + ", ".join(f"{n} acc {v:.3f}" for n, v in acc.items()))
    return paths


# -- bench ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchJob:
    """A benchmark: ``seeds`` runs of each method against ``seeds`` retrains (and ``seeds`` more as the ceiling).

    Attributes:
        setting: Dataset, forget set, model, recipe, run seed.
        methods: Method names, in the order they are planned.
        method_configs: Each method's resolved config (see :func:`resolve_method_config`).
        method_presets: The preset each config came from (None: reference defaults), for the record.
        seeds: N, models per side.
        ceiling: Also train N more retrains and score them as a perfect unlearner.
        budget: Cap each method run at this fraction of one retrain's compute (example passes; None: no cap).
        threads: Torch threads per unit; results are bit-identical for equal thread counts.
        block: Models per unit.
        strategy: How a reference unit trains its models (engine.ensemble strategies).
        out: The bench folder.
        cache_dir: Where originals and references are cached ("" = default).
        guard: Also run every method under this utility guard, as rows ``NAME+guard`` beside the
            unguarded ones (docs/guard.md); None (the default): unguarded rows only, comparable
            with published methods.
        method_regime: Each method's fields the regime rule may scale (see :func:`regime_fields`;
            absent or None: no rule).
    """

    setting: SettingConfig
    methods: tuple[str, ...]
    method_configs: dict = field(default_factory=dict)
    method_presets: dict = field(default_factory=dict)
    seeds: int = DEFAULT_SEEDS
    ceiling: bool = True
    budget: float | None = None
    threads: int = 1
    block: int = 4
    strategy: str = "auto"
    out: str = "runs/bench"
    cache_dir: str = ""
    guard: GuardConfig | None = None
    method_regime: dict = field(default_factory=dict)


def make_bench_job(
    setting: SettingConfig,
    *,
    methods: tuple[str, ...] = DEFAULT_METHODS,
    method_options: dict | None = None,
    preset: str | None = "auto",
    seeds: int = DEFAULT_SEEDS,
    ceiling: bool = True,
    budget: float | None = None,
    threads: int | None = None,
    block: int | None = None,
    strategy: str = "auto",
    out: str = "runs/bench",
    cache_dir: str = "",
    guard: GuardConfig | None = None,
) -> BenchJob:
    """Check a bench request and resolve every method's config; see :class:`BenchJob` for the fields.

    ``threads`` defaults to 1 on a CPU (small models gain little from more threads per model, and
    one thread per worker process uses every core) and ``block`` to 4 models per unit on a CPU, 16
    on a GPU (where a block is one vectorised ensemble).
    """
    if seeds < MIN_MODELS:
        raise InputError(f"--seeds {seeds}: the forgetting-quality score needs at least {MIN_MODELS} seeds per side")
    if setting.forget_kind is None:
        raise InputError("bench needs a forget set: pass --forget SPEC (e.g. identity_skewed:0.02)")
    if not methods:
        raise InputError("bench needs at least one method; see `unlearnkit methods`")
    if len(set(methods)) != len(methods):
        raise InputError(f"--methods lists a method twice: {', '.join(methods)}")
    for name in methods:
        METHODS.entry(name)
    options = method_options or {}
    unknown = sorted(set(options) - set(methods))
    if unknown:
        raise InputError(f"method settings for {unknown[0]!r}, which is not among --methods {', '.join(methods)}")
    if budget is not None and not 0 < budget <= 10:
        raise InputError(f"--budget {budget}: expected a fraction of one retrain's compute in (0, 10], e.g. 0.2")
    if strategy not in STRATEGIES:
        raise InputError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    if Path(out).exists() and not Path(out).is_dir():
        raise InputError(f"--out {out}: a file is there; a bench needs a folder (a new or an earlier bench's)")
    # Every config is built (and its values checked) here, before the bench writes anything.
    resolved = {m: resolve_method_config(m, preset, setting, options.get(m, {})) for m in methods}
    cuda = _uses_cuda(setting.train)
    threads = threads if threads is not None else 1
    block = block if block is not None else (16 if cuda else 4)
    for name, value in (("--threads", threads), ("--block", block)):
        if value < 1:
            raise InputError(f"{name} {value}: expected at least 1")
    configs = with_pools({m: c for m, (c, _) in resolved.items()}, setting, cache_dir)  # prepared methods read a pool
    return BenchJob(setting, tuple(methods), configs, {m: p for m, (_, p) in resolved.items()},
                    seeds, ceiling, budget, threads, block, strategy, out, cache_dir, guard,
                    {m: regime_fields(m, preset, options.get(m)) for m in methods})


def _uses_cuda(train: TrainConfig) -> bool:
    import torch

    return train.device.startswith("cuda") or (train.device == "auto" and torch.cuda.is_available())


def bench_to_dict(job: BenchJob) -> dict[str, Any]:
    return {"setting": setting_to_dict(job.setting), "methods": list(job.methods),
            "method_configs": {m: to_dict(c) for m, c in job.method_configs.items()},
            "method_presets": dict(job.method_presets), "seeds": job.seeds, "ceiling": job.ceiling,
            "budget": job.budget, "threads": job.threads, "block": job.block, "strategy": job.strategy,
            "out": str(job.out), "cache_dir": job.cache_dir,
            "guard": job.guard.to_dict() if job.guard is not None else None,
            "method_regime": {m: None if f is None else list(f) for m, f in job.method_regime.items()}}


def bench_from_dict(raw: dict[str, Any]) -> BenchJob:
    try:
        configs = {m: from_dict(METHODS.entry(m).config, c, where=f"method.{m}") for m, c in raw["method_configs"].items()}
        return BenchJob(setting_from_dict(raw["setting"]), tuple(raw["methods"]), configs, dict(raw.get("method_presets", {})),
                        int(raw["seeds"]), bool(raw["ceiling"]), raw.get("budget"), int(raw["threads"]), int(raw["block"]),
                        raw["strategy"], raw["out"], raw.get("cache_dir", ""),
                        GuardConfig.from_dict(raw["guard"]) if raw.get("guard") is not None else None,
                        {m: None if f is None else tuple(f) for m, f in raw.get("method_regime", {}).items()})
    except (KeyError, TypeError) as exc:
        raise InputError(f"bench record: missing or malformed field ({exc})") from None


def plan_units(job: BenchJob) -> list[Unit]:
    """The bench's units in dependency order: original, reference blocks, method blocks, score."""
    n_ref = job.seeds * (2 if job.ceiling else 1)
    units = [Unit("original")]
    units += [Unit("references", None, a, min(a + job.block, n_ref)) for a in range(0, n_ref, job.block)]
    for name in run_labels(job):
        units += [Unit("method", name, a, min(a + job.block, job.seeds)) for a in range(0, job.seeds, job.block)]
    return units + [Unit("score")]


def prepare_bench(job: BenchJob) -> tuple[BenchStore, list[Unit]]:
    """Resolve the setting, check the folder against it, write the bench's records; returns (store, units).

    A folder that holds a bench over another setting, N, budget or results version is refused; a
    method whose config changed is refused; a new method is added (nothing else is recomputed).
    """
    setting = resolve_setting(job.setting)
    store = BenchStore.for_setting(job.out, job.cache_dir, setting)
    record = {
        "setting": setting_to_dict(job.setting), "seeds": job.seeds, "ceiling": job.ceiling, "budget": job.budget,
        "threads": job.threads, "results_version": RESULTS_VERSION, "dataset_fingerprint": setting.dataset.fingerprint,
        "forget_fingerprint": setting.forget.fingerprint, "cache": str(store.cache), "original_key": store.original_key,
        "reference_key": store.reference_key, "summary": setting.summary(), "provenance": provenance(),
    }
    identity = ("setting", "seeds", "ceiling", "budget", "results_version", "dataset_fingerprint", "forget_fingerprint")
    configs = {label: (store.method_dir(label) / "config.json",
                       {"method": label, "config": to_dict(job.method_configs[name]), "preset": job.method_presets.get(name),
                        **({"guard": job.guard.to_dict()} if guarded else {}),
                        **({"regime": list(job.method_regime[name])} if job.method_regime.get(name) else {})})
               for label, (name, guarded) in ((label, split_label(label)) for label in run_labels(job))}
    # Every record is checked before the first is written: a refused bench leaves the folder as it was.
    check_record(store.out / "bench.json", record, identity, f"bench folder {store.out}")
    for name, (path, config) in configs.items():
        check_record(path, config, ("method", "config", "guard"), f"bench folder {store.out} (method {name})")
    # Rewritten on every run: it says where this run's cache is (a folder may move between caches).
    write_record_once(store.out / "bench.json", record, identity, f"bench folder {store.out}", update=True)
    for name, (path, config) in configs.items():
        write_record_once(path, config, ("method", "config", "guard"), f"bench folder {store.out} (method {name})")
    setting.forget.save(store.out / "forget.json")
    units = plan_units(job)
    if bench_retime_reason(job, store, setting):
        units.insert(-1, Unit("retime"))  # before the score, which reads its record
    write_json(store.units_file, {"job": bench_to_dict(job), "units": [u.to_dict() for u in units]})
    return store, units


def bench_retime_reason(job: BenchJob, store: BenchStore, setting=None) -> str | None:
    """Why this bench re-times one retrain (the cached retrains were timed under other conditions); None if it need not."""
    setting = setting or resolve_setting(job.setting)
    return retime_reason(store, bench_conditions(setting, job.threads))


def default_workers(threads: int) -> int:
    """Worker processes this machine's cores and memory allow at ``threads`` threads each."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    by_cores = max(1, cores // threads)
    # A small-model worker peaks near 1 GiB (torch, the dataset's tensors, one model being trained).
    available = proc_bytes("/proc/meminfo", "MemAvailable")
    by_memory = max(1, int(available // 2**30) - 1) if available else by_cores
    return max(1, min(by_cores, by_memory))
