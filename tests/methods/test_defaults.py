"""The swept method defaults: stated relative to the recipe, valid configs, and the sweep's record."""

import json
from pathlib import Path

import pytest

from unlearnkit.engine.train import TrainConfig, default_recipe
from unlearnkit.methods import METHODS, method_config
from unlearnkit.methods.defaults import TRANSFER, OfRecipe, describe, resolve_values
from unlearnkit.runner.jobs import resolve_method_config
from unlearnkit.runner.setting import make_setting_config

SWEEP = Path(__file__).parents[2] / "benchmarks" / "results" / "sweep_methods.json"


def test_relative_values_follow_the_recipe():
    recipe = TrainConfig(epochs=30, lr=2e-3)
    assert OfRecipe("epochs", 0.1).resolve(recipe) == 3 and OfRecipe("epochs", 0.001).resolve(recipe) == 1
    assert OfRecipe("lr", 5.0).resolve(recipe) == pytest.approx(1e-2)
    assert resolve_values({"epochs": OfRecipe("epochs", 0.5), "k": 2}, recipe) == {"epochs": 15, "k": 2}
    assert describe({"lr": OfRecipe("lr", 3.0)}) == "lr=3x recipe lr" and describe({}) == "reference defaults"


@pytest.mark.parametrize("family", sorted(TRANSFER))
def test_every_entry_is_a_valid_config_of_a_registered_method(family):
    for method, values in TRANSFER[family].items():
        assert method in METHODS.names()
        method_config(method, resolve_values(values, default_recipe(family)))


def test_auto_resolves_against_the_setting_recipe():
    family = "small_cnn"
    method, values = next(iter(TRANSFER[family].items()))
    for epochs in (10, 40):
        setting = make_setting_config(model=family, train_options={"epochs": epochs})
        cfg, used = resolve_method_config(method, "auto", setting)
        assert used == family
        assert all(getattr(cfg, k) == pytest.approx(v) for k, v in resolve_values(values, setting.train).items())
    none, used = resolve_method_config(method, None, setting)
    assert used is None and none == method_config(method)


def test_the_table_is_the_sweeps_choice():
    """TRANSFER["small_cnn"] holds exactly the candidates benchmarks/sweep_methods.py chose."""
    record = json.loads(SWEEP.read_text())
    chosen = {m: r["rows"][r["chosen"] + 1]["values"] for m, r in record["methods"].items() if r["chosen"] >= 0}
    assert {m: describe(v) for m, v in TRANSFER["small_cnn"].items()} == chosen


def test_an_unknown_preset_is_refused_by_name():
    from unlearnkit.errors import InputError

    with pytest.raises(InputError, match=r"--preset 'synthetic/small_cnn': expected auto .* or none"):
        resolve_method_config("finetune", "synthetic/small_cnn", make_setting_config())
