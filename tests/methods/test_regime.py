"""Regime-aware defaults (methods.regime): a method strikes less hard where the original does not
memorise, only on the fields it declares and the user did not set, and the measurement is counted."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from unlearnkit.engine.compute import FORWARD
from unlearnkit.methods import method_config, run_method
from unlearnkit.methods import regime as regime_module
from unlearnkit.methods.base import METHODS
from unlearnkit.methods.checks import guard_config
from unlearnkit.methods.guard import GuardConfig
from unlearnkit.methods.regime import UNDERFIT_SCALE, apply_regime, memorises
from unlearnkit.registry import Entry
from unlearnkit.runner.jobs import regime_fields

from conftest import make_tiny


def test_the_rule_reads_retain_against_validation_error():
    assert memorises(0.993, 0.322)          # the built-in dataset's default recipe: error 0.007 against 0.678
    assert memorises(1.0, 0.97)             # digits, small CNN: fits its training set exactly
    assert not memorises(0.924, 0.856)      # digits, 2-epoch MLP: error 0.076 against 0.144
    assert not memorises(0.729, 0.186)      # built-in dataset, 3 epochs: 0.271 against 0.814 (a third)
    assert memorises(0.8, None)             # nothing to compare with: the swept defaults stand


def test_only_the_declared_fields_the_user_did_not_set_are_scaled(monkeypatch):
    monkeypatch.setitem(UNDERFIT_SCALE, "seif", 0.5)
    cfg = method_config("seif")
    fields = regime_fields("seif", "auto", {"last_noise_std": 0.01})
    assert fields == ("first_noise_std",)
    scaled, found = apply_regime(cfg, "seif", fields, retain=0.9, val=0.85)
    assert not found.memorises and found.scale == 0.5 and found.scaled == {"first_noise_std": cfg.first_noise_std * 0.5}
    assert dataclasses.replace(scaled, first_noise_std=cfg.first_noise_std) == cfg
    same, kept = apply_regime(cfg, "seif", fields, retain=0.99, val=0.5)
    assert same is cfg and kept.memorises and kept.scaled == {}
    assert "does not memorise" in found.summary() and "first_noise_std" in found.summary()


def test_no_rule_under_the_reference_defaults_or_without_strength_fields():
    assert regime_fields("seif", None) is None  # --preset none: the published defaults stay as they are
    assert regime_fields("finetune", "auto") is None
    assert regime_fields("oleszko", "auto", {"prune_fraction": 0.2}) is None


def test_a_method_without_a_factor_keeps_its_strength(monkeypatch):
    monkeypatch.delitem(UNDERFIT_SCALE, "seif", raising=False)
    assert regime_fields("seif", "auto") is None  # nothing to change: no probe is paid for
    assert UNDERFIT_SCALE.get("salun", 1.0) == 1.0 and regime_fields("salun", "auto") is None
    cfg = method_config("seif")
    same, found = apply_regime(cfg, "seif", ("first_noise_std",), retain=0.6, val=0.5)
    assert same == cfg and found.scale == 1.0 and not found.memorises


def test_a_strength_field_must_be_a_float_field_of_the_config():
    entry = METHODS.entry("seif")
    with pytest.raises(ValueError, match="strength field 'epochs' is not a float field"):
        guard_config(Entry(name="odd", obj=entry.obj, config=entry.config, meta={"strength": ("epochs",)}))


def test_the_measurement_is_counted_and_the_result_records_what_ran(tiny_dataset, tiny_forget, monkeypatch):
    original, data = make_tiny(tiny_dataset, tiny_forget)
    cfg = method_config("oleszko", {"epochs": 1.0})
    plain = run_method("oleszko", original, data, cfg, seed=1)
    ruled = run_method("oleszko", original, data, cfg, seed=1, regime=("prune_fraction",))
    sizes = GuardConfig()
    probe = FORWARD * (min(sizes.retain_probe, len(data.retain)) + min(sizes.val_probe, len(data.val)))
    assert plain.regime is None and ruled.regime is not None
    assert ruled.cost.compute == pytest.approx(plain.cost.compute + probe)
    r = ruled.regime
    assert r.memorises == memorises(r.retain, r.val)
    expected = cfg.prune_fraction * (1.0 if r.memorises else UNDERFIT_SCALE.get("oleszko", 1.0))
    assert ruled.config["prune_fraction"] == pytest.approx(expected)
    # Whatever the tiny original's regime, forcing each side gives the other's config.
    monkeypatch.setattr(regime_module, "MEMORISES", 0.0 if r.memorises else 1e9)
    monkeypatch.setitem(UNDERFIT_SCALE, "oleszko", 0.5)
    flipped = run_method("oleszko", original, data, cfg, seed=1, regime=("prune_fraction",))
    assert flipped.regime.memorises is not r.memorises
    assert flipped.config["prune_fraction"] == pytest.approx(cfg.prune_fraction * (1.0 if flipped.regime.memorises else 0.5))
    # The side that memorises ran the config as given: the same model as the run without the rule.
    kept = flipped if flipped.regime.memorises else ruled
    assert all(torch.equal(a, b) for a, b in zip(kept.model.state_dict().values(), plain.model.state_dict().values()))


def test_a_guarded_run_evaluates_the_original_once_for_the_rule_and_the_guard(tiny_dataset, tiny_forget, monkeypatch):
    original, data = make_tiny(tiny_dataset, tiny_forget)
    cfg = method_config("oleszko", {"epochs": 1.0})
    monkeypatch.setattr(regime_module, "MEMORISES", 1e9)  # memorises: the rule leaves the config as it is
    guarded = run_method("oleszko", original, data, cfg, seed=1, guard=GuardConfig())
    both = run_method("oleszko", original, data, cfg, seed=1, guard=GuardConfig(), regime=("prune_fraction",))
    assert both.regime.memorises and both.cost.compute == pytest.approx(guarded.cost.compute)
    assert (both.regime.retain, both.regime.val) == (guarded.guard.original_retain, guarded.guard.original_val)
    assert both.guard.compute < guarded.guard.compute  # the original's evaluation is the rule's, counted once
