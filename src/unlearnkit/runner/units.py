"""A bench as independent, idempotent work units, and the code that runs one.

The units of a bench, in dependency order:

* ``original``: A(D), the model every method starts from (one model, trained alone and timed);
* ``references[a:b]``: retrained models A(D \\ S) with indices a..b-1 (the first N are the
  references, the next N the ceiling set, a perfect unlearner scored like a method);
* ``NAME[a:b]``: unlearning runs a..b-1 of method NAME, each from the original (needs ``original``);
* ``score``: the leaderboard (needs every other unit).

A unit reads its inputs from the store and writes each model's result atomically as it finishes, so
it is idempotent: rerun, it skips what exists. Seeds derive from (run seed, role, index) — the roles
``original``, ``retrain`` and ``unlearn/NAME`` — so no two models of a bench share a seed, and a
unit gives the same bits wherever it runs on the same hardware, precision and thread count.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import numpy as np
import torch
from safetensors.torch import load as load_safetensors

from unlearnkit.config import to_dict
from unlearnkit.engine.checkpoint import checkpoint_bytes, load_checkpoint
from unlearnkit.engine.ensemble import resolve_strategy, train_seeds
from unlearnkit.engine.seeding import derive_seed
from unlearnkit.engine.train import TrainResult, predict
from unlearnkit.io import npz_bytes, write_bytes, write_json
from unlearnkit.methods import run_method
from unlearnkit.metrics.efficiency import measure, retrain_steps
from unlearnkit.models import build_model
from unlearnkit.runner.setting import Setting, resolve_setting
from unlearnkit.results.store import BenchStore

UnitKind = Literal["original", "references", "method", "score"]
# Where a model's outputs are recorded: the forget set, the test set and the retain probe.
OUTPUT_SETS = ("forget", "test", "retain_probe")


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
        if self.kind in ("original", "score"):
            return self.kind
        return f"{self.method if self.kind == 'method' else 'references'}[{self.start}:{self.stop}]"

    @property
    def stage(self) -> str:
        """What the progress display and the time summary group this unit under."""
        return self.method if self.kind == "method" else self.kind

    @property
    def models(self) -> int:
        return self.stop - self.start if self.kind in ("references", "method") else int(self.kind == "original")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "method": self.method, "start": self.start, "stop": self.stop, "name": self.name}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Unit":
        return cls(raw["kind"], raw.get("method"), int(raw.get("start", 0)), int(raw.get("stop", 1)))


def dependencies(unit: Unit, units: list[Unit]) -> list[Unit]:
    """The units ``unit`` reads from: methods need the original; the score needs everything."""
    if unit.kind == "method":
        return [u for u in units if u.kind == "original"]
    if unit.kind == "score":
        return [u for u in units if u.kind != "score"]
    return []


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads (bit-for-bit results depend on the thread count)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
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
    return [store.leaderboard]


def unit_done(store: BenchStore, unit: Unit) -> bool:
    return all(p.is_file() for p in unit_paths(store, unit))


def unit_todo(store: BenchStore, unit: Unit) -> list[int]:
    """Indices of ``unit``'s models not yet on disk."""
    if unit.kind == "original":
        return [] if unit_done(store, unit) else [0]
    return [k for k, p in zip(range(unit.start, unit.stop), unit_paths(store, unit)) if not p.is_file()]


def model_outputs(model: torch.nn.Module, setting: Setting, meta: dict[str, Any]) -> bytes:
    """One model's record: float32 logits on the output sets, accuracies, and ``meta``, as npz bytes.

    A model whose logits are not all finite is recorded as diverged (``meta["diverged"]`` says where);
    the score counts it as the worst case instead of failing.
    """
    sets = setting.sets
    logits = {name: predict(model, getattr(sets, name), runtime=setting.runtime) for name in OUTPUT_SETS}
    acc = {name: _accuracy(lg, getattr(sets, name).y) for name, lg in logits.items()}
    for name in ("retain", "val"):
        data = getattr(sets, name)
        acc[name] = _accuracy(predict(model, data, runtime=setting.runtime), data.y) if len(data) else float("nan")
    bad = [name for name, lg in logits.items() if not torch.isfinite(lg).all()]
    if bad:
        meta = {**meta, "diverged": f"non-finite logits on {', '.join(bad)}"}
    arrays = {f"{name}_logits": lg.numpy().astype(np.float32) for name, lg in logits.items()}
    return npz_bytes(**arrays, meta=np.array(json.dumps({**meta, "accuracy": acc})))


