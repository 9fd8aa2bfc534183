"""A compute budget: methods with phases plan them to fit, everything they run counts, and no budget changes nothing."""

from __future__ import annotations

import pytest
import torch

import unlearnkit.methods.scramble_relearn as scramble_module
from unlearnkit.methods import method_config, run_method
from unlearnkit.methods.fisher import fisher_compute
from unlearnkit.metrics.efficiency import retrain_compute

BUDGET = 0.2
# scramble_relearn with batches small enough that the tiny setting's 0.2 of a retrain buys some steps.
SMALL_STEPS = {"budget": 0.5, "batch_size": 8, "level_batch_size": 4}


@pytest.fixture(scope="module")
def retrain(tiny_original):
    _, data = tiny_original
    return retrain_compute(len(data.retain), len(data.val), data.train_config)


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_fisher_counts_its_per_example_gradients_and_predictions(tiny_original):
    original, data = tiny_original
    res = run_method("fisher", original, data, method_config("fisher"), seed=0)
    # every retain example: one prediction, then a forward and backward pass per class under vmap
    assert res.cost.compute == len(data.retain) * (1 + 3 * data.num_classes) == fisher_compute(len(data.retain), data.num_classes)
    assert res.cost.steps == 0


@pytest.mark.parametrize("name, options", [("fisher", {}), ("ssd", {}), ("scramble_relearn", {}),
                                           ("scramble_relearn", SMALL_STEPS)])
def test_methods_with_phases_fit_a_fifth_of_a_retrain_without_being_stopped(tiny_original, retrain, name, options):
    original, data = tiny_original
    cfg = method_config(name, options)
    free = run_method(name, original, data, cfg, seed=0)
    assert free.cost.compute > BUDGET * retrain  # the budget binds
    capped = run_method(name, original, data, cfg, seed=0, max_compute=BUDGET * retrain)
    assert capped.cost.compute <= BUDGET * retrain
    assert not capped.stopped_by_budget  # it planned its phases to the budget instead of being cut
    assert torch.isfinite(capped.model(data.retain.inputs(slice(0, 4)))).all()


def test_fisher_and_ssd_estimate_on_a_subsample_that_fits(tiny_original, retrain):
    original, data = tiny_original
    cap = BUDGET * retrain
    res = run_method("fisher", original, data, method_config("fisher"), seed=0, max_compute=cap)
    assert res.cost.compute == fisher_compute(int(cap // fisher_compute(1, data.num_classes)), data.num_classes)
    res = run_method("ssd", original, data, method_config("ssd"), seed=0, max_compute=cap)
    assert cap - 3 < res.cost.compute <= cap  # I_S and I_D on as many examples as fit, 3 passes each


def test_scramble_relearn_still_calibrates_and_relearns_under_the_budget(tiny_original, retrain, monkeypatch):
    original, data = tiny_original
    temperatures = []
    real = scramble_module.calibrate

    def observed(*args, **kwargs):
        temperatures.append(real(*args, **kwargs))
        return temperatures[-1]

    monkeypatch.setattr(scramble_module, "calibrate", observed)
    res = run_method("scramble_relearn", original, data, method_config("scramble_relearn", SMALL_STEPS), seed=0,
                     max_compute=BUDGET * retrain)
    assert len(temperatures) == 1 and temperatures[0] != pytest.approx(1.0)
    assert res.cost.steps > 0 and res.cost.compute <= BUDGET * retrain


@pytest.mark.parametrize("name, options", [("fisher", {}), ("ssd", {}), ("scramble_relearn", SMALL_STEPS)])
def test_a_budget_that_fits_changes_nothing(tiny_original, name, options):
    original, data = tiny_original
    cfg = method_config(name, options)
    free = run_method(name, original, data, cfg, seed=1)
    roomy = run_method(name, original, data, cfg, seed=1, max_compute=10 * free.cost.compute)
    assert same_weights(free.model, roomy.model) and roomy.cost.compute == free.cost.compute


def test_a_method_without_a_plan_is_stopped_at_the_cap_with_the_model_it_has(tiny_original, retrain):
    original, data = tiny_original
    cfg = method_config("finetune")
    free = run_method("finetune", original, data, cfg, seed=0)
    cap = 0.4 * retrain  # room for the first of finetune's two steps on the tiny setting, not the second
    assert free.cost.compute > cap
    res = run_method("finetune", original, data, cfg, seed=0, max_compute=cap)
    assert res.stopped_by_budget and 0 < res.cost.steps < free.cost.steps
    assert 0 < res.cost.compute <= cap  # stopped before the step that would pass the cap, not after it
