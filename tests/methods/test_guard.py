"""The utility guard: a run that keeps its accuracy is untouched, one that loses it is brought back
within the tolerance (or marked), and everything the guard does is counted in the run's compute."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unlearnkit.engine.compute import FORWARD, count_compute
from unlearnkit.engine.train import accuracy, train_model
from unlearnkit.errors import InputError
from unlearnkit.methods import clone, method_config, run_method
from unlearnkit.methods.guard import GuardConfig, GuardOutcome, guard_point, run_guarded
from unlearnkit.metrics.efficiency import retrain_compute

from conftest import TINY_TRAIN, tiny_setting

# Kernels transposed, then one epoch at a learning rate too small to repair them: the tiny model
# loses far more than 2 points of retain accuracy.
DAMAGING = {"epochs": 1, "lr": 1e-6}


@pytest.fixture(scope="module")
def fitted():
    """(an original that fits the tiny retain set, the tiny UnlearnData): the shared tiny original
    barely fits it, and a guard has nothing to keep there."""
    setting = tiny_setting()
    recipe = dataclasses.replace(TINY_TRAIN, epochs=40, lr=1e-2, keep_best=False)
    return train_model(setting.spec, setting.sets.train, None, recipe, seed=0).model, setting.unlearn_data


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def probe_cost(data, cfg: GuardConfig) -> float:
    return FORWARD * (min(cfg.retain_probe, len(data.retain)) + min(cfg.val_probe, len(data.val)))


def test_a_run_within_the_tolerance_is_the_unguarded_run_plus_two_probe_evaluations(fitted):
    original, data = fitted
    cfg = method_config("finetune", {"lr": 1e-4})
    guard = GuardConfig(tolerance=0.1)  # the tiny validation split has 16 examples: one is 6 points
    plain = run_method("finetune", original, data, cfg, seed=3)
    guarded = run_method("finetune", original, data, cfg, seed=3, guard=guard)
    g = guarded.guard
    assert plain.guard is None
    assert g.passed and g.chosen == "final" and g.blend is None and g.points == 1
    assert same_weights(plain.model, guarded.model)  # the guard only looks: same seed, same model
    assert g.evaluated == 2 and g.compute == 2 * probe_cost(data, guard)
    assert guarded.cost.compute == plain.cost.compute + g.compute


def test_a_damaging_run_is_blended_back_within_the_tolerance(fitted):
    original, data = fitted
    cfg = method_config("transposed", DAMAGING)
    # The tiny sets are smaller than the probes: the probes are all of R and all of the validation split.
    guard = GuardConfig(tolerance=0.07)
    plain = run_method("transposed", original, data, cfg, seed=0)
    before = {s: accuracy(original, getattr(data, s)) for s in ("retain", "val")}
    assert accuracy(plain.model, data.retain) < before["retain"] - 0.1  # the method alone loses it
    guarded = run_method("transposed", original, data, cfg, seed=0, guard=guard)
    g = guarded.guard
    assert g.passed and g.chosen == "blend" and 0 < g.blend < 1
    for split in ("retain", "val"):
        assert accuracy(guarded.model, getattr(data, split)) >= before[split] - guard.tolerance
    assert not same_weights(guarded.model, original)  # never the untouched original
    assert g.evaluated <= 2 + guard.repair_evals + 1  # original, final, its one check point, the bisection
    assert guarded.cost.compute == plain.cost.compute + g.compute


def test_without_repair_a_damaging_run_is_marked_failing(fitted):
    original, data = fitted
    guarded = run_method("transposed", original, data, method_config("transposed", DAMAGING), seed=0,
                         guard=GuardConfig(repair=False))
    g = guarded.guard
    assert not g.passed and g.chosen in ("final", "point")
    assert g.retain < g.original_retain - g.tolerance
    assert "FAILED" in g.summary()


def test_the_latest_passing_check_point_is_kept(fitted):
    """Three phases keep the model; a last one wrecks it: the guard returns phase 2's state."""
    original, data = fitted
    states = []

    def method():
        student = clone(original)
        for phase in range(3):
            with torch.no_grad():
                for p in student.parameters():
                    p.mul_(1 + 1e-4 * (phase + 1))
            guard_point(student)
            states.append({k: v.clone() for k, v in student.state_dict().items()})
        with torch.no_grad():
            for p in student.parameters():
                p.zero_()
        return student

    with count_compute():
        model, outcome, stopped = run_guarded(method, original, data, GuardConfig(repair=False), seed=0,
                                              stopped=lambda: None)
    assert not stopped and outcome.passed and outcome.chosen == "point" and outcome.chosen_point == 2
    assert outcome.points == 3 and outcome.evaluated == 3  # original, final, point 2
    assert all(torch.equal(v, states[2][k]) for k, v in model.state_dict().items())


def test_guard_point_is_a_no_op_without_a_guard(fitted):
    original, _ = fitted
    with count_compute() as counted:
        guard_point(original)
    assert counted.total == 0


def test_a_budget_caps_the_method_and_the_guard_together(fitted):
    original, data = fitted
    cap = 0.5 * retrain_compute(len(data.retain), len(data.val), data.train_config)
    cfg = method_config("finetune", {"epochs": 20})
    res = run_method("finetune", original, data, cfg, seed=0, max_compute=cap, guard=GuardConfig())
    assert res.stopped_by_budget
    assert res.cost.compute <= cap
    assert res.guard.evaluated >= 2  # the method was stopped with room left to check its model


def test_an_outcome_round_trips_through_json(fitted):
    original, data = fitted
    res = run_method("finetune", original, data, method_config("finetune", {"lr": 1e-4}), seed=0, guard=GuardConfig())
    assert GuardOutcome.from_dict(res.guard.to_dict()) == res.guard
    with pytest.raises(InputError, match="guard outcome"):
        GuardOutcome.from_dict({"tolerance": 0.02})


@pytest.mark.parametrize("bad, match", [({"tolerance": -0.1}, "tolerance"), ({"tolerance": 2.0}, "tolerance"),
                                        ({"retain_probe": 0}, "retain_probe"), ({"val_probe": -1}, "val_probe"),
                                        ({"repair_evals": 0}, "repair_evals")])
def test_bad_guard_settings_are_refused(bad, match):
    with pytest.raises(InputError, match=match):
        GuardConfig(**bad)
    with pytest.raises(InputError, match="unknown field 'tol'"):
        GuardConfig.from_dict({"tol": 0.1})


def test_a_probe_loss_at_the_tolerance_passes_only_without_a_margin():
    from unlearnkit.methods.guard import _shortfall

    before = torch.ones(500, dtype=torch.bool)
    after = before.clone()
    after[:10] = False  # 10 of 500 lost: exactly 2 points on the probe
    tol = (0.02, 0.02)
    assert _shortfall((after, None), (before, None), tol, margin=0.0) <= 1e-9
    # One standard error of the paired difference (sqrt(0.02 * 0.98 / 500) = 0.63 points) on top.
    short = _shortfall((after, None), (before, None), tol, margin=1.0)
    assert short == pytest.approx(float((before.float() - after.float()).std()) / 500 ** 0.5, rel=1e-6)
    # Examples the original got wrong and the model gets right offset those it lost.
    base = before.clone()
    base[10:20] = False
    swapped = after.clone()
    swapped[10:20] = True
    assert _shortfall((swapped, None), (base, None), tol, margin=1.0) < 0


def test_the_margin_is_checked():
    with pytest.raises(InputError, match="guard margin -1"):
        GuardConfig(margin=-1)
