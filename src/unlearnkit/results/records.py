"""A stored model's metadata (the ``meta`` of a model record, ``seed_KKKK.npz``) as a typed record.

The units write it (``unlearnkit.runner.units``); the score unit and the report read it through
:func:`model_meta`, by name. Fields every record has are required; fields only some kinds or later
versions write (``compute``, ``conditions``, ``budget_compute``) are None when absent, so a record
written before them reads as "not measured". Keys this class does not name (a training history,
the original's recipe) stay in the record and are not read here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from unlearnkit.errors import InputError
from unlearnkit.results.fields import flag, integer, mapping, number, numbers, optional, text

# The fields every model record carries; a record without one is refused with its name.
_REQUIRED = ("kind", "k", "seed", "seconds", "accuracy")


@dataclass(frozen=True)
class ModelMeta:
    """What a unit recorded about one model beside its logits (docs/results.md, "A model record").

    Attributes:
        kind: ``original``, ``retrain`` or ``unlearn``.
        k: The model's index in its role.
        seed: Its seed.
        seconds: Training or unlearning wall time.
        steps: Optimizer steps.
        accuracy: By split (``forget``, ``test``, ``retain_probe``, ``retain``, ``val``).
        diverged: Where the logits were non-finite, or None for a healthy model.
        compute: Example passes of the run (forward = 1, backward = 2), or None where not counted.
        conditions: ``host``, ``device``, ``threads``, ``precision`` under which ``seconds`` was
            measured, or None where not recorded.
        peak_memory_bytes: Peak memory of the run, or None.
        timed_alone: A retrain trained one model at a time (its ``seconds`` is a real retrain's).
        train_examples: The original's training-set size (None for other kinds).
        stopped_by_budget: The budget stopped this method run.
        budget_compute: The run's cap in example passes, or None.
        guard: The utility guard's outcome of a guarded method run (``methods.guard.GuardOutcome``'s
            fields: tolerance, passed, chosen, probe accuracies, compute, ...), or None unguarded.
        regime: What the regime rule measured on the original and changed (``methods.regime.Regime``'s
            fields: retain, val, memorises, scale, scaled), or None where the rule was not applied.
    """

    kind: str
    k: int
    seed: int
    seconds: float
    steps: float
    accuracy: dict[str, float]
    diverged: str | None = None
    compute: float | None = None
    conditions: dict[str, Any] | None = None
    peak_memory_bytes: int | None = None
    timed_alone: bool = False
    train_examples: int | None = None
    stopped_by_budget: bool = False
    budget_compute: float | None = None
    guard: dict[str, Any] | None = None
    regime: dict[str, Any] | None = None

    @property
    def healthy(self) -> bool:
        return self.diverged is None

    @classmethod
    def from_json(cls, meta: Any, where: str = "model record") -> ModelMeta:
        """Read the named fields of ``meta``.

        Raises:
            InputError: ``meta`` lacks a required field or has one of the wrong type (named).
        """
        meta = mapping(meta, where)
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise InputError(f"{where}: the model record's meta lacks {', '.join(missing)}; not written by this version")
        opt_num = optional(number)
        return cls(
            kind=text(meta["kind"], f"{where}.kind"), k=integer(meta["k"], f"{where}.k"),
            seed=integer(meta["seed"], f"{where}.seed"), seconds=number(meta["seconds"], f"{where}.seconds"),
            steps=number(meta.get("steps", 0), f"{where}.steps"), accuracy=numbers(meta["accuracy"], f"{where}.accuracy"),
            diverged=optional(text)(meta.get("diverged"), f"{where}.diverged"),
            compute=opt_num(meta.get("compute"), f"{where}.compute"),
            conditions=optional(mapping)(meta.get("conditions"), f"{where}.conditions"),
            peak_memory_bytes=optional(integer)(meta.get("peak_memory_bytes"), f"{where}.peak_memory_bytes"),
            timed_alone=flag(bool(meta.get("timed_alone", False)), f"{where}.timed_alone"),
            train_examples=optional(integer)(meta.get("train_examples"), f"{where}.train_examples"),
            stopped_by_budget=bool(meta.get("stopped_by_budget", False)),
            budget_compute=opt_num(meta.get("budget_compute"), f"{where}.budget_compute"),
            guard=optional(mapping)(meta.get("guard"), f"{where}.guard"),
            regime=optional(mapping)(meta.get("regime"), f"{where}.regime"),
        )


def model_meta(record: dict[str, np.ndarray], where: str = "model record") -> ModelMeta:
    """The typed metadata of a loaded model record (``load_run``'s arrays)."""
    if "meta" not in record:
        raise InputError(f"{where} has no meta entry; not a model record of this version")
    try:
        meta = json.loads(str(record["meta"]))
    except ValueError as exc:
        raise InputError(f"{where}: its meta is not JSON ({exc})") from None
    return ModelMeta.from_json(meta, where)
