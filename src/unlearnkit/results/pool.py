"""A prepared pool of shadow models as stored: the format ``unlearnkit prepare`` writes and prepared methods read.

See :mod:`unlearnkit.runner.prepare` for how a pool is built. This module sits below the methods
and the runner, so that a prepared method can read a pool without the runner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.errors import InputError
from unlearnkit.io import read_json, read_npz
from unlearnkit.results.store import RESULTS_VERSION

POOL_VERSION = 2


def shadow_path(folder: Path, k: int) -> Path:
    """Shadow ``k``'s file in the pool at ``folder``."""
    return Path(folder) / f"shadow_{k:04d}.npz"


@dataclass(frozen=True, eq=False)
class ShadowPool:
    """A prepared pool, read back: what every shadow said on every training and validation example.

    Attributes:
        folder: Where it lives.
        record: ``pool.json``.
        out: bool [K, n_train]: True where shadow k never saw training example i.
        train_index: Dataset indices of the training rows.
        val_index: Dataset indices of the validation rows.
        train_logits: float32 [K, n_train, classes].
        val_logits: float32 [K, n_val, classes].
        compute: Each shadow's training compute (example passes).
        seconds: Each shadow's training seconds.
    """

    folder: Path
    record: dict[str, Any]
    out: np.ndarray
    train_index: np.ndarray
    val_index: np.ndarray
    train_logits: np.ndarray
    val_logits: np.ndarray
    compute: np.ndarray
    seconds: np.ndarray

    @property
    def size(self) -> int:
        return int(self.out.shape[0])

    def rows(self, dataset_index: np.ndarray) -> np.ndarray:
        """Positions in the training rows of ``dataset_index``; an index outside the training split raises."""
        order = np.argsort(self.train_index)
        pos = np.searchsorted(self.train_index, dataset_index, sorter=order)
        pos = np.clip(pos, 0, len(order) - 1)
        rows = order[pos]
        bad = self.train_index[rows] != dataset_index
        if bad.any():
            raise InputError(f"pool {self.folder}: {int(bad.sum())} forget examples are not among the pool's training "
                             f"examples (e.g. dataset index {int(np.asarray(dataset_index)[bad][0])}); "
                             "was the pool prepared on this dataset?")
        return rows

    def select(self, shadows: range) -> "ShadowPool":
        """The same pool with only ``shadows`` (e.g. ``range(16, 32)``: the second half of a 32-shadow pool)."""
        k = list(shadows)
        if len(k) < 2 or min(k) < 0 or max(k) >= self.size:
            asked = f"{k[0]}..{k[-1]}" if k else "none"
            raise InputError(f"pool {self.folder}: shadows {asked} asked for; it has 0..{self.size - 1} (at least 2 needed)")
        return ShadowPool(self.folder, self.record, self.out[k], self.train_index, self.val_index, self.train_logits[k],
                          self.val_logits[k], self.compute[k], self.seconds[k])

    @property
    def leave_out(self) -> float | str:
        """What each shadow left out: the share of the groups, or ``"class"`` for a pool of class leave-outs."""
        pool = self.record["pool"]
        return "class" if pool.get("by_class") else pool["leave_out"]

    def cost(self) -> dict[str, float]:
        """The pool's one-time cost: compute and seconds in all, and compute as a multiple of one retrain on D."""
        total = float(self.compute.sum())
        return {"shadows": self.size, "compute": total, "seconds": float(self.seconds.sum()),
                "compute_ratio": total / float(self.record["retrain_compute"])}


def read_design(folder: str | Path) -> np.ndarray:
    """bool [K, n_train]: which training examples each shadow of the pool at ``folder`` leaves out,
    from its members.npz alone (no shadow's outputs are read)."""
    path = Path(folder).expanduser() / "members.npz"
    if not path.is_file():
        raise InputError(f"{Path(folder).expanduser()} holds no shadow pool (no members.npz); run `unlearnkit prepare` first")
    return read_npz(path)["out"].astype(bool)


def load_pool(folder: str | Path, shadows: int | None = None) -> ShadowPool:
    """Read the pool at ``folder`` (its first ``shadows`` shadows; None: all K); a missing shadow raises."""
    folder = Path(folder).expanduser()
    if not (folder / "pool.json").is_file():
        raise InputError(f"{folder} holds no shadow pool (no pool.json); run `unlearnkit prepare` first")
    record = read_json(folder / "pool.json")
    if record.get("pool_version") != POOL_VERSION or record.get("results_version") != RESULTS_VERSION:
        raise InputError(f"{folder / 'pool.json'} was written by another pool or results version; prepare the pool again")
    members = read_npz(folder / "members.npz")
    k_all = int(record["pool"]["shadows"])
    k = k_all if shadows is None else shadows
    if not 2 <= k <= k_all:
        raise InputError(f"pool {folder}: asked for {k} shadows; it has {k_all} (at least 2 are needed)")
    missing = [i for i in range(k) if not shadow_path(folder, i).is_file()]
    if missing:
        raise InputError(f"pool {folder}: shadows {', '.join(map(str, missing[:5]))}{'...' if len(missing) > 5 else ''} "
                         "are not trained yet; run `unlearnkit prepare` again to finish it")
    files = [read_npz(shadow_path(folder, i)) for i in range(k)]
    metas = [json.loads(str(f["meta"])) for f in files]
    return ShadowPool(folder, record, members["out"][:k].astype(bool), members["train_index"], members["val_index"],
                      np.stack([f["train_logits"] for f in files]), np.stack([f["val_logits"] for f in files]),
                      np.array([m["compute"] for m in metas], dtype=np.float64),
                      np.array([m["seconds"] for m in metas], dtype=np.float64))
