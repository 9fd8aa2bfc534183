"""The jobs behind the CLI: train many seeds, unlearn many seeds, each resumable and self-describing.

Layout of a job's output folder::

    OUT/run.json                    resolved config, dataset summary, provenance
    OUT/forget.json                 the forget set (indices + fingerprint), when there is one
    OUT/models/seed_0003.safetensors  weights of model k = 3
    OUT/models/seed_0003.json         its config, seeds, timings, accuracies (written last)

A model whose sidecar exists is complete; a rerun skips it, so an interrupted job resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from unlearnkit.config import from_dict, to_dict
from unlearnkit.data.base import DATASETS, ImageDataset
from unlearnkit.data.splits import ForgetSet, load_forget_set, retain_indices, select_forget
from unlearnkit.engine.checkpoint import checkpoint_complete, load_checkpoint, save_checkpoint, spec_to_dict
from unlearnkit.engine.ensemble import train_seeds
from unlearnkit.engine.seeding import derive_seed
from unlearnkit.engine.tensors import tensor_set, train_stats
from unlearnkit.engine.train import TrainConfig, TrainResult, accuracy, default_recipe, resolve_runtime
from unlearnkit.errors import InputError
from unlearnkit.methods import METHODS, make_unlearn_data, method_config, run_method
from unlearnkit.metrics.efficiency import cost_ratios, retrain_steps
from unlearnkit.models import MODELS, ModelSpec
from unlearnkit.store import provenance, read_json, write_json


@dataclass(frozen=True)
class DataChoice:
    """A registered dataset and the fields of its config that differ from the defaults."""

    name: str = "synthetic"
    options: dict = field(default_factory=dict)
    forget: str | None = None
    forget_options: dict = field(default_factory=dict)


def load_dataset(choice: DataChoice) -> ImageDataset:
    """Load the dataset ``choice`` names, its config built from the registered defaults + options."""
    entry = DATASETS.entry(choice.name)
    cfg = from_dict(entry.config, choice.options, where=f"dataset.{choice.name}")
    return entry.obj(cfg)


def resolve_forget(ds: ImageDataset, choice: DataChoice, out: Path | None = None) -> ForgetSet | None:
    """The forget set: reused from ``out/forget.json`` when resuming, else selected anew."""
    if choice.forget is None:
        return None
    if Path(choice.forget).suffix == ".json":
        return load_forget_set(choice.forget, ds)
    forget = select_forget(ds, choice.forget, choice.forget_options)
    if out is not None:
        saved = out / "forget.json"
        if saved.is_file() and load_forget_set(saved, ds).fingerprint != forget.fingerprint:
            raise InputError(f"{saved} holds a different forget set; use a new --out or the same --forget")
    return forget


def model_spec(model: str, options: dict, ds: ImageDataset) -> ModelSpec:
    """The spec of registered ``model`` (its config from ``options``) for the images and classes of ``ds``."""
    cfg = from_dict(MODELS.entry(model).config, options, where=f"model.{model}")
    return ModelSpec(model, ds.num_classes, ds.image_shape[0], ds.image_shape[1], cfg)


def model_seed(run_seed: int, k: int) -> int:
    """The seed of model k of a run: seed k of a 512-seed run equals seed k run alone."""
    return derive_seed(run_seed, k)


def ckpt_path(out: Path, k: int) -> Path:
    return out / "models" / f"seed_{k:04d}.safetensors"


def write_run_record(out: Path, record: dict, *, name: str = "run.json") -> None:
    """Write ``out/name``, refusing to resume into a folder that holds a run with other settings."""
    path = out / name
    if path.is_file():
        old = read_json(path)
        same = {k: old.get(k) for k in ("job", "config", "dataset_fingerprint", "forget_fingerprint")}
        new = {k: record.get(k) for k in same}
        if same != new:
            raise InputError(f"{out} holds a different run ({path}); resume with the same settings or use a new --out")
    write_json(path, record)


@dataclass(frozen=True)
class TrainJob:
    """Train seeds ``seeds`` of ``model`` on ``data`` (originals, or retrains when a forget set is given)."""

    data: DataChoice
    model: str = "small_cnn"
    model_options: dict = field(default_factory=dict)
    train: TrainConfig | None = None
    seeds: tuple[int, ...] = (0,)
    run_seed: int = 0
    strategy: str = "auto"
    out: str = "runs/train"


def run_train(job: TrainJob, *, log: Callable[[str], None] = print) -> list[Path]:
    """Train every seed of ``job`` not already on disk; returns the checkpoint paths, in seed order."""
    out = Path(job.out)
    ds = load_dataset(job.data)
    forget = resolve_forget(ds, job.data, out)
    spec = model_spec(job.model, job.model_options, ds)
    cfg = job.train or default_recipe(job.model)
    train_idx = retain_indices(ds, forget) if forget is not None else ds.indices("train")
    stats = train_stats(ds)
    train_set = tensor_set(ds, train_idx, stats=stats)
    val_set = tensor_set(ds, ds.indices("val"), stats=stats)
    test_set = tensor_set(ds, ds.indices("test"), stats=stats)
    record = {
        "job": "retrain" if forget is not None else "train",
        "config": {"data": to_dict(job.data), "model": spec_to_dict(spec), "train": to_dict(cfg),
                   "run_seed": job.run_seed, "strategy": job.strategy},
        "dataset": ds.summary(),
        "dataset_fingerprint": ds.fingerprint,
        "forget_fingerprint": forget.fingerprint if forget is not None else None,
        "provenance": provenance(),
    }
    write_run_record(out, record)
    if forget is not None:
        forget.save(out / "forget.json")
    todo = [k for k in job.seeds if not checkpoint_complete(ckpt_path(out, k))]
    if len(todo) < len(job.seeds):
        log(f"resuming: {len(job.seeds) - len(todo)} of {len(job.seeds)} models already in {out / 'models'}")
    by_seed = {model_seed(job.run_seed, k): k for k in todo}
    forget_set = tensor_set(ds, forget.indices, stats=stats) if forget is not None else None
    rt = resolve_runtime(cfg)

    def save(result: TrainResult) -> None:
        k = by_seed[result.seed]
        acc = {"train": accuracy(result.model, train_set, runtime=rt), "val": accuracy(result.model, val_set, runtime=rt),
               "test": accuracy(result.model, test_set, runtime=rt)}
        if forget_set is not None:
            acc["forget"] = accuracy(result.model, forget_set, runtime=rt)
        save_checkpoint(ckpt_path(out, k), result.model, spec, {
            "kind": record["job"], "k": k, "seed": result.seed, "run_seed": job.run_seed,
            "train": to_dict(cfg), "seconds": result.seconds, "steps": result.steps,
            "train_examples": len(train_set), "best_epoch": result.best_epoch, "history": result.history,
            "accuracy": acc, "dataset_fingerprint": ds.fingerprint,
            "forget_fingerprint": record["forget_fingerprint"], "provenance": record["provenance"],
        })
        log(f"seed {k}: {result.seconds:.1f}s, " + ", ".join(f"{n} acc {v:.3f}" for n, v in acc.items()))

    train_seeds(spec, train_set, val_set, cfg, list(by_seed), strategy=job.strategy, on_result=save)
    return [ckpt_path(out, k) for k in job.seeds]


@dataclass(frozen=True)
class UnlearnJob:
    """Run ``method`` on the model at ``checkpoint`` for seeds ``seeds``."""

    data: DataChoice
    method: str
    checkpoint: str
    method_options: dict = field(default_factory=dict)
    preset: str | None = "auto"
    seeds: tuple[int, ...] = (0,)
    run_seed: int = 0
    out: str = "runs/unlearn"


def resolve_method_config(method: str, preset: str | None, dataset: str, model: str, options: dict):
    """The method's config: a named preset (``auto`` = the one for this dataset/model, if any)."""
    presets = METHODS.entry(method).meta.get("presets", {})
    key = f"{dataset}/{model.removeprefix('test_')}" if preset == "auto" else preset
    if preset not in (None, "auto") and key not in presets:
        raise InputError(f"method {method} has no preset {preset!r}; presets: {', '.join(presets) or '(none)'}")
    return method_config(method, options, preset=key if key in presets else None), key if key in presets else None


