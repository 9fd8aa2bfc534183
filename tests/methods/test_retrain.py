"""The retrain method: the exact oracle, and the shortened retrain its ``fraction`` gives."""

from __future__ import annotations

import pytest

from unlearnkit.errors import InputError
from unlearnkit.methods import method_config, run_method


def test_fraction_shortens_the_recipe(tiny_original):
    original, data = tiny_original
    assert data.train_config.epochs == 2
    full = run_method("retrain", original, data, method_config("retrain", {}), seed=0)
    half = run_method("retrain", original, data, method_config("retrain", {"fraction": 0.5}), seed=0)
    # One of the recipe's two epochs: half the optimizer steps, from the same retain set.
    assert full.cost.steps > 0
    assert half.cost.steps * 2 == full.cost.steps


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_fraction_out_of_range_is_refused(fraction):
    with pytest.raises(InputError, match=r"retrain.fraction must be in \(0, 1\]"):
        method_config("retrain", {"fraction": fraction})
