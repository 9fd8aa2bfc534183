"""The leaderboard of a bench as typed records: what ``leaderboard.json`` holds, field by field.

The runner's score unit builds a :class:`Leaderboard` and writes it; the report, ``unlearnkit
forget`` and the scripts in ``benchmarks/`` read it back with :func:`read_leaderboard`. Both sides use
these classes, so a reader cannot ask for a field the writer does not write: a renamed field fails
a test, not a user's table. ``docs/results.md`` documents every field (a test checks it against the
classes).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnkit.errors import InputError
from unlearnkit.io import write_json
from unlearnkit.results.fields import (
    flag,
    integer,
    listed,
    mapping,
    number,
    numbers,
    optional,
    pair,
    read_fields,
    text,
)

# The shape of leaderboard.json (docs/results.md). 2: cost in example passes (compute, compute_ratio),
# over_limit judged on compute, retrain times only against the same conditions.
SCHEMA_VERSION = 2
# The name of the row of independent retrains scored like a method (a perfect unlearner).
CEILING = "retrain (ceiling)"
# Row fields added within schema 2 (the feature-level metric): a row written before them reads them as null.
FEATURE_FIELDS = ("feature_quality", "feature_quality_interval")
# The suffix of a guarded row's name (``seif+guard``: seif run under the utility guard, docs/guard.md).
GUARDED = "+guard"


@dataclass(frozen=True)
class Accuracy:
    """Mean accuracy over a row's models on the retain set, the test split and the forget set."""

    retain: float
    test: float
    forget: float

    @classmethod
    def from_json(cls, record: Any, where: str = "accuracy") -> Accuracy:
        return read_fields(cls, record, where, {"retain": number, "test": number, "forget": number})


@dataclass(frozen=True)
class RowGuard:
    """The utility guard's outcome over a guarded row's runs (docs/guard.md).

    Attributes:
        tolerance: Accuracy (a fraction) each run's model may lose against the original on each probe.
        runs: The row's runs.
        passed: Runs whose model is within the tolerance on both probes.
        repaired: Runs whose model is the guard's repair of the method's (blended towards the original).
        retain: Mean retain-probe accuracy of the returned models.
        val: Mean validation-probe accuracy (None without a validation probe).
        original_retain: The original's retain-probe accuracy (mean over the runs' probes).
        original_val: ... validation-probe accuracy, or None.
        compute: Mean example passes the guard spent per run (part of the row's ``compute``).
    """

    tolerance: float
    runs: int
    passed: int
    repaired: int
    retain: float
    val: float | None
    original_retain: float
    original_val: float | None
    compute: float

    @classmethod
    def from_json(cls, record: Any, where: str = "guard") -> RowGuard:
        opt = optional(number)
        return read_fields(cls, record, where, {
            "tolerance": number, "runs": integer, "passed": integer, "repaired": integer, "retain": number,
            "val": opt, "original_retain": number, "original_val": opt, "compute": number})


@dataclass(frozen=True)
class DivergedRun:
    """A model whose outputs were not all finite (scored as the worst case).

    Attributes:
        seed_index: K, its index among the row's N models.
        seed: Its seed.
        where: Which outputs were non-finite.
    """

    seed_index: int
    seed: int
    where: str

    @classmethod
    def from_json(cls, record: Any, where: str = "diverged") -> DivergedRun:
        return read_fields(cls, record, where, {"seed_index": integer, "seed": integer, "where": text})


@dataclass(frozen=True)
class RetrainCost:
    """One retrain's cost, the unit every row's cost is read against.

    Attributes:
        seconds: Mean wall time of one retrain under ``conditions``; None when no retrain was timed
            under the conditions the rows ran in (``timing_note`` says why).
        steps: Mean optimizer steps of one retrain.
        compute: Mean example passes of one retrain (forward = 1, backward = 2); None where the
            references predate the count.
        peak_memory_bytes: The original's training peak (one model alone), or None.
        measured_on: Which models ``seconds``, ``steps`` and ``compute`` were measured on.
        conditions: host, device, threads and precision under which ``seconds`` was measured;
            None where the records predate them.
        timing_note: Why ``seconds`` is None, or None.
    """

    seconds: float | None
    steps: float
    compute: float | None
    peak_memory_bytes: int | None
    measured_on: str
    conditions: dict[str, Any] | None
    timing_note: str | None

    @classmethod
    def from_json(cls, record: Any, where: str = "retrain_cost") -> RetrainCost:
        return read_fields(cls, record, where, {
            "seconds": optional(number), "steps": number, "compute": optional(number),
            "peak_memory_bytes": optional(integer), "measured_on": text, "conditions": optional(mapping),
            "timing_note": optional(text)})


