"""A bench as independent, idempotent work units, and the code that runs one.

The units of a bench, in dependency order:

* ``original``: A(D), the model every method starts from (one model, trained alone and timed);
* ``references[a:b]``: retrained models A(D \\ S) with indices a..b-1 (the first N are the
  references, the next N the ceiling set, a perfect unlearner scored like a method);
* ``NAME[a:b]``: unlearning runs a..b-1 of method NAME, each from the original (needs ``original``);
  ``NAME+guard[a:b]`` the same runs under the utility guard (a bench with ``guard``; docs/guard.md);
* ``retime``: planned only where the cached retrains were timed under other conditions (host,
  device, threads, precision; :func:`retime_reason`): one retrain trained alone and timed here, so
  that time ratios divide by a retrain timed where the methods run (needs ``original``, so that it
  runs beside the methods);
* ``score``: the leaderboard (needs every other unit).

Every model's record carries its ``compute`` (example passes, engine.compute) and the
``conditions`` its ``seconds`` were measured under; a record without them is an older one.

A unit reads its inputs from the store and writes each model's result atomically as it finishes, so
it is idempotent: rerun, it skips what exists. Seeds derive from (run seed, role, index) — the roles
``original``, ``retrain`` and ``unlearn/NAME`` — so no two models of a bench share a seed, and a
unit gives the same bits wherever it runs on the same hardware, precision and thread count.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from threadpoolctl import threadpool_limits

from unlearnkit.engine.checkpoint import checkpoint_bytes, checkpoint_complete, load_checkpoint, sidecar_info
from unlearnkit.engine.ensemble import resolve_strategy, train_seeds
from unlearnkit.engine.features import features_and_logits
from unlearnkit.engine.seeding import derive_seed
from unlearnkit.engine.train import TrainResult, predict
from unlearnkit.io import npz_bytes, provenance, write_bytes, write_json
from unlearnkit.methods import run_method
from unlearnkit.metrics.efficiency import measure, retrain_compute, run_conditions
from unlearnkit.metrics.features import reheaded_logits
from unlearnkit.metrics.utility import accuracy_of
from unlearnkit.models import build_model
from unlearnkit.results.leaderboard import GUARDED
from unlearnkit.runner.setting import Setting, resolve_setting
from unlearnkit.results.store import BenchStore, load_run, run_meta

UnitKind = Literal["original", "references", "method", "retime", "score"]
# Where a model's outputs are recorded: the forget set, the test set and the retain probe.
OUTPUT_SETS = ("forget", "test", "retain_probe")
# Where its re-headed outputs are recorded (a head fitted on its retain-probe features; the feature-level metric).
PROBE_SETS = ("forget", "test")


def model_seed(run_seed: int, role: str, k: int) -> int:
    """The seed of model ``k`` in ``role`` (``original``, ``retrain`` or ``unlearn/NAME``).

    Model 17 of a role is the same whether a run has 32 or 512 of them.
    """
    return derive_seed(run_seed, role, k)


@dataclass(frozen=True)
class Unit:
    """One idempotent piece of a bench (see the module docstring)."""

    kind: UnitKind
    method: str | None = None
    start: int = 0
    stop: int = 1

    @property
    def name(self) -> str:
        if self.kind in ("original", "retime", "score"):
            return self.kind
        return f"{self.method if self.kind == 'method' else 'references'}[{self.start}:{self.stop}]"

    @property
    def stage(self) -> str:
        """What the progress display and the time summary group this unit under."""
        return self.method if self.kind == "method" else self.kind

    @property
    def models(self) -> int:
        return self.stop - self.start if self.kind in ("references", "method") else int(self.kind in ("original", "retime"))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "method": self.method, "start": self.start, "stop": self.stop, "name": self.name}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Unit":
        return cls(raw["kind"], raw.get("method"), int(raw.get("start", 0)), int(raw.get("stop", 1)))


def dependencies(unit: Unit, units: list[Unit]) -> list[Unit]:
    """The units ``unit`` reads from: methods (and the re-timed retrain, which runs beside them)
    need the original; the score needs everything."""
    if unit.kind in ("method", "retime"):
        return [u for u in units if u.kind == "original"]
    if unit.kind == "score":
        return [u for u in units if u.kind != "score"]
    return []


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, and at most ``n`` BLAS threads for numpy and scipy
    (bit-for-bit results depend on the thread count).

    The BLAS cap matters as much as torch's: the feature probe's logistic regression and the score's
    scipy calls run on numpy's BLAS, whose own pool otherwise starts a thread per core in every worker
    process. On a 2-core machine with two workers fitting at once, the median probe fit took 0.21 s
    instead of 0.018 s (threads spinning for the core the other worker holds;
    benchmarks/bench_probe_threads.py), and the probe was two thirds of a unit's time.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(old)


# -- what a unit writes ------------------------------------------------------------------------------

def unit_paths(store: BenchStore, unit: Unit) -> list[Path]:
    """The files whose existence means ``unit`` is finished (the score's: the leaderboard)."""
    if unit.kind == "original":
        return [store.original_checkpoint.with_suffix(".json"), store.original_outputs]
    if unit.kind == "references":
        return [store.reference(k) for k in range(unit.start, unit.stop)]
    if unit.kind == "method":
        return [store.method_run(unit.method, k) for k in range(unit.start, unit.stop)]
    if unit.kind == "retime":
        return [store.retimed_retrain]
    return [store.leaderboard]


def unit_done(store: BenchStore, unit: Unit) -> bool:
    return all(p.is_file() for p in unit_paths(store, unit))


def unit_todo(store: BenchStore, unit: Unit) -> list[int]:
    """Indices of ``unit``'s models not yet on disk."""
    if unit.kind in ("original", "retime"):
        return [] if unit_done(store, unit) else [0]
    return [k for k, p in zip(range(unit.start, unit.stop), unit_paths(store, unit)) if not p.is_file()]


def model_outputs(model: torch.nn.Module, setting: Setting, meta: dict[str, Any]) -> bytes:
    """One model's record: float32 logits on the output sets, re-headed logits on the forget and test
    sets, accuracies, and ``meta``, as npz bytes.

    A model whose logits are not all finite is recorded as diverged (``meta["diverged"]`` says where);
    the score counts it as the worst case instead of failing, in F and in feature F alike. A model
    whose features are not all finite has NaN re-headed logits (no head can be fitted on them).
    """
    sets = setting.sets
    # Features and logits come from one pass; the logits are predict()'s bit for bit.
    outputs = {name: features_and_logits(model, getattr(sets, name), runtime=setting.runtime) for name in OUTPUT_SETS}
    logits = {name: lg for name, (_, lg) in outputs.items()}
    acc = {name: accuracy_of(lg, getattr(sets, name).y) for name, lg in logits.items()}
    for name in ("retain", "val"):
        data = getattr(sets, name)
        acc[name] = accuracy_of(predict(model, data, runtime=setting.runtime), data.y)
    bad = [name for name, lg in logits.items() if not torch.isfinite(lg).all()]
    if bad:
        meta = {**meta, "diverged": f"non-finite logits on {', '.join(bad)}"}
    arrays = {f"{name}_logits": lg.numpy().astype(np.float32) for name, lg in logits.items()}
    arrays.update(_probe_logits({name: f for name, (f, _) in outputs.items()}, sets, setting.spec.num_classes))
    return npz_bytes(**arrays, meta=np.array(json.dumps({**meta, "accuracy": acc})))


def _probe_logits(features: dict[str, torch.Tensor], sets, num_classes: int) -> dict[str, np.ndarray]:
    """``{SET_probe_logits}`` for each of PROBE_SETS: a linear head fitted on the retain probe's
    features (metrics.features), applied to the set's features; NaN where any feature is not finite."""
    if all(torch.isfinite(f).all() for f in features.values()):
        fitted = reheaded_logits(features["retain_probe"].numpy(), sets.retain_probe.y.cpu().numpy(), num_classes,
                                 *(features[name].numpy() for name in PROBE_SETS))
    else:
        fitted = [np.full((len(features[name]), num_classes), np.nan, dtype=np.float32) for name in PROBE_SETS]
    return {f"{name}_probe_logits": lg for name, lg in zip(PROBE_SETS, fitted)}


# -- running a unit --------------------------------------------------------------------------------

Emit = Callable[[Path, bytes], None]


def execute(job, unit: Unit, todo: list[int], store: BenchStore, emit: Emit, original: bytes | None = None) -> None:
    """Compute the models ``todo`` of ``unit`` and hand each file to ``emit`` as soon as it exists.

    Args:
        job: The :class:`~unlearnkit.runner.jobs.BenchJob`.
        unit: The unit (not ``score``).
        todo: Its model indices to compute (:func:`unit_todo`).
        store: Names the output paths.
        emit: Writes one file (locally: atomically to disk; on Ray: collected and returned).
        original: The original's safetensors bytes, for a method unit running where the store is
            not readable; None reads it from the store.
    """
    setting = resolve_setting(job.setting)
    with torch_threads(job.threads):
        if unit.kind == "original":
            _train_original(job, setting, store, emit)
        elif unit.kind == "references":
            _train_references(job, setting, store, todo, emit)
        elif unit.kind == "method":
            _run_method(job, setting, store, unit.method, todo, emit, original)
        elif unit.kind == "retime":
            _retime(job, setting, store, emit)
        else:
            raise ValueError(f"unit {unit.name} is not computed by execute()")


def _train_original(job, setting: Setting, store: BenchStore, emit: Emit) -> None:
    if checkpoint_complete(store.original_checkpoint):
        # Trained for another forget set of this setting: only its outputs on this one are missing.
        model, _, info = load_checkpoint(store.original_checkpoint, device=setting.runtime.device)
        emit(store.original_outputs, model_outputs(model, setting, {k: info[k] for k in ORIGINAL_META if k in info}))
        return
    seed = model_seed(setting.config.run_seed, "original", 0)
    # Trained alone with the sequential loop, so its time is one retrain's under the same conditions.
    with measure(setting.runtime.device) as cost:
        (result,) = train_seeds(setting.spec, setting.sets.train, setting.sets.val, setting.recipe, [seed], strategy="sequential")
    meta = {"kind": "original", "k": 0, "seed": seed, "seconds": result.seconds, "steps": result.steps,
            "compute": result.compute, "conditions": run_conditions(setting.runtime), "peak_memory_bytes": cost.peak_memory_bytes,
            "train_examples": len(setting.sets.train), "best_epoch": result.best_epoch, "history": result.history,
            "checkpoint_rule": _checkpoint_rule(setting)}
    weights, sidecar = checkpoint_bytes(result.model, setting.spec, sidecar_info(
        "original", k=0, seed=seed, recipe=setting.recipe, dataset_fingerprint=setting.dataset.fingerprint,
        forget_fingerprint=None, provenance=provenance(), extra=meta))
    emit(store.original_checkpoint, weights)
    emit(store.original_outputs, model_outputs(result.model, setting, meta))
    emit(store.original_checkpoint.with_suffix(".json"), sidecar)  # last: marks the checkpoint complete


# The original's record fields, kept in its checkpoint's sidecar.
ORIGINAL_META = ("kind", "k", "seed", "seconds", "steps", "compute", "conditions", "peak_memory_bytes", "train_examples",
                 "best_epoch", "history", "checkpoint_rule")


def _train_references(job, setting: Setting, store: BenchStore, todo: list[int], emit: Emit) -> None:
    run_seed = setting.config.run_seed
    by_seed = {model_seed(run_seed, "retrain", k): k for k in todo}
    strategy = job.strategy
    conditions = run_conditions(setting.runtime)

    def save(r: TrainResult) -> None:
        k = by_seed[r.seed]
        # A model trained inside a vectorised ensemble reports ensemble time / size: not one retrain's.
        emit(store.reference(k), model_outputs(r.model, setting, {
            "kind": "retrain", "k": k, "seed": r.seed, "seconds": r.seconds, "steps": r.steps, "compute": r.compute,
            "conditions": conditions, "best_epoch": r.best_epoch, "timed_alone": strategy_alone(strategy, setting)}))

    train_seeds(setting.spec, setting.sets.retain, setting.sets.val, setting.recipe, list(by_seed),
                strategy=strategy, block_size=max(len(todo), 1), on_result=save)


def strategy_alone(strategy: str, setting: Setting) -> bool:
    """Whether ``strategy`` trains one model at a time (its per-model time is a real retrain's)."""
    return resolve_strategy(strategy, setting.recipe) in ("sequential", "processes")


def setting_retrain_compute(setting: Setting) -> float:
    """Example passes of one retrain in ``setting`` (its recipe on R, validation predictions included)."""
    return retrain_compute(len(setting.sets.retain), len(setting.sets.val), setting.recipe)


def budget_compute(budget: float | None, setting: Setting) -> float | None:
    """The compute cap of a method run: ``budget`` x one retrain's example passes (None: no cap)."""
    if budget is None:
        return None
    return budget * setting_retrain_compute(setting)


def run_labels(job) -> list[str]:
    """The names of a bench's method rows: each method, then (with ``job.guard``) each method under the
    utility guard, ``NAME+guard`` (docs/guard.md): side by side in one leaderboard."""
    guarded = [f"{m}{GUARDED}" for m in job.methods] if job.guard is not None else []
    return list(job.methods) + guarded


def split_label(label: str) -> tuple[str, bool]:
    """(method name, whether the row is guarded) of a row name from :func:`run_labels`."""
    if label.endswith(GUARDED):
        return label[: -len(GUARDED)], True
    return label, False


def _run_method(job, setting: Setting, store: BenchStore, label: str, todo: list[int], emit: Emit, original: bytes | None) -> None:
    if original is None:
        model, _, _ = load_checkpoint(store.original_checkpoint, device=setting.runtime.device)
    else:
        model = build_model(setting.spec)
        model.load_state_dict(load_safetensors(original))
        model = model.to(setting.runtime.device).eval()
    data = setting.unlearn_data
    name, guarded = split_label(label)
    cfg = job.method_configs[name]
    guard = job.guard if guarded else None
    cap = budget_compute(job.budget, setting)
    conditions = run_conditions(setting.runtime)
    for k in todo:
        # A guarded run takes its unguarded twin's seed: the same method run, paired, with the guard's choice on top.
        seed = model_seed(setting.config.run_seed, f"unlearn/{name}", k)
        result = run_method(name, model, data, cfg, seed=seed, max_compute=cap, guard=guard,
                            regime=job.method_regime.get(name))
        emit(store.method_run(label, k), model_outputs(result.model, setting, {
            "kind": "unlearn", "method": label, "k": k, "seed": seed, **result.cost.to_dict(), "conditions": conditions,
            "budget_compute": cap, "stopped_by_budget": result.stopped_by_budget,
            "guard": result.guard.to_dict() if result.guard is not None else None,
            "regime": result.regime.to_dict() if result.regime is not None else None}))


# -- re-timing a retrain where the methods run --------------------------------------------------------

def bench_conditions(setting: Setting, threads: int) -> dict[str, Any]:
    """The conditions a bench's units measure wall time under (see ``metrics.efficiency.run_conditions``)."""
    with torch_threads(threads):
        return run_conditions(setting.runtime)


def retime_reason(store: BenchStore, conditions: dict[str, Any]) -> str | None:
    """Why one retrain must be re-timed under ``conditions``; None when no re-timing is needed.

    The retrain time a bench divides by comes from the references trained one at a time or,
    without any, from the original (see runner.score). Those cached by another session may have
    been timed under other conditions (or under unrecorded ones: an older record). Nothing cached
    yet needs nothing: it will be trained, and timed, here.
    """
    refs = sorted(store.reference(0).parent.glob("seed_*.npz")) if store.reference(0).parent.is_dir() else []
    metas = [m for m in (run_meta(load_run(p)) for p in refs) if m.get("timed_alone")]
    what = f"{len(metas)} cached retrains trained one at a time"
    if not metas:
        if not store.original_outputs.is_file():
            return None
        metas, what = [run_meta(load_run(store.original_outputs))], "the cached original model"
    if any(m.get("conditions") == conditions for m in metas):
        return None
    seen = {json.dumps(m.get("conditions"), sort_keys=True) for m in metas}
    timed = ("under unrecorded conditions (records of an older version)" if seen == {"null"}
             else "under " + "; ".join(_conditions_text(json.loads(c)) for c in sorted(seen)))
    return f"{what} were timed {timed}, not under this bench's {_conditions_text(conditions)}"


def _conditions_text(c: dict[str, Any] | None) -> str:
    if not c:
        return "unrecorded conditions"
    return f"host {c.get('host')}, device {c.get('device')}, {c.get('threads')} threads, {c.get('precision')}"


def _retime(job, setting: Setting, store: BenchStore, emit: Emit) -> None:
    """Train one retrain alone here and write its time, compute, steps, conditions and why it was re-timed."""
    conditions = run_conditions(setting.runtime)
    reason = retime_reason(store, conditions) or "re-timed on request (the cached retrains' conditions match)"
    seed = model_seed(setting.config.run_seed, "retrain", 0)
    (result,) = train_seeds(setting.spec, setting.sets.retain, setting.sets.val, setting.recipe, [seed],
                            strategy="sequential")
    emit(store.retimed_retrain, json.dumps({
        "seconds": result.seconds, "compute": result.compute, "steps": result.steps, "conditions": conditions,
        "reason": reason}, indent=1).encode())


def _checkpoint_rule(setting: Setting) -> str:
    if not setting.recipe.keep_best:
        return "last epoch (train.keep_best = false)"
    if len(setting.sets.val) == 0:
        return "last epoch: the validation split is empty, so no best-validation epoch can be chosen"
    return "best validation accuracy"


def run_unit_here(job, store: BenchStore, unit: Unit, *, backend: str = "local") -> dict[str, Any] | None:
    """Run ``unit``'s missing models in this process, writing to the store; returns its run record.

    Returns None when nothing was left to do.
    """
    todo = unit_todo(store, unit)
    if not todo:
        return None
    start = time.perf_counter()
    execute(job, unit, todo, store, write_bytes)
    return record_unit(store, unit, time.perf_counter() - start, len(todo), backend)


def record_unit(store: BenchStore, unit: Unit, seconds: float, models: int, backend: str) -> dict[str, Any]:
    """Write ``OUT/units/NAME.json``: when, where and how long ``unit`` ran."""
    record = {"unit": unit.name, "stage": unit.stage, "seconds": seconds, "models": models, "backend": backend,
              "host": socket.gethostname(), "pid": os.getpid(), "finished": time.time()}
    write_json(store.unit_record(unit.name), record)
    return record

