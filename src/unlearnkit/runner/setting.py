"""A job's setting, resolved once: dataset, forget set, model spec, recipe, runtime, statistics, eval sets.

Two objects, one for each side of the resolution:

* :class:`SettingConfig` is what the user chose, every part a frozen, typed config (never a dict). It
  round-trips through JSON (``setting_to_dict`` / ``setting_from_dict``), which is how a setting
  travels to worker processes, Ray tasks and cluster jobs.
* :class:`Setting` is what that choice resolves to on this machine: the loaded dataset, the selected
  forget set, the model spec, the runtime, the training split's normalisation statistics and every
  tensor set a job evaluates on. :func:`resolve_setting` builds it, once per process and config.

The CLI, the runner's units, the tests' fixtures and the benchmarks all build their setting here.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlearnkit.config import from_dict, to_dict
from unlearnkit.data.base import DATASETS, ImageDataset
from unlearnkit.data.splits import FORGET_SELECTORS, ForgetSet, load_forget_set, parse_forget_spec, retain_indices, select_forget
from unlearnkit.engine.checkpoint import spec_to_dict
from unlearnkit.engine.tensors import TensorSet, tensor_set, train_stats
from unlearnkit.engine.train import Runtime, TrainConfig, default_recipe, resolve_runtime
from unlearnkit.errors import InputError
from unlearnkit.io import fingerprint
from unlearnkit.methods.base import UnlearnData
from unlearnkit.methods.requirements import verdict
from unlearnkit.models import MODELS, ModelSpec, build_model

# Retain examples every model is also evaluated on (the SVC-MIA's members, the utility probe).
RETAIN_PROBE = 2000


@dataclass(frozen=True)
class SettingConfig:
    """What a job runs on, as chosen: each part a resolved frozen config.

    Attributes:
        dataset: Registered dataset name.
        dataset_config: Its config (an instance of the dataset's registered config class).
        model: Registered model name.
        model_config: Its config.
        train: The recipe A_M that trains originals and retrains.
        forget_kind: A forget-set selector (``identity_skewed``, ...), ``file`` for a saved
            forget.json, or None for a job without a forget set.
        forget_config: The selector's config, or ``{"path": ...}`` for ``file``.
        run_seed: Every model's seed derives from (run seed, role, index).
    """

    dataset: str
    dataset_config: Any
    model: str
    model_config: Any
    train: TrainConfig
    forget_kind: str | None = None
    forget_config: Any = None
    run_seed: int = 0

    @property
    def forget_label(self) -> str:
        """A short description of the forget set, e.g. ``identity_skewed:0.02``."""
        if self.forget_kind is None:
            return "none"
        if self.forget_kind == "file":
            return f"file:{self.forget_config['path']}"
        arg = next(iter(to_dict(self.forget_config).values()), "")
        return f"{self.forget_kind}:{arg if not isinstance(arg, list) else ','.join(map(str, arg))}"


def make_setting_config(
    *,
    dataset: str = "synthetic",
    dataset_options: dict | None = None,
    data_root: str | None = None,
    forget: str | None = "identity_skewed:0.02",
    forget_options: dict | None = None,
    model: str = "small_cnn",
    model_options: dict | None = None,
    train_options: dict | None = None,
    run_seed: int = 0,
) -> SettingConfig:
    """Build a :class:`SettingConfig` from names and user-level options (``--set`` tables).

    Every option is checked against its config class: an unknown field is an error naming it and
    the nearest known one.

    Args:
        dataset: Registered dataset name.
        dataset_options: Fields of the dataset's config.
        data_root: Where the dataset's files are (its ``root`` or ``csv`` field).
        forget: A forget spec (``KIND[:ARG]``), a forget.json path, or None.
        forget_options: Fields of the forget selector's config.
        model: Registered model name.
        model_options: Fields of the model's config.
        train_options: Fields of the training recipe, over the model's default recipe.
        run_seed: The run seed.
    """
    entry = DATASETS.entry(dataset)
    options = dict(dataset_options or {})
    if data_root:
        fields = entry.config.__dataclass_fields__
        key = "root" if "root" in fields else "csv" if "csv" in fields else None
        if key is None:
            raise InputError(f"dataset {dataset} reads no files; drop --data-root")
        options[key] = data_root
    dataset_config = from_dict(entry.config, options, where="dataset")
    model_entry = MODELS.entry(model)
    model_config = from_dict(model_entry.config, dict(model_options or {}), where="model") if model_entry.config else None
    train = from_dict(TrainConfig, {**to_dict(default_recipe(model)), **(train_options or {})}, where="train")
    forget_kind, forget_config = None, None
    if forget is not None and Path(forget).suffix == ".json":
        if forget_options:
            raise InputError("forget.* settings do not apply to a saved forget set (a .json file)")
        forget_kind, forget_config = "file", {"path": str(Path(forget).expanduser().resolve())}
    elif forget is not None:
        forget_kind, forget_config = parse_forget_spec(forget, forget_options)
    elif forget_options:
        raise InputError("forget.* settings need a forget set: pass --forget SPEC")
    return SettingConfig(dataset, dataset_config, model, model_config, train, forget_kind, forget_config, run_seed)


def setting_to_dict(cfg: SettingConfig) -> dict[str, Any]:
    """A JSON-ready dict of ``cfg`` (the inverse of :func:`setting_from_dict`)."""
    return {
        "dataset": cfg.dataset,
        "dataset_config": to_dict(cfg.dataset_config),
        "model": cfg.model,
        "model_config": to_dict(cfg.model_config) if cfg.model_config is not None else None,
        "train": to_dict(cfg.train),
        "forget_kind": cfg.forget_kind,
        "forget_config": cfg.forget_config if cfg.forget_kind == "file" else
        to_dict(cfg.forget_config) if cfg.forget_config is not None else None,
        "run_seed": cfg.run_seed,
    }


def setting_from_dict(raw: dict[str, Any]) -> SettingConfig:
    """Rebuild a :class:`SettingConfig` written by :func:`setting_to_dict`."""
    try:
        entry, model_entry = DATASETS.entry(raw["dataset"]), MODELS.entry(raw["model"])
        kind = raw.get("forget_kind")
        forget_config = raw.get("forget_config")
        if kind not in (None, "file"):
            forget_config = from_dict(FORGET_SELECTORS.entry(kind).config, forget_config or {}, where="forget")
        return SettingConfig(
            dataset=raw["dataset"],
            dataset_config=from_dict(entry.config, raw["dataset_config"], where="dataset"),
            model=raw["model"],
            model_config=from_dict(model_entry.config, raw["model_config"] or {}, where="model") if model_entry.config else None,
            train=from_dict(TrainConfig, raw["train"], where="train"),
            forget_kind=kind,
            forget_config=forget_config,
            run_seed=int(raw.get("run_seed", 0)),
        )
    except (KeyError, TypeError) as exc:
        raise InputError(f"setting record: missing or malformed field ({exc})") from None


@dataclass(frozen=True, eq=False)
class EvalSets:
    """The examples every model of a job is trained or evaluated on, normalised, on the run's device."""

    train: TensorSet
    retain: TensorSet
    forget: TensorSet | None
    val: TensorSet
    test: TensorSet
    retain_probe: TensorSet


@dataclass(frozen=True, eq=False)
class Setting:
    """A resolved :class:`SettingConfig`: everything a job needs, computed once.

    Attributes:
        config: What was chosen.
        dataset: The loaded dataset.
        forget: The forget set (None for a job without one).
        spec: The model architecture for this dataset's images and classes.
        runtime: Device, precision and memory format.
        stats: Per-channel mean and std of the training split (every set is normalised with them).
        sets: The tensor sets.
    """

    config: SettingConfig
    dataset: ImageDataset
    forget: ForgetSet | None
    spec: ModelSpec
    runtime: Runtime
    stats: tuple[torch.Tensor, torch.Tensor]
    sets: EvalSets

    @property
    def recipe(self) -> TrainConfig:
        return self.config.train

    @property
    def fingerprint(self) -> str:
        """Identifies what results depend on: data, forget set, model, recipe and run seed."""
        return fingerprint("setting-v1", self.dataset.fingerprint, self.forget.fingerprint if self.forget else None,
                           spec_to_dict(self.spec), to_dict(self.recipe), self.config.run_seed)

    @property
    def unlearn_data(self) -> UnlearnData:
        """What an unlearning method sees (retain, forget and validation examples, never test)."""
        if self.sets.forget is None:
            raise InputError("unlearning needs a forget set: pass --forget SPEC (e.g. identity_skewed:0.02)")
        return UnlearnData(self.sets.retain, self.sets.forget, self.sets.val, self.spec, self.recipe, self.runtime)

    def summary(self) -> dict[str, Any]:
        """The setting as a report states it: choice, sizes and fingerprints."""
        return {
            "config": setting_to_dict(self.config),
            "dataset": self.dataset.summary(),
            "forget": {"kind": self.forget.kind, "size": int(len(self.forget.indices)), "fingerprint": self.forget.fingerprint}
            if self.forget is not None else None,
            "model": spec_to_dict(self.spec),
            "runtime": {"device": str(self.runtime.device), "bf16": self.runtime.bf16, "channels_last": self.runtime.channels_last},
            "fingerprint": self.fingerprint,
        }


def resolve_setting(cfg: SettingConfig) -> Setting:
    """Resolve ``cfg`` on this machine; repeated calls with an equal config return the same object."""
    return _resolve(json.dumps(setting_to_dict(cfg), sort_keys=True))


@functools.lru_cache(maxsize=4)
def _resolve(key: str) -> Setting:
    cfg = setting_from_dict(json.loads(key))
    ds = DATASETS.get(cfg.dataset)(cfg.dataset_config)
    forget = _select_forget(ds, cfg)
    spec = _spec(ds, cfg)
    if ds.image_shape[1] != ds.image_shape[2]:
        raise InputError(f"dataset {ds.name}: images are {ds.image_shape[1]}x{ds.image_shape[2]}; models expect square images")
    rt = resolve_runtime(cfg.train)
    stats = train_stats(ds)
    retain = retain_indices(ds, forget) if forget is not None else ds.indices("train")
    probe = np.sort(np.random.default_rng(0).choice(retain, min(RETAIN_PROBE, len(retain)), replace=False))

    def tensors(idx: np.ndarray) -> TensorSet:
        return tensor_set(ds, idx, stats=stats).to(rt.device)

    sets = EvalSets(
        train=tensors(ds.indices("train")),
        retain=tensors(retain),
        forget=tensors(forget.indices) if forget is not None else None,
        val=tensors(ds.indices("val")),
        test=tensors(ds.indices("test")),
        retain_probe=tensors(probe),
    )
    return Setting(cfg, ds, forget, spec, rt, stats, sets)


def setting_spec(cfg: SettingConfig) -> ModelSpec:
    """The model spec ``cfg`` resolves to (its dataset's classes and image shape), without building tensors."""
    return _spec(DATASETS.get(cfg.dataset)(cfg.dataset_config), cfg)


def _spec(ds: ImageDataset, cfg: SettingConfig) -> ModelSpec:
    return ModelSpec(cfg.model, ds.num_classes, ds.image_shape[0], ds.image_shape[1], cfg.model_config)


def method_verdict(cfg: SettingConfig, names: list[str] | None = None) -> dict[str, list[str]]:
    """For each method (default: all), why it does not apply to ``cfg``'s model (empty where it does).

    The model is built fresh on the CPU and its parts found as a method would find them
    (``methods.requirements``), so the answer comes before any training.
    """
    spec = setting_spec(cfg)
    return verdict(build_model(spec), spec, names)


def applicable(cfg: SettingConfig, names: tuple[str, ...], *, given: bool) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """``names`` that apply to ``cfg``'s model, and the reasons of those that do not.

    Raises:
        InputError: ``given`` (the user named the methods) and one of them does not apply.
    """
    refused = {k: v for k, v in method_verdict(cfg, list(names)).items() if v}
    if given and refused:
        name, reasons = next(iter(refused.items()))
        raise InputError(f"method {name} does not apply to model {cfg.model}: " + "; ".join(reasons)
                         + f". See `unlearnkit methods --model {cfg.model}`")
    return tuple(n for n in names if n not in refused), refused


def _select_forget(ds: ImageDataset, cfg: SettingConfig) -> ForgetSet | None:
    if cfg.forget_kind is None:
        return None
    if cfg.forget_kind == "file":
        return load_forget_set(cfg.forget_config["path"], ds)
    spec = cfg.forget_kind
    return select_forget(ds, spec, to_dict(cfg.forget_config))


def with_train(cfg: SettingConfig, **fields: Any) -> SettingConfig:
    """``cfg`` with some recipe fields replaced (e.g. ``precision="fp32"`` in tests)."""
    return replace(cfg, train=replace(cfg.train, **fields))