@dataclass(frozen=True)
class OriginalModel:
    """The original model A(D) every method starts from.

    Attributes:
        accuracy: By split: ``forget``, ``retain``, ``retain_probe``, ``test``, ``val``.
        seed: Its seed.
        seconds: Its training time.
        compute: Its training's example passes, or None where not counted.
    """

    accuracy: dict[str, float]
    seed: int
    seconds: float
    compute: float | None

    @classmethod
    def from_json(cls, record: Any, where: str = "original") -> OriginalModel:
        return read_fields(cls, record, where, {"accuracy": numbers, "seed": integer, "seconds": number,
                                                "compute": optional(number)})


@dataclass(frozen=True)
class LeaderboardRow:
    """One row: a method's N runs (or the ceiling's N retrains) scored against the N references.

    docs/results.md says what each field means; the names there and here are the same.
    """

    method: str
    score: float
    score_bounded: float
    forget_quality: float
    forget_quality_bounded: float
    accuracy: Accuracy
    retrain_accuracy: Accuracy
    seconds: float
    steps: float
    compute: float | None
    time_ratio: float | None
    step_ratio: float | None
    compute_ratio: float | None
    over_limit: bool
    stopped_by_budget: int
    peak_memory_bytes: int | None
    memory_ratio: float | None
    diverged: tuple[DivergedRun, ...]
    ulira: float
    ulira_baseline: float
    loss_mia: float | None
    svc_mia_efficacy: float | None
    forget_quality_interval: tuple[float, float] | None
    score_interval: tuple[float, float] | None
    klom_forget: float | None
    klom_test: float | None
    klom_retain_probe: float | None
    feature_quality: float | None = None
    feature_quality_interval: tuple[float, float] | None = None
    guard: RowGuard | None = None
    one_time_ratio: float | None = None

    @property
    def limit_judged_on(self) -> str | None:
        """What ``over_limit`` compared with 20 % of a retrain: "compute", "time", or None (neither known)."""
        if self.compute_ratio is not None:
            return "compute"
        return "time" if self.time_ratio is not None else None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: Any, where: str = "row") -> LeaderboardRow:
        opt = optional(number)
        if isinstance(record, dict):
            # Rows written before the feature-level metric lack its fields: not measured.
            record = {**{name: None for name in FEATURE_FIELDS}, "guard": None, "one_time_ratio": None, **record}
        return read_fields(cls, record, where, {
            "method": text, "score": number, "score_bounded": number, "forget_quality": number,
            "forget_quality_bounded": number, "accuracy": Accuracy.from_json, "retrain_accuracy": Accuracy.from_json,
            "seconds": number, "steps": number, "compute": opt, "time_ratio": opt, "step_ratio": opt,
            "compute_ratio": opt, "over_limit": flag, "stopped_by_budget": integer,
            "peak_memory_bytes": optional(integer), "memory_ratio": opt, "diverged": listed(DivergedRun.from_json),
            "ulira": number, "ulira_baseline": number, "loss_mia": opt, "svc_mia_efficacy": opt,
            "forget_quality_interval": optional(pair), "score_interval": optional(pair),
            "klom_forget": opt, "klom_test": opt, "klom_retain_probe": opt,
            "feature_quality": opt, "feature_quality_interval": optional(pair), "guard": optional(RowGuard.from_json),
            "one_time_ratio": opt})


