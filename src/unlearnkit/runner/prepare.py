"""Prepare a model for erasure once: a pool of shadow models, each trained without a known share of D.

A shadow is a model of the original's recipe trained on D minus a share of its groups (people where
the dataset has them, else single examples). The leave-outs are structured: the groups are split into
``folds = 1 / leave_out`` folds of about equal size, K / folds times over, and each shadow leaves out
one fold of one split. So whatever forget set S arrives later, each of its examples is out of
exactly K / folds known shadows (its "out" shadows, one per split), every shadow trains on about
the same number of examples, and the first blocks of a pool are a smaller pool of the same kind. Each shadow's
logits on every training and validation example are stored, so answering a request needs no shadow
forward pass. The pool depends on the data, model, recipe and run seed, never on a forget set: one
pool serves every future request on that model and data. For whole-class forgets a pool of class
leave-outs (``PoolConfig.by_class``, ``prepare --leave-out class``) has each shadow leave out one
whole class instead; a class request finds that kind, any other request the group kind.

Layout, in the cache beside the originals and references::

    CACHE/pools/KEY/pool.json             the pool's config, setting, leave-out design and one retrain's compute
    CACHE/pools/KEY/members.npz           out [K, n_train] (True: shadow k never saw train example i),
                                          train_index / val_index (dataset indices of the stored rows)
    CACHE/pools/KEY/shadow_0003.npz       shadow 3: train_logits, val_logits, meta (seed, compute, seconds, accuracy)

Shadows are written one file each, atomically, and once: ``prepare_pool`` resumes by skipping the
shadows that exist, and ``shadows=(a, b)`` trains only shadows a..b-1 (one line of a job list per
block, or several machines sharing a cache folder).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from unlearnkit.config import to_dict
from unlearnkit.data.cache import resolve_cache_dir
from unlearnkit.engine.checkpoint import spec_to_dict
from unlearnkit.engine.seeding import derive_seed
from unlearnkit.engine.train import predict, train_model
from unlearnkit.errors import InputError
from unlearnkit.io import fingerprint, npz_bytes, provenance, write_bytes
from unlearnkit.methods import METHODS
from unlearnkit.metrics.efficiency import retrain_compute, run_conditions
from unlearnkit.results.pool import POOL_VERSION, shadow_path
from unlearnkit.results.store import RESULTS_VERSION, write_record_once
from unlearnkit.runner.setting import Setting, SettingConfig, resolve_setting, setting_to_dict

@dataclass(frozen=True)
class PoolConfig:
    """How a pool of shadows is built.

    Attributes:
        shadows: K, the number of shadow models; a multiple of ``folds`` (= round(1 / leave_out)),
            or with ``by_class`` of the number of classes.
        leave_out: The share of groups each shadow leaves out. The groups are split into
            ``folds`` folds K / folds times over; each split is a block of ``folds`` consecutive
            shadows, shadow j of a block leaving out fold j.
        seed: Draws the splits (which groups each shadow leaves out).
        by_class: Leave out whole classes instead (``leave_out`` unused): shadow k is trained
            without every example of class k mod C, a retrain of the recipe for the request that
            forgets that class. This is what a class forget needs: group leave-outs never show
            what a model that lacks the whole class says (:func:`leave_out_design`).
    """

    shadows: int = 32
    leave_out: float = 0.125
    seed: int = 0
    by_class: bool = False

    def __post_init__(self) -> None:
        if self.by_class:
            if self.shadows < 2:
                raise InputError(f"prepare: --shadows {self.shadows} must be a positive multiple of the number of classes")
            return
        if not 0 < self.leave_out <= 0.5:
            raise InputError(f"prepare: --leave-out must be a share of the groups in (0, 0.5], got {self.leave_out}")
        if self.shadows < self.folds or self.shadows % self.folds:
            raise InputError(f"prepare: --shadows {self.shadows} must be a positive multiple of 1 / leave-out = {self.folds} "
                             f"(each block of {self.folds} shadows leaves every group out once)")

    @property
    def folds(self) -> int:
        """Shadows per block: each block leaves every group out of exactly one of its shadows."""
        return max(2, round(1 / self.leave_out))

    @property
    def outs_per_group(self) -> int:
        """How many shadows leave each group out (one per block)."""
        return self.shadows // self.folds


def leave_out_design(groups: np.ndarray, cfg: PoolConfig, labels: np.ndarray | None = None,
                     num_classes: int = 0) -> np.ndarray:
    """The structured design: bool [K, len(groups)], True where shadow k leaves example i out.

    With ``cfg.by_class``, shadow k leaves out every example whose label (``labels``) is class
    k mod ``num_classes``: K must be a multiple of the number of classes, so each class is out of
    K / C shadows and each block of C consecutive shadows leaves every class out once.

    Examples of one group (``groups`` >= 0) are left out together; an example without a group is
    its own group. Block b (shadows b x folds .. (b + 1) x folds - 1) splits the groups into
    ``folds`` folds of about equal size in examples (each group, in a random order, to the fold
    with the fewest examples so far), and each of its shadows leaves one fold out. So every group
    is out of exactly one shadow per block, and the first B blocks of a pool are a pool of their
    own: a half pool leaves every group out of exactly half as many shadows.
    """
    if cfg.by_class:
        if labels is None or num_classes < 2 or cfg.shadows % num_classes:
            raise InputError(f"prepare: --shadows {cfg.shadows} with --leave-out class must be a multiple of the "
                             f"dataset's {num_classes} classes (each block of {num_classes} shadows leaves every class out once)")
        return np.asarray(labels)[None, :] == (np.arange(cfg.shadows) % num_classes)[:, None]
    groups = np.asarray(groups)
    keys = np.where(groups >= 0, groups, -(np.arange(len(groups)) + 1))
    uniq, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    rng = np.random.default_rng(cfg.seed)
    out_groups = np.zeros((cfg.shadows, len(uniq)), dtype=bool)
    for block in range(cfg.outs_per_group):
        load = np.zeros(cfg.folds)
        for g in rng.permutation(len(uniq)):
            fold = int(np.lexsort((rng.random(cfg.folds), load))[0])
            out_groups[block * cfg.folds + fold, g] = True
            load[fold] += counts[g]
    return out_groups[:, inverse]


@dataclass(frozen=True)
class PrepareJob:
    """Train (or resume) a pool of shadows for a setting.

    Attributes:
        setting: Dataset, model, recipe and run seed (a forget set, if any, is ignored).
        pool: How the pool is built.
        shadows: Train only shadows a..b-1 (None: all K).
        cache_dir: Where the pool lives ("" = default cache).
    """

    setting: SettingConfig
    pool: PoolConfig = PoolConfig()
    shadows: tuple[int, int] | None = None
    cache_dir: str = ""


def _pool_setting(cfg: SettingConfig) -> SettingConfig:
    return replace(cfg, forget_kind=None, forget_config=None)


def pool_fields(pool: PoolConfig) -> dict[str, Any]:
    """``pool`` as its record and key hold it: a group pool without ``by_class``, so that its key and
    record are what they were before classes could be left out."""
    fields = to_dict(pool)
    if not pool.by_class:
        del fields["by_class"]
    return fields


def pool_key(setting: Setting, pool: PoolConfig) -> str:
    """Names a pool: data, model, recipe, run seed and the pool's config; never a forget set."""
    return fingerprint("pool", POOL_VERSION, RESULTS_VERSION, setting.dataset.fingerprint, spec_to_dict(setting.spec),
                       to_dict(setting.recipe), setting.config.run_seed, pool_fields(pool))