def run_unlearn(job: UnlearnJob, *, log: Callable[[str], None] = print) -> list[Path]:
    """Unlearn the forget set from the checkpoint with every seed not already on disk."""
    out = Path(job.out)
    if job.data.forget is None:
        raise InputError("unlearning needs a forget set: pass --forget SPEC (e.g. identity_skewed:0.02)")
    METHODS.entry(job.method)
    original, spec, info = load_checkpoint(job.checkpoint)
    ds = load_dataset(job.data)
    if info.get("dataset_fingerprint") not in (None, ds.fingerprint):
        raise InputError(f"checkpoint {job.checkpoint} was trained on dataset {info['dataset_fingerprint']}, "
                         f"not on this {ds.name} ({ds.fingerprint}); pass the same dataset settings")
    if (spec.num_classes, spec.in_channels, spec.image_size) != (ds.num_classes, *ds.image_shape[:2]):
        raise InputError(f"checkpoint {job.checkpoint} expects {spec.num_classes} classes of {spec.in_channels}x"
                         f"{spec.image_size}px images; {ds.name} has {ds.num_classes} of {ds.image_shape}")
    forget = resolve_forget(ds, job.data, out)
    train_cfg = from_dict(TrainConfig, info.get("train", {}), where="checkpoint.train")
    cfg, preset = resolve_method_config(job.method, job.preset, ds.name, spec.name, job.method_options)
    rt = resolve_runtime(train_cfg)
    data = make_unlearn_data(ds, forget, spec, train_cfg, rt)
    test_set = tensor_set(ds, ds.indices("test"), stats=train_stats(ds)).to(rt.device)
    original = original.to(rt.device)
    # One retrain costs about the original training scaled to the retain set's size.
    ref_seconds = info.get("seconds", 0.0) * len(data.retain) / max(info.get("train_examples", len(data.retain)), 1)
    ref_steps = retrain_steps(len(data.retain), train_cfg.batch_size, train_cfg.epochs)
    record = {
        "job": "unlearn",
        "config": {"data": to_dict(job.data), "method": job.method, "method_config": to_dict(cfg), "preset": preset,
                   "checkpoint": str(job.checkpoint), "run_seed": job.run_seed},
        "dataset": ds.summary(),
        "dataset_fingerprint": ds.fingerprint,
        "forget_fingerprint": forget.fingerprint,
        "provenance": provenance(),
    }
    write_run_record(out, record)
    forget.save(out / "forget.json")
    paths = []
    for k in job.seeds:
        path = ckpt_path(out, k)
        paths.append(path)
        if checkpoint_complete(path):
            log(f"seed {k}: already done")
            continue
        seed = model_seed(job.run_seed, k)
        result = run_method(job.method, original, data, cfg, seed=seed)
        acc = {name: accuracy(result.model, s, runtime=rt) for name, s in
               (("forget", data.forget), ("retain", data.retain), ("val", data.val), ("test", test_set))}
        ratios = cost_ratios(result.cost, retrain_seconds=ref_seconds or None, retrain_steps=ref_steps)
        save_checkpoint(path, result.model, spec, {
            "kind": "unlearn", "method": job.method, "k": k, "seed": seed, "config": result.config, "preset": preset,
            "cost": {**result.cost.to_dict(), **ratios}, "accuracy": acc, "train": to_dict(train_cfg),
            "dataset_fingerprint": ds.fingerprint, "forget_fingerprint": forget.fingerprint,
            "provenance": record["provenance"],
        })
        flag = "  OVER the competition's 20% time limit" if ratios["over_time_limit"] else ""
        ratio = ratios["time_ratio"] if ratios["time_ratio"] is not None else ratios["step_ratio"]
        log(f"seed {k}: {result.cost.seconds:.1f}s ({ratio:.1%} of a retrain){flag}, "
            + ", ".join(f"{n} acc {v:.3f}" for n, v in acc.items()))
    return paths
