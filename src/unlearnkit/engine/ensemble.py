"""Training many seeds: one after another, vectorised as one stacked ensemble, or across processes.

* ``sequential`` trains each seed with ``train_model``; seed k is bit-identical whether trained alone
  or among 512.
* ``vmap`` stacks K models' parameters and trains them as one with ``torch.func.vmap``: the same
  initialisations and batch orders as ``sequential``, equal up to floating-point rounding (exactly
  the same maths, reordered). It pays off on GPUs, where one small model leaves the device idle.
* ``processes`` runs ``sequential`` in worker processes that split the cores between them.

``auto`` picks ``vmap`` on CUDA and ``sequential`` on a CPU (on which the stacked ensemble measured
slower; see benchmarks/bench_training.py).
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap

from unlearnkit.engine.compute import BACKWARD, FORWARD, spend
from unlearnkit.engine.seeding import derive_seed, torch_generator
from unlearnkit.engine.tensors import TensorSet, class_weights
from unlearnkit.engine.train import (
    TrainConfig,
    Runtime,
    TrainResult,
    init_model,
    make_optimizer,
    make_schedule,
    resolve_runtime,
    train_model,
)
from unlearnkit.errors import InputError
from unlearnkit.models import ModelSpec

STRATEGIES = ("auto", "sequential", "vmap", "processes")


def resolve_strategy(strategy: str, cfg: TrainConfig) -> str:
    if strategy not in STRATEGIES:
        raise InputError(f"unknown training strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if strategy != "auto":
        return strategy
    return "vmap" if resolve_runtime(cfg).device.type == "cuda" else "sequential"


def train_seeds(
    spec: ModelSpec,
    train: TensorSet,
    val: TensorSet | None,
    cfg: TrainConfig,
    seeds: Sequence[int],
    *,
    strategy: str = "auto",
    block_size: int = 16,
    workers: int = 2,
    on_result: Callable[[TrainResult], None] | None = None,
) -> list[TrainResult]:
    """Train one model per seed with the recipe ``cfg``.

    Args:
        spec: Architecture and data shape.
        train: Training examples.
        val: Validation examples (best-epoch selection), or None.
        cfg: The recipe.
        seeds: Model seeds (already derived from the run seed by the caller).
        strategy: "auto", "sequential", "vmap" or "processes".
        block_size: Models trained at once by ``vmap``.
        workers: Processes used by ``processes``.
        on_result: Called with each finished model, e.g. to checkpoint it at once (resume).
    """
    asked, strategy = strategy, resolve_strategy(strategy, cfg)
    results: list[TrainResult] = []

    def done(r: TrainResult) -> None:
        results.append(r)
        if on_result is not None:
            on_result(r)

    if strategy == "sequential":
        for s in seeds:
            done(train_model(spec, train, val, cfg, seed=s))
    elif strategy == "vmap":
        for start in range(0, len(seeds), block_size):
            block = list(seeds[start : start + block_size])
            try:
                stacked = train_ensemble(spec, train, val, cfg, block)
            except RuntimeError as exc:
                # torch leaves some operators unimplemented under vmap; on the lent H200 (torch 2.11) a
                # memory-format query inside vmap failed so for 1-channel 16x16 fashion_mnist. Where vmap was only
                # chosen (auto), the block trains one model at a time instead: slower, never wrong.
                if asked != "auto" or "vmap" not in str(exc):
                    raise
                warnings.warn(f"training {len(block)} models stacked with vmap failed ({exc}); training them one at "
                              "a time (--strategy sequential avoids the attempt)", RuntimeWarning, stacklevel=2)
                stacked = [train_model(spec, train, val, cfg, seed=s) for s in block]
            for r in stacked:
                done(r)
    else:
        for r in _train_in_processes(spec, train, val, cfg, list(seeds), workers):
            done(r)
    return results


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _train_one(args) -> tuple[int, dict, dict]:
    spec, train, val, cfg, seed = args
    r = train_model(spec, train, val, cfg, seed=seed)
    meta = {"best_epoch": r.best_epoch, "history": r.history, "seconds": r.seconds, "steps": r.steps, "compute": r.compute}
    return seed, {k: v.cpu() for k, v in r.model.state_dict().items()}, meta


def _train_in_processes(spec, train, val, cfg, seeds, workers):
    workers = max(1, min(workers, len(seeds)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        for seed, state, meta in pool.map(_train_one, [(spec, train, val, cfg, s) for s in seeds]):
            model = init_model(spec, seed)
            model.load_state_dict(state)
            model.eval()
            yield TrainResult(model=model, seed=seed, **meta)


def train_ensemble(
    spec: ModelSpec, train: TensorSet, val: TensorSet | None, cfg: TrainConfig, seeds: list[int]
) -> list[TrainResult]:
    """Train ``len(seeds)`` models at once as a vmapped, stacked ensemble.

    Member k starts from ``init_model(spec, seeds[k])`` and sees the batch order of
    ``train_model(..., seed=seeds[k])``. Models with dropout draw different dropout masks than the
    sequential loop does (vmap's random streams differ); everything else matches.
    """
    if len(train) == 0:
        raise InputError("cannot train on an empty training set")
    rt = resolve_runtime(cfg)
    if rt.device.type == "cuda" and rt.bf16:
        # bf16 autocast around vmapped BatchNorm fails in CUDA backward ("Expected running_mean to
        # have type BFloat16"; seen with torch 2.11 on an H200), so stacked ensembles on CUDA run fp32.
        rt = Runtime(rt.device, False, rt.channels_last)
    k = len(seeds)
    members = [init_model(spec, s).to(rt.device) for s in seeds]
    if rt.channels_last:
        members = [m.to(memory_format=torch.channels_last) for m in members]
    params, buffers = stack_module_state(members)
    base = copy.deepcopy(members[0]).to("meta")
    train, val = train.to(rt.device), val.to(rt.device) if val is not None else None
    weights = class_weights(train.y, spec.num_classes).to(rt.device) if cfg.class_weighted else None

    def loss_one(p, b, x, y):
        logits = functional_call(base, (p, b), (x,))
        return F.cross_entropy(logits.float(), y, weight=weights)

    def logits_one(p, b, x):
        return functional_call(base, (p, b), (x,))

    batched_loss = vmap(loss_one, in_dims=(0, 0, 0, 0), randomness="different")
    batched_logits = vmap(logits_one, in_dims=(0, 0, None), randomness="different")

    leaves = list(params.values())
    opt = make_optimizer(leaves, cfg)
    n = len(train)
    steps_per_epoch = -(-n // cfg.batch_size)
    sched = make_schedule(opt, cfg, cfg.epochs * steps_per_epoch)
    gens = [torch_generator(derive_seed(s, "order")) for s in seeds]
    best_acc = torch.full((k,), -1.0)
    best_epoch = [cfg.epochs] * k
    best_params = {name: p.detach().clone() for name, p in params.items()}
    best_buffers = {name: b.clone() for name, b in buffers.items()}
    history: list[list[dict]] = [[] for _ in range(k)]
    steps = 0
    # Per model, as train_model counts it: the hooks of engine.compute do not see calls under vmap.
    compute = 0.0
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        base.train()
        orders = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(rt.device)
        totals = torch.zeros(k, device=rt.device)
        for s in range(0, n, cfg.batch_size):
            pos = orders[:, s : s + cfg.batch_size]  # [k, b]
            x = train.inputs(pos.reshape(-1), channels_last=rt.channels_last)
            x = x.view(k, pos.shape[1], *x.shape[1:])
            y = train.y[pos]
            if cfg.hflip:
                flip = torch.rand(k, pos.shape[1], device=x.device) < 0.5
                x = torch.where(flip.view(k, -1, 1, 1, 1), x.flip(4), x)
            spend(k * (FORWARD + BACKWARD) * pos.shape[1])
            compute += (FORWARD + BACKWARD) * pos.shape[1]
            with rt.autocast():
                losses = batched_loss(params, buffers, x, y)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            sched.step()
            steps += 1
            totals += losses.detach().float() * pos.shape[1]
        for i in range(k):
            history[i].append({"epoch": epoch, "train_loss": float(totals[i]) / n})
        if val is not None and len(val) and cfg.keep_best:
            base.eval()
            correct = torch.zeros(k, device=rt.device)
            spend(k * FORWARD * len(val))
            compute += FORWARD * len(val)
            with torch.no_grad():
                for xv, yv in val.batches(1024, channels_last=rt.channels_last):
                    with rt.autocast():
                        correct += (batched_logits(params, buffers, xv).argmax(-1) == yv).sum(1)
            acc = (correct / len(val)).cpu()
            improved = acc > best_acc
            for i in torch.nonzero(improved).flatten().tolist():
                best_acc[i], best_epoch[i] = acc[i], epoch
                for name, p in params.items():
                    best_params[name][i] = p.detach()[i]
                for name, b in buffers.items():
                    best_buffers[name][i] = b[i]
            for i in range(k):
                history[i][-1]["val_acc"] = float(acc[i])
        else:
            best_params = {name: p.detach() for name, p in params.items()}
            best_buffers = dict(buffers)
    seconds = time.perf_counter() - start
    results = []
    for i, (seed, model) in enumerate(zip(seeds, members)):
        state = {**{n_: p[i] for n_, p in best_params.items()}, **{n_: b[i] for n_, b in best_buffers.items()}}
        model.load_state_dict(state)
        model.eval()
        results.append(TrainResult(model=model, seed=seed, best_epoch=best_epoch[i], history=history[i], seconds=seconds / k, steps=steps,
                                   compute=compute))
    return results