@dataclass(frozen=True)
class Leaderboard:
    """A scored bench: its rows, best ``score`` first, and what they were measured against.

    Attributes:
        rows: One per method and the ceiling, best ``score`` first.
        seeds: N, models per side.
        forget_examples: E, the forget set's size.
        dataset: Dataset name.
        model: Architecture name.
        forget: The forget spec as given, e.g. ``identity:0.1``.
        budget: Method runs capped at this fraction of one retrain's compute; None: no cap.
        retrain_cost: One retrain's cost.
        original: The original model.
        setting: The resolved setting (``bench.json["summary"]``).
        provenance: The software and machine that scored the bench.
    """

    rows: tuple[LeaderboardRow, ...]
    seeds: int
    forget_examples: int
    dataset: str
    model: str
    forget: str
    budget: float | None
    retrain_cost: RetrainCost
    original: OriginalModel
    setting: dict[str, Any]
    provenance: dict[str, Any]

    def row(self, method: str) -> LeaderboardRow | None:
        """The row named ``method``, or None."""
        return next((r for r in self.rows if r.method == method), None)

    @property
    def ceiling(self) -> LeaderboardRow | None:
        return self.row(CEILING)

    @property
    def methods(self) -> list[str]:
        return [r.method for r in self.rows]

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, record: Any, where: str = "leaderboard") -> Leaderboard:
        """Read a leaderboard record of this schema version.

        Raises:
            InputError: another schema version, or a missing, unknown or mistyped field (named).
        """
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected a leaderboard object, got {type(record).__name__}")
        version = record.get("schema_version")
        if version != SCHEMA_VERSION:
            raise InputError(f"{where} is leaderboard schema {version if version is not None else '1 (unversioned)'}; "
                             f"this unlearnkit reads schema {SCHEMA_VERSION} (docs/results.md). Re-score the bench "
                             "with this version (delete leaderboard.json, then `unlearnkit work OUT --drain`)")
        body = {k: v for k, v in record.items() if k != "schema_version"}
        return read_fields(cls, body, where, {
            "rows": listed(LeaderboardRow.from_json), "seeds": integer, "forget_examples": integer,
            "dataset": text, "model": text, "forget": text, "budget": optional(number),
            "retrain_cost": RetrainCost.from_json, "original": OriginalModel.from_json,
            "setting": mapping, "provenance": mapping})


def upgrade_schema_1(record: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 leaderboard record in schema 2's shape, for reading recorded results.

    What schema 1 did not measure is null: ``compute``, ``compute_ratio``, ``retrain_cost.compute``
    and ``original.compute``; ``retrain_cost.conditions`` (its times were not matched on conditions).
    ``over_time_limit`` becomes ``over_limit``, which schema 1 judged on time. A record of another
    version is returned unchanged (and :meth:`Leaderboard.from_json` refuses it).
    """
    if record.get("schema_version", 1) != 1 or not isinstance(record.get("rows"), list):
        return record

    def row(r: Any) -> Any:
        if not isinstance(r, dict) or "over_time_limit" not in r:
            return r
        rest = {k: v for k, v in r.items() if k != "over_time_limit"}
        return {**rest, "over_limit": r["over_time_limit"], "compute": None, "compute_ratio": None}

    cost, original = record.get("retrain_cost"), record.get("original")
    return {
        **record, "schema_version": SCHEMA_VERSION, "rows": [row(r) for r in record["rows"]],
        "retrain_cost": {**cost, "compute": None, "conditions": None, "timing_note": None} if isinstance(cost, dict) else cost,
        "original": {**original, "compute": None} if isinstance(original, dict) else original,
    }


def read_leaderboard(path: str | Path, *, schema_1: bool = False) -> Leaderboard:
    """The leaderboard in ``path`` (a ``leaderboard.json``).

    Args:
        path: The file.
        schema_1: Also read a schema-1 record (:func:`upgrade_schema_1`): for recorded results
            (``benchmarks/``, ``unlearnkit forget``'s choice of method), never for a bench being
            reported, which is re-scored instead.

    Raises:
        InputError: no such file, not JSON (e.g. truncated), or not a leaderboard of this schema;
            the message names the file.
    """
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such leaderboard") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc}); truncated or edited by hand?") from None
    if schema_1 and isinstance(record, dict):
        record = upgrade_schema_1(record)
    return Leaderboard.from_json(record, where=str(path))


def write_leaderboard(path: str | Path, board: Leaderboard) -> None:
    """Write ``board`` to ``path`` atomically (a reader sees the old file or the whole new one)."""
    write_json(path, board.to_json())
