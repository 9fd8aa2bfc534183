"""runner.score's retrain cost: compute from every reference, wall time only under the methods' conditions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from unlearnkit.results.records import ModelMeta
from unlearnkit.runner.score import retrain_cost

HERE = {"host": "a", "device": "cpu", "threads": 1, "precision": "fp32"}
THERE = {**HERE, "host": "b"}


@dataclass(frozen=True)
class _Store:
    retimed_retrain: Path


def meta(kind: str, seconds: float, conditions: dict | None, compute: float | None = 100.0, **extra) -> ModelMeta:
    return ModelMeta(kind=kind, k=0, seed=0, seconds=seconds, steps=10.0, accuracy={}, compute=compute,
                     conditions=conditions, **extra)


ORIGINAL = meta("original", 40.0, THERE, compute=400.0, train_examples=200)


def test_retrains_timed_here_set_the_time_and_every_reference_the_compute(tmp_path):
    refs = [meta("retrain", 2.0, HERE, timed_alone=True), meta("retrain", 4.0, HERE, timed_alone=True),
            meta("retrain", 99.0, HERE, compute=300.0)]  # trained in an ensemble: its time is not one retrain's
    cost = retrain_cost(refs, ORIGINAL, 100, HERE, _Store(tmp_path / "none.json"))
    assert cost.seconds == pytest.approx(3.0) and cost.compute == pytest.approx(500.0 / 3)
    assert cost.conditions == HERE and cost.timing_note is None


def test_retrains_timed_elsewhere_give_no_time_unless_one_was_retimed_here(tmp_path):
    refs = [meta("retrain", 2.0, THERE, timed_alone=True)]
    cost = retrain_cost(refs, ORIGINAL, 100, HERE, _Store(tmp_path / "retimed_retrain.json"))
    assert cost.seconds is None and "host a" in cost.timing_note and cost.compute == 100.0
    (tmp_path / "retimed_retrain.json").write_text(json.dumps({"seconds": 5.0, "conditions": HERE, "reason": "moved"}))
    cost = retrain_cost(refs, ORIGINAL, 100, HERE, _Store(tmp_path / "retimed_retrain.json"))
    assert cost.seconds == 5.0 and cost.timing_note is None and "moved" in cost.measured_on


def test_the_original_stands_in_scaled_when_it_was_timed_here(tmp_path):
    refs = [meta("retrain", 99.0, HERE, compute=None)]  # an ensemble, from before compute was counted
    cost = retrain_cost(refs, ORIGINAL, 100, THERE, _Store(tmp_path / "none.json"))
    assert cost.seconds == pytest.approx(20.0) and cost.compute == pytest.approx(200.0) and cost.steps == pytest.approx(5.0)


def test_records_without_conditions_match_each_other(tmp_path):
    refs = [meta("retrain", 2.0, None, compute=None, timed_alone=True)]
    cost = retrain_cost(refs, meta("original", 1.0, None, compute=None, train_examples=100), 100, None,
                        _Store(tmp_path / "none.json"))
    assert cost.seconds == 2.0 and cost.compute is None
