"""The in-memory dataset every loader returns, and the group-aware split helper loaders share.

Each loader registers in DATASETS with a ``probe(config)`` (``DATASETS.entry(name).meta["probe"]``)
that looks at the files without decoding them, for ``unlearnkit datasets``. It returns None where
nothing of the dataset is there, a dict of facts (``root`` and counts) where it is, and a dict that
also holds ``"missing"``, a short list of what a load would lack (``"list_eval_partition.txt,
img_align_celeba/"``), where the folder is only partly there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unlearnkit.errors import InputError
from unlearnkit.registry import Registry
from unlearnkit.io import fingerprint

DATASETS: Registry = Registry("dataset")

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Decoded images with labels, identities and a train/val/test split.

    Attributes:
        name: The registered dataset name.
        images: uint8 array [n, H, W, C] with C = 1 or 3.
        labels: int64 array [n] in [0, len(class_names)).
        groups: int64 array [n]: the person / identity of each image, -1 where the dataset has none.
        split: int8 array [n]: 0 train, 1 val, 2 test.
        class_names: One name per class.
        source: Where the data came from (a path, or "generated").
        meta: Loader-specific facts for reports (e.g. the label task, counts of skipped files).
            ``meta["groups_file"]``, where a loader sets it, is the file that would have provided
            the groups a dataset lacks; identity forget sets name it when they refuse.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    split: np.ndarray
    class_names: tuple[str, ...]
    source: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.images)
        if self.images.ndim != 4 or self.images.dtype != np.uint8 or self.images.shape[-1] not in (1, 3):
            raise InputError(
                f"dataset {self.name}: images must be uint8 [n, H, W, 1 or 3], "
                f"got {self.images.dtype} {self.images.shape}"
            )
        for attr in ("labels", "groups", "split"):
            if len(getattr(self, attr)) != n:
                raise InputError(f"dataset {self.name}: {attr} has {len(getattr(self, attr))} entries for {n} images")
        if n == 0:
            raise InputError(f"dataset {self.name} from {self.source}: no images were found")
        k = len(self.class_names)
        bad = np.flatnonzero((self.labels < 0) | (self.labels >= k))
        if bad.size:
            raise InputError(
                f"dataset {self.name}: label {int(self.labels[bad[0]])} of example {int(bad[0])} "
                f"is out of range; expected 0..{k - 1} ({k} classes)"
            )
        if not np.isin(self.split, (TRAIN, VAL, TEST)).all():
            raise InputError(f"dataset {self.name}: split values must be 0 (train), 1 (val) or 2 (test)")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image as the models see it."""
        _, h, w, c = self.images.shape
        return (c, h, w)

    @property
    def has_groups(self) -> bool:
        return bool((self.groups >= 0).any())

    def indices(self, split: str) -> np.ndarray:
        """Example indices of the named split ("train", "val" or "test")."""
        if split not in SPLIT_NAMES:
            raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return np.flatnonzero(self.split == SPLIT_NAMES.index(split))

    @property
    def fingerprint(self) -> str:
        """Identifies the data (images, labels, groups and split) for provenance and caching."""
        cached = self.meta.get("_fingerprint")
        if cached is None:
            cached = fingerprint(self.name, self.images, self.labels, self.groups, self.split)
            self.meta["_fingerprint"] = cached
        return cached

    def summary(self) -> dict:
        """Sizes and class counts, for reports and ``unlearnkit datasets``."""
        return {
            "name": self.name,
            "source": self.source,
            "examples": int(len(self.images)),
            "image_shape": list(self.image_shape),
            "classes": self.num_classes,
            "groups": int(len(np.unique(self.groups[self.groups >= 0]))),
            **{f"{s}_examples": int((self.split == i).sum()) for i, s in enumerate(SPLIT_NAMES)},
            "fingerprint": self.fingerprint,
        }


def assign_split(
    n: int,
    groups: np.ndarray | None,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> np.ndarray:
    """A deterministic train/val/test assignment, keeping each group (person) on one side.

    Where ``groups`` is given (>= 0 entries), whole groups are assigned, so no person appears in two
    splits; examples without a group (-1) are assigned one by one.

    Returns:
        int8 array [n] of 0 (train), 1 (val), 2 (test).
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction}: each must be in [0, 1) "
            "and together below 1"
        )
    rng = np.random.default_rng(seed)
    units = np.arange(n) if groups is None else np.where(groups >= 0, groups, -1 - np.arange(n))
    uniq, inverse = np.unique(units, return_inverse=True)
    order = rng.permutation(len(uniq))
    n_test = int(round(test_fraction * len(uniq)))
    n_val = int(round(val_fraction * len(uniq)))
    unit_split = np.zeros(len(uniq), dtype=np.int8)
    unit_split[order[:n_test]] = TEST
    unit_split[order[n_test : n_test + n_val]] = VAL
    return unit_split[inverse]