def pool_dir(job: PrepareJob) -> Path:
    """Where ``job``'s pool lives."""
    setting = resolve_setting(_pool_setting(job.setting))
    return resolve_cache_dir(job.cache_dir) / "pools" / pool_key(setting, job.pool)


def prepare_pool(job: PrepareJob, *, log: Callable[[str], None] = print) -> Path:
    """Train every shadow of ``job`` not already in the pool; returns the pool folder.

    Each shadow is trained alone with the recipe on its share of the training split (validation
    split for the best epoch, as the original), and its logits on every training and validation
    example are stored with its compute (example passes) and seconds.
    """
    setting = resolve_setting(_pool_setting(job.setting))
    folder = resolve_cache_dir(job.cache_dir) / "pools" / pool_key(setting, job.pool)
    ds = setting.dataset
    train_index = setting.sets.train.index.cpu().numpy()
    out = leave_out_design(ds.groups[train_index], job.pool, setting.sets.train.y.cpu().numpy(), ds.num_classes)
    record = {"pool_version": POOL_VERSION, "results_version": RESULTS_VERSION, "pool": pool_fields(job.pool),
              "setting": setting_to_dict(setting.config), "dataset_fingerprint": ds.fingerprint,
              "grouped": bool(ds.has_groups) and not job.pool.by_class, "outs_per_group": int(out.sum(0).min()),
              "train_size": len(train_index), "val_size": len(setting.sets.val),
              "retrain_compute": retrain_compute(len(train_index), len(setting.sets.val), setting.recipe),
              "provenance": provenance()}
    write_record_once(folder / "pool.json", record, ("pool_version", "results_version", "pool", "setting",
                                                      "dataset_fingerprint"), f"pool folder {folder}")
    if not (folder / "members.npz").is_file():
        write_bytes(folder / "members.npz", npz_bytes(out=out, train_index=train_index,
                                                      val_index=setting.sets.val.index.cpu().numpy()))
    a, b = job.shadows if job.shadows is not None else (0, job.pool.shadows)
    if not 0 <= a < b <= job.pool.shadows:
        raise InputError(f"prepare: shadows {a}:{b} are not within the pool's 0:{job.pool.shadows}")
    todo = [k for k in range(a, b) if not shadow_path(folder, k).is_file()]
    if len(todo) < b - a:
        log(f"resuming: {b - a - len(todo)} of {b - a} shadows already in {folder}")
    for k in todo:
        if not shadow_path(folder, k).is_file():  # another job sharing the pool may have trained it meanwhile
            _train_shadow(setting, folder, out[k], k, log)
    return folder


