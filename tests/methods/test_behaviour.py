"""Behaviour on the built-in dataset: strong methods move the forget set towards a retrain's.

A method registered with ``strong=True`` must, with its ``auto`` defaults for small_cnn
(methods/defaults.py) and seed 0, close at least a quarter of the gap between the original's and a
retrained model's forget-set accuracy, move the forget set's mean logit-scaled confidence the same
way, and keep retain accuracy within 5 points of the original's.
"""

from __future__ import annotations

import pytest
import torch

from unlearnkit.engine.train import accuracy, predict, train_model
from unlearnkit.methods import METHODS, run_method
from unlearnkit.metrics import logit_scaled_confidence
from unlearnkit.runner.jobs import resolve_method_config
from unlearnkit.runner.setting import make_setting_config, resolve_setting

pytestmark = pytest.mark.slow
STRONG = [e.name for e in METHODS if e.meta.get("strong")]


@pytest.fixture(scope="module")
def setting():
    setting = resolve_setting(make_setting_config(forget="identity_skewed:0.05"))
    sets, spec, cfg = setting.sets, setting.spec, setting.recipe
    original = train_model(spec, sets.train, sets.val, cfg, seed=0).model
    retrained = train_model(spec, sets.retain, sets.val, cfg, seed=1).model
    return original, retrained, setting.unlearn_data, setting


def summary(model, data) -> dict[str, float]:
    logits = predict(model, data.forget)
    conf = logit_scaled_confidence(logits.numpy(), data.forget.y.numpy())
    return {"forget": accuracy(model, data.forget), "retain": accuracy(model, data.retain), "confidence": float(conf.mean())}


def test_the_setting_separates_original_from_retrain(setting):
    original, retrained, data, _ = setting
    o, r = summary(original, data), summary(retrained, data)
    assert o["forget"] > r["forget"] + 0.15 and o["confidence"] > r["confidence"] + 1.0


@pytest.mark.parametrize("name", STRONG)
def test_strong_method_moves_towards_retrain(setting, name):
    original, retrained, data, resolved = setting
    cfg, _ = resolve_method_config(name, "auto", resolved.config)
    before = {k: v.clone() for k, v in original.state_dict().items()}
    result = run_method(name, original, data, cfg, seed=0)
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    o, r, u = summary(original, data), summary(retrained, data), summary(result.model, data)
    assert abs(u["forget"] - r["forget"]) <= 0.75 * abs(o["forget"] - r["forget"]), (o, r, u)
    assert abs(u["confidence"] - r["confidence"]) < abs(o["confidence"] - r["confidence"]), (o, r, u)
    assert u["retain"] >= o["retain"] - 0.05, (o, r, u)
