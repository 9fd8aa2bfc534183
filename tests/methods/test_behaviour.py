"""Behaviour on the built-in dataset: strong methods move the forget set towards a retrain's.

A method registered with ``strong=True`` must, with its preset for synthetic/small_cnn and seed 0,
close at least a quarter of the gap between the original's and a retrained model's forget-set
accuracy, move the forget set's mean logit-scaled confidence the same way, and keep retain accuracy
within 5 points of the original's.
"""

from __future__ import annotations

import pytest
import torch

from unlearnkit.data.splits import retain_indices, select_forget
from unlearnkit.data.synthetic import SyntheticConfig, load_synthetic
from unlearnkit.engine.tensors import tensor_set, train_stats
from unlearnkit.engine.train import accuracy, default_recipe, predict, resolve_runtime, train_model
from unlearnkit.methods import METHODS, make_unlearn_data, run_method
from unlearnkit.metrics import logit_scaled_confidence
from unlearnkit.models import ModelSpec
from unlearnkit.runs import resolve_method_config

pytestmark = pytest.mark.slow
STRONG = [e.name for e in METHODS if e.meta.get("strong")]


@pytest.fixture(scope="module")
def setting():
    ds = load_synthetic(SyntheticConfig())
    forget = select_forget(ds, "identity_skewed:0.05")
    spec = ModelSpec("small_cnn", ds.num_classes, 3, 32)
    cfg = default_recipe("small_cnn")
    stats = train_stats(ds)
    val = tensor_set(ds, ds.indices("val"), stats=stats)
    original = train_model(spec, tensor_set(ds, ds.indices("train"), stats=stats), val, cfg, seed=0).model
    retrained = train_model(spec, tensor_set(ds, retain_indices(ds, forget), stats=stats), val, cfg, seed=1).model
    data = make_unlearn_data(ds, forget, spec, cfg, resolve_runtime(cfg))
    return original, retrained, data, ds


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
    original, retrained, data, ds = setting
    cfg, _ = resolve_method_config(name, "auto", ds.name, "small_cnn", {})
    before = {k: v.clone() for k, v in original.state_dict().items()}
    result = run_method(name, original, data, cfg, seed=0)
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    o, r, u = summary(original, data), summary(retrained, data), summary(result.model, data)
    assert abs(u["forget"] - r["forget"]) <= 0.75 * abs(o["forget"] - r["forget"]), (o, r, u)
    assert abs(u["confidence"] - r["confidence"]) < abs(o["confidence"] - r["confidence"]), (o, r, u)
    assert u["retain"] >= o["retain"] - 0.05, (o, r, u)