def _train_shadow(setting: Setting, folder: Path, out_k: np.ndarray, k: int, log: Callable[[str], None]) -> None:
    seed = derive_seed(setting.config.run_seed, "shadow", k)
    sets = setting.sets
    keep = torch.as_tensor(np.flatnonzero(~out_k), device=sets.train.device)
    start = time.perf_counter()
    result = train_model(setting.spec, sets.train.subset(keep), sets.val, setting.recipe, seed=seed)
    train_logits = predict(result.model, sets.train, runtime=setting.runtime).float()
    val_logits = predict(result.model, sets.val, runtime=setting.runtime).float()
    mask, y = torch.as_tensor(out_k), sets.train.y.cpu()
    acc = {"in": _acc(train_logits[~mask], y[~mask]), "out": _acc(train_logits[mask], y[mask]),
           "val": _acc(val_logits, sets.val.y.cpu())}
    meta = {"k": k, "seed": seed, "seconds": result.seconds, "steps": result.steps, "compute": result.compute,
            "train_examples": int((~out_k).sum()), "best_epoch": result.best_epoch, "accuracy": acc,
            "conditions": run_conditions(setting.runtime), "total_seconds": time.perf_counter() - start}
    write_bytes(shadow_path(folder, k), npz_bytes(train_logits=train_logits.numpy().astype(np.float32),
                                                  val_logits=val_logits.numpy().astype(np.float32),
                                                  meta=np.array(json.dumps(meta))))
    log(f"shadow {k}: {result.seconds:.1f}s on {meta['train_examples']} examples, in acc {acc['in']:.3f}, "
        f"out acc {acc['out']:.3f}, val acc {acc['val']:.3f}")


def _acc(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(1) == y).float().mean()) if len(y) else float("nan")


def parse_range(text: str, size: int) -> tuple[int, int]:
    """``A:B`` as (a, b) within a pool of ``size`` shadows; anything else raises InputError naming it."""
    try:
        a, b = (int(v) for v in text.split(":"))
    except ValueError:
        raise InputError(f"--only {text!r}: expected A:B, e.g. 0:8") from None
    if not 0 <= a < b <= size:
        raise InputError(f"--only {text}: expected 0 <= A < B <= {size} (the pool's --shadows)")
    return a, b


def wants_class_pool(setting_config: SettingConfig) -> bool:
    """Whether ``setting_config``'s forget set is whole classes, which a pool of class leave-outs serves."""
    return setting_config.forget_kind == "class"


def find_pool(setting_config: SettingConfig, cache_dir: str = "") -> Path | None:
    """The complete pool prepared for ``setting_config``'s data, model, recipe and run seed, or None.

    The forget set matters only through its kind: a class forget takes a pool of class leave-outs
    (``prepare --leave-out class``), any other a pool of group leave-outs. Where several are
    complete, the one with the most shadows (then the smallest leave-out share) is chosen."""
    by_class = wants_class_pool(setting_config)
    setting = resolve_setting(_pool_setting(setting_config))
    root = resolve_cache_dir(cache_dir) / "pools"
    wanted = setting_to_dict(setting.config)
    found = []
    for record_path in sorted(root.glob("*/pool.json")) if root.is_dir() else []:
        try:
            record = json.loads(record_path.read_text())
            pool = PoolConfig(**record["pool"])
        except (OSError, ValueError, KeyError, TypeError, InputError):
            continue
        if (record.get("pool_version") != POOL_VERSION or record.get("setting") != wanted or pool.by_class != by_class
                or record.get("dataset_fingerprint") != setting.dataset.fingerprint
                or record_path.parent.name != pool_key(setting, pool)):
            continue
        if all(shadow_path(record_path.parent, k).is_file() for k in range(pool.shadows)):
            found.append((-pool.shadows, pool.leave_out, record_path.parent))
    return min(found)[2] if found else None


def with_pools(configs: dict[str, Any], setting_config: SettingConfig, cache_dir: str = "") -> dict[str, Any]:
    """``configs`` (method name -> config) with the pool of every prepared method (registered with
    ``prepared=True``) whose ``pool`` is empty filled in from the cache; a prepared method without a
    pool raises, saying how to make one."""
    out = dict(configs)
    for name, cfg in configs.items():
        if not METHODS.entry(name).meta.get("prepared") or cfg.pool or getattr(cfg, "without_pool", False):
            continue
        folder = find_pool(setting_config, cache_dir)
        if folder is None:
            kind = "of class leave-outs " if wants_class_pool(setting_config) else ""
            flag = " --leave-out class" if kind else ""
            raise InputError(f"method {name} needs a prepared pool {kind}for this dataset, model and recipe, and the cache "
                             f"has none: run `unlearnkit prepare{flag}` with the same --dataset, --model and train.* settings "
                             f"first (or pass --set method.{name}.pool=PATH)")
        out[name] = replace(cfg, pool=str(folder))
    return out
