"""Where every result of a bench lives, and the checks that keep a folder to one setting.

A bench folder ``OUT`` and a cache shared by every bench over the same setting::

    OUT/bench.json                      the setting, N, methods and their configs, versions (written first)
    OUT/forget.json                     the forget set
    OUT/units.json                      the bench's work units, in order (what ``unlearnkit work`` runs)
    OUT/methods/NAME/config.json        the method's resolved config and budget
    OUT/methods/NAME/seed_0003.npz      unlearned model 3 of NAME: logits on the eval sets, accuracies, cost
    OUT/units/NAME.json                 when and where a unit ran, and how long it took
    OUT/retimed_retrain.json            one retrain timed here, when the cached ones were timed elsewhere
    OUT/locks/NAME.lock                 a claimed unit (``unlearnkit work --next``)
    OUT/locks/bench.lock                the ``unlearnkit bench`` running in this folder (host, pid)
    OUT/per_example.npz                 per-example ε of every row, and the forget examples (for the report)
    OUT/leaderboard.json, OUT/report.md the scored result (leaderboard.json written last)
    CACHE/originals/KEY.safetensors     the original model A(D) (+ .json sidecar), one for every forget set
    CACHE/references/KEY/original.npz   the original's outputs, on this forget set
    CACHE/references/KEY/seed_0003.npz  retrained reference 3, A(D \\ S)

Every file is written atomically (``unlearnkit.io``) and written once: a result that exists is final,
so an interrupted bench resumes by skipping what is there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.config import to_dict
from unlearnkit.data.cache import resolve_cache_dir
from unlearnkit.engine.checkpoint import spec_to_dict
from unlearnkit.errors import InputError
from unlearnkit.io import fingerprint, read_json, read_npz, write_json

# Bumped whenever a change makes stored results differ (seeds, what a model is evaluated on, the
# recipe's meaning): a folder or cache entry written by another results version is refused.
RESULTS_VERSION = 2


@dataclass(frozen=True)
class BenchStore:
    """The paths of one bench's results (``out``) and of the shared cache entries it reads.

    Attributes:
        out: The bench folder.
        cache: The cache root (``--cache-dir``; default ``~/.cache/unlearnkit``).
        original_key: Names the original model A(D) in ``cache/originals``.
        reference_key: Names the retrained references in ``cache/references``.
    """

    out: Path
    cache: Path
    original_key: str
    reference_key: str

    @classmethod
    def for_setting(cls, out: str | Path, cache_dir: str, setting) -> "BenchStore":
        """The store of a bench over ``setting`` (a resolved :class:`~unlearnkit.runner.setting.Setting`)."""
        cfg = setting.config
        common = (RESULTS_VERSION, setting.dataset.fingerprint, spec_to_dict(setting.spec), to_dict(cfg.train), cfg.run_seed)
        return cls(
            out=Path(out),
            cache=resolve_cache_dir(cache_dir),
            original_key=fingerprint("original", *common),
            reference_key=fingerprint("retrain", setting.forget.fingerprint, *common),
        )

    @classmethod
    def open(cls, out: str | Path) -> "BenchStore":
        """The store of an existing bench folder (as ``unlearnkit work`` and ``report`` find it)."""
        record = read_bench_record(out)
        try:
            return cls(Path(out), Path(record["cache"]), record["original_key"], record["reference_key"])
        except KeyError as exc:
            raise InputError(f"{Path(out) / 'bench.json'} lacks the field {exc}; it was not written by this version") from None

    # -- paths ------------------------------------------------------------------------------------
    @property
    def original_checkpoint(self) -> Path:
        return self.cache / "originals" / f"{self.original_key}.safetensors"

    @property
    def original_outputs(self) -> Path:
        # Beside the references: the original serves every forget set, its outputs on one are this one's.
        return self.cache / "references" / self.reference_key / "original.npz"

    def reference(self, k: int) -> Path:
        return self.cache / "references" / self.reference_key / f"seed_{k:04d}.npz"

    def method_dir(self, method: str) -> Path:
        return self.out / "methods" / method

    def method_run(self, method: str, k: int) -> Path:
        return self.method_dir(method) / f"seed_{k:04d}.npz"

    def unit_record(self, unit_name: str) -> Path:
        return self.out / "units" / f"{_safe(unit_name)}.json"

    def lock(self, unit_name: str) -> Path:
        return self.out / "locks" / f"{_safe(unit_name)}.lock"

    @staticmethod
    def bench_lock(out: str | Path) -> Path:
        """The lock of the ``unlearnkit bench`` running in folder ``out`` (one at a time)."""
        return Path(out) / "locks" / "bench.lock"

    @property
    def leaderboard(self) -> Path:
        return self.out / "leaderboard.json"

    @property
    def per_example(self) -> Path:
        return self.out / "per_example.npz"

    @property
    def units_file(self) -> Path:
        return self.out / "units.json"

    @property
    def retimed_retrain(self) -> Path:
        """One retrain timed where this bench's methods ran, when the cached ones were timed elsewhere:
        JSON {"seconds", "compute", "steps", "conditions", "reason"} (runner.units ``retime``)."""
        return self.out / "retimed_retrain.json"


def _safe(name: str) -> str:
    return name.replace("[", "_").replace("]", "").replace(":", "-").replace("/", "_")


def read_bench_record(out: str | Path) -> dict[str, Any]:
    """``OUT/bench.json``, or a clear error when ``out`` holds no bench."""
    path = Path(out) / "bench.json"
    if not path.is_file():
        raise InputError(f"{out} holds no bench (no bench.json); run `unlearnkit bench --out {out}` first")
    try:
        record = read_json(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc})") from None
    if not isinstance(record, dict):
        raise InputError(f"{path}: expected a bench record (a JSON object), got {type(record).__name__}")
    if record.get("results_version") != RESULTS_VERSION:
        raise InputError(
            f"{path} was written by results version {record.get('results_version')} (unlearnkit "
            f"{record.get('unlearnkit', '?')}); this unlearnkit writes version {RESULTS_VERSION}, whose results "
            "differ. Use a new --out (the old folder stays readable by the version that wrote it)")
    return record


def write_record_once(path: Path, record: dict[str, Any], identity: tuple[str, ...], what: str, *,
                      update: bool = False) -> None:
    """Write ``record`` to ``path`` unless it holds the same run; refuse a different one.

    Args:
        path: The record file.
        record: What to write.
        identity: The keys whose values must match an existing record's.
        what: Names the folder in the error, e.g. "bench folder runs/b".
        update: Rewrite a matching record (its other fields: where the cache is, provenance).
    """
    if check_record(path, record, identity, what) and not update:
        return
    write_json(path, record)


def check_record(path: Path, record: dict[str, Any], identity: tuple[str, ...], what: str) -> bool:
    """Whether ``path`` already holds ``record``'s run (False: no record there); a different run raises.

    Lets a job check every record of a folder before it writes the first one.
    """
    if not path.is_file():
        return False
    try:
        old = read_json(path)
    except (OSError, ValueError):
        old = {}
    old = old if isinstance(old, dict) else {}
    new = json.loads(json.dumps(record, default=str))
    differs = [k for k in identity if old.get(k) != new.get(k)]
    if differs:
        raise InputError(
            f"{what} holds a different run ({path}: {', '.join(differs)} differ); "
            "resume with the same settings or use a new --out")
    return True


def load_run(path: Path) -> dict[str, np.ndarray]:
    """One model's stored outputs (an ``.npz`` written by a unit)."""
    return read_npz(path)


def run_meta(record: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON metadata stored beside a model's outputs."""
    return json.loads(str(record["meta"]))