def _accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y.cpu()).float().mean()) if len(y) else float("nan")


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
        else:
            raise ValueError(f"unit {unit.name} is not computed by execute()")


def _train_original(job, setting: Setting, store: BenchStore, emit: Emit) -> None:
    seed = model_seed(setting.config.run_seed, "original", 0)
    # Trained alone with the sequential loop, so its time is one retrain's under the same conditions.
    with measure(setting.runtime.device) as cost:
        (result,) = train_seeds(setting.spec, setting.sets.train, setting.sets.val, setting.recipe, [seed], strategy="sequential")
    meta = {"kind": "original", "k": 0, "seed": seed, "seconds": result.seconds, "steps": result.steps,
            "peak_memory_bytes": cost.peak_memory_bytes,
            "train_examples": len(setting.sets.train), "best_epoch": result.best_epoch, "history": result.history,
            "checkpoint_rule": _checkpoint_rule(setting)}
    weights, sidecar = checkpoint_bytes(result.model, setting.spec, {
        **meta, "train": to_dict(setting.recipe), "dataset_fingerprint": setting.dataset.fingerprint})
    emit(store.original_checkpoint, weights)
    emit(store.original_outputs, model_outputs(result.model, setting, meta))
    emit(store.original_checkpoint.with_suffix(".json"), sidecar)  # last: marks the checkpoint complete


def _train_references(job, setting: Setting, store: BenchStore, todo: list[int], emit: Emit) -> None:
    run_seed = setting.config.run_seed
    by_seed = {model_seed(run_seed, "retrain", k): k for k in todo}
    strategy = job.strategy

    def save(r: TrainResult) -> None:
        k = by_seed[r.seed]
        # A model trained inside a vectorised ensemble reports ensemble time / size: not one retrain's.
        emit(store.reference(k), model_outputs(r.model, setting, {
            "kind": "retrain", "k": k, "seed": r.seed, "seconds": r.seconds, "steps": r.steps,
            "best_epoch": r.best_epoch, "timed_alone": strategy_alone(strategy, setting)}))

    train_seeds(setting.spec, setting.sets.retain, setting.sets.val, setting.recipe, list(by_seed),
                strategy=strategy, block_size=max(len(todo), 1), on_result=save)


def strategy_alone(strategy: str, setting: Setting) -> bool:
    """Whether ``strategy`` trains one model at a time (its per-model time is a real retrain's)."""
    return resolve_strategy(strategy, setting.recipe) in ("sequential", "processes")


def budget_steps(budget: float | None, setting: Setting) -> int | None:
    """The optimizer-step cap of a method run: ``budget`` x one retrain's steps (None: no cap)."""
    if budget is None:
        return None
    return max(1, math.floor(budget * retrain_steps(len(setting.sets.retain), setting.recipe.batch_size, setting.recipe.epochs)))


def _run_method(job, setting: Setting, store: BenchStore, name: str, todo: list[int], emit: Emit, original: bytes | None) -> None:
    if original is None:
        model, _, _ = load_checkpoint(store.original_checkpoint, device=setting.runtime.device)
    else:
        model = build_model(setting.spec)
        model.load_state_dict(load_safetensors(original))
        model = model.to(setting.runtime.device).eval()
    data = setting.unlearn_data
    cfg = job.method_configs[name]
    cap = budget_steps(job.budget, setting)
    for k in todo:
        seed = model_seed(setting.config.run_seed, f"unlearn/{name}", k)
        result = run_method(name, model, data, cfg, seed=seed, max_steps=cap)
        emit(store.method_run(name, k), model_outputs(result.model, setting, {
            "kind": "unlearn", "method": name, "k": k, "seed": seed, **result.cost.to_dict(),
            "budget_steps": cap, "stopped_by_budget": result.stopped_by_budget}))


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

