"""Forget-set selection: which training examples a user asks the model to forget.

A forget spec is ``KIND[:ARG]``:

* ``random:0.1`` - a random 10 % of training examples (the competition starting kit);
* ``identity:0.02`` - every training image of a random 2 % of the training people;
* ``identity_skewed:0.02`` - 2 % of the people, drawn mostly from chosen classes (``forget.classes``,
  default the two lowest, the youngest age groups): the proposal's and the competition's non-IID
  setting;
* ``class:3`` or ``class:3,5`` - every training example of whole classes;
* ``identities:12,57`` - every training image of the named people (dataset group ids).

Further fields are set with ``--set forget.FIELD=VALUE`` (e.g. ``forget.skew=0.9``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unlearnkit.config import from_dict, to_dict
from unlearnkit.data.base import ImageDataset
from unlearnkit.errors import InputError
from unlearnkit.registry import Registry
from unlearnkit.io import fingerprint, read_json, write_json

FORGET_SELECTORS: Registry = Registry("forget selector")


@dataclass(frozen=True)
class RandomForget:
    fraction: float = 0.1
    seed: int = 0


@dataclass(frozen=True)
class IdentityForget:
    fraction: float = 0.02
    seed: int = 0


@dataclass(frozen=True)
class IdentitySkewedForget:
    fraction: float = 0.02
    classes: tuple[int, ...] = (0, 1)
    skew: float = 0.9
    seed: int = 0


@dataclass(frozen=True)
class ClassForget:
    classes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class IdentitiesForget:
    ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class ForgetSet:
    """The examples to forget, as sorted dataset indices, with what selected them."""

    indices: np.ndarray
    kind: str
    config: dict = field(default_factory=dict)
    dataset_fingerprint: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.kind, self.config, self.dataset_fingerprint, self.indices)

    def to_json(self) -> dict:
        return {
            "kind": self.kind,
            "config": self.config,
            "dataset_fingerprint": self.dataset_fingerprint,
            "fingerprint": self.fingerprint,
            "size": int(len(self.indices)),
            "indices": self.indices.tolist(),
        }

    def save(self, path: str | Path) -> None:
        write_json(path, self.to_json())


def load_forget_set(path: str | Path, ds: ImageDataset | None = None) -> ForgetSet:
    """Read a saved forget set, checking its fingerprint and, given ``ds``, that it belongs to it."""
    try:
        raw = read_json(path)
        fs = ForgetSet(
            indices=np.asarray(raw["indices"], dtype=np.int64),
            kind=raw["kind"],
            config=raw["config"],
            dataset_fingerprint=raw["dataset_fingerprint"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"forget set {path}: cannot read it ({exc}); expected a file written by unlearnkit") from None
    if fs.fingerprint != raw.get("fingerprint"):
        raise InputError(f"forget set {path}: fingerprint mismatch, the file was edited or is corrupt")
    if ds is not None and fs.dataset_fingerprint != ds.fingerprint:
        raise InputError(
            f"forget set {path} was made for dataset fingerprint {fs.dataset_fingerprint}, "
            f"but {ds.name} has {ds.fingerprint}"
        )
    return fs


def _train_people(ds: ImageDataset, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if not ds.has_groups:
        groups_file = ds.meta.get("groups_file")
        if groups_file:
            raise InputError(
                f"forget spec {kind!r} needs identities, but dataset {ds.name} from {ds.source} has none: "
                f"identity forget sets on {ds.name} need the identity file {Path(groups_file).name} "
                f"(looked for {groups_file}); add it, or use random or class"
            )
        raise InputError(f"forget spec {kind!r} needs identities, but dataset {ds.name} has none; use random or class")
    train = ds.indices("train")
    people = np.unique(ds.groups[train][ds.groups[train] >= 0])
    return train, people


def _examples_of(ds: ImageDataset, train: np.ndarray, people: np.ndarray) -> np.ndarray:
    return train[np.isin(ds.groups[train], people)]


def _check_fraction(fraction: float) -> None:
    if not 0 < fraction < 1:
        raise InputError(f"forget fraction must be between 0 and 1 (exclusive), got {fraction}")


def _count(fraction: float, total: int) -> int:
    return min(max(1, int(round(fraction * total))), total)


@FORGET_SELECTORS.register("random", config=RandomForget)
def select_random(ds: ImageDataset, cfg: RandomForget) -> np.ndarray:
    """A uniformly random fraction of the training examples."""
    _check_fraction(cfg.fraction)
    train = ds.indices("train")
    rng = np.random.default_rng(cfg.seed)
    return rng.choice(train, _count(cfg.fraction, len(train)), replace=False)


@FORGET_SELECTORS.register("identity", config=IdentityForget)
def select_identity(ds: ImageDataset, cfg: IdentityForget) -> np.ndarray:
    """Every training image of a random fraction of the training people."""
    _check_fraction(cfg.fraction)
    train, people = _train_people(ds, "identity")
    rng = np.random.default_rng(cfg.seed)
    return _examples_of(ds, train, rng.choice(people, _count(cfg.fraction, len(people)), replace=False))


@FORGET_SELECTORS.register("identity_skewed", config=IdentitySkewedForget)
def select_identity_skewed(ds: ImageDataset, cfg: IdentitySkewedForget) -> np.ndarray:
    """People drawn preferentially from ``classes``: a share ``skew`` of the draw weight goes to them."""
    _check_fraction(cfg.fraction)
    if not 0 <= cfg.skew <= 1:
        raise InputError(f"forget.skew must be in [0, 1], got {cfg.skew}")
    _check_classes(ds, cfg.classes)
    train, people = _train_people(ds, "identity_skewed")
    # A person's class is the most common label among their training images.
    tr_groups, tr_labels = ds.groups[train], ds.labels[train]
    keep = tr_groups >= 0
    pos = np.searchsorted(people, tr_groups[keep])
    votes = np.zeros((len(people), ds.num_classes), dtype=np.int64)
    np.add.at(votes, (pos, tr_labels[keep]), 1)
    chosen = np.isin(votes.argmax(1), cfg.classes)
    weights = np.where(chosen, cfg.skew / max(chosen.sum(), 1), (1 - cfg.skew) / max((~chosen).sum(), 1))
    if weights.sum() <= 0:
        raise InputError(f"forget.classes={cfg.classes} with skew={cfg.skew} leaves no person to draw")
    n_pick = min(_count(cfg.fraction, len(people)), int((weights > 0).sum()))
    rng = np.random.default_rng(cfg.seed)
    picked = rng.choice(people, n_pick, replace=False, p=weights / weights.sum())
    return _examples_of(ds, train, picked)


def _check_classes(ds: ImageDataset, classes: tuple[int, ...]) -> None:
    if not classes:
        raise InputError("forget.classes is empty; name at least one class index")
    bad = [c for c in classes if not 0 <= c < ds.num_classes]
    if bad:
        raise InputError(f"forget class {bad[0]} is out of range; {ds.name} has classes 0..{ds.num_classes - 1}")


@FORGET_SELECTORS.register("class", config=ClassForget)
def select_class(ds: ImageDataset, cfg: ClassForget) -> np.ndarray:
    """Every training example of the given classes."""
    _check_classes(ds, cfg.classes)
    train = ds.indices("train")
    return train[np.isin(ds.labels[train], cfg.classes)]


@FORGET_SELECTORS.register("identities", config=IdentitiesForget)
def select_identities(ds: ImageDataset, cfg: IdentitiesForget) -> np.ndarray:
    """Every training image of the named people (dataset group ids)."""
    if not cfg.ids:
        raise InputError("forget spec 'identities' needs ids, e.g. identities:12,57")
    train, people = _train_people(ds, "identities")
    missing = sorted(set(cfg.ids) - set(people.tolist()))
    if missing:
        raise InputError(
            f"identity {missing[0]} is not among the {len(people)} training people of {ds.name} "
            f"(ids range {people.min()}..{people.max()})"
        )
    return _examples_of(ds, train, np.asarray(cfg.ids))


# The field a spec's ":ARG" sets, per selector.
_ARG_FIELD = {"random": "fraction", "identity": "fraction", "identity_skewed": "fraction", "class": "classes", "identities": "ids"}


def parse_forget_spec(spec: str, overrides: dict | None = None) -> tuple[str, object]:
    """Turn ``"identity_skewed:0.02"`` (+ ``--set forget.*`` overrides) into (kind, config)."""
    kind, _, arg = spec.partition(":")
    entry = FORGET_SELECTORS.entry(kind.strip())
    fields = dict(overrides or {})
    if arg.strip():
        fields[_ARG_FIELD[entry.name]] = arg.strip()
    return entry.name, from_dict(entry.config, fields, where="forget")


def select_forget(ds: ImageDataset, spec: str, overrides: dict | None = None) -> ForgetSet:
    """Select the forget set ``spec`` names from the training split of ``ds``.

    Raises:
        InputError: the spec is malformed, names unknown classes or people, or selects nothing or
            the whole training set.
    """
    kind, cfg = parse_forget_spec(spec, overrides)
    indices = np.unique(np.asarray(FORGET_SELECTORS.get(kind)(ds, cfg), dtype=np.int64))
    n_train = len(ds.indices("train"))
    if len(indices) == 0:
        raise InputError(f"forget spec {spec!r} selects no training example of {ds.name}")
    if len(indices) >= n_train:
        raise InputError(f"forget spec {spec!r} selects all {n_train} training examples of {ds.name}; nothing would be retained")
    return ForgetSet(indices=indices, kind=kind, config=to_dict(cfg), dataset_fingerprint=ds.fingerprint)


def retain_indices(ds: ImageDataset, forget: ForgetSet) -> np.ndarray:
    """Training examples not in the forget set."""
    train = ds.indices("train")
    return train[~np.isin(train, forget.indices)]
