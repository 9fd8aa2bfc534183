"""shadow_matching: targets from the out-shadows alone, the level correction, and a run that moves S to them."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import TINY_DATA, TINY_TRAIN
from unlearnkit.config import to_dict
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.io import npz_bytes, read_npz, write_bytes
from unlearnkit.methods import method_config, run_method
from unlearnkit.methods.base import clone
from unlearnkit.methods.shadow_matching import confidence, fit_head, level_maps, seen_classes, shadow_targets
from unlearnkit.metrics.efficiency import retrain_compute
from unlearnkit.metrics.forgetting import logit_scaled_confidence
from unlearnkit.models.base import model_parts
from unlearnkit.results.pool import load_pool, shadow_path
from unlearnkit.runner.prepare import PoolConfig, PrepareJob, prepare_pool
from unlearnkit.runner.setting import make_setting_config


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory):
    setting = make_setting_config(dataset_options=TINY_DATA, forget=None, model="test_small_cnn",
                                  train_options=to_dict(TINY_TRAIN))
    folder = prepare_pool(PrepareJob(setting, PoolConfig(shadows=6, leave_out=0.34),
                                     cache_dir=str(tmp_path_factory.mktemp("cache"))), log=lambda _: None)
    return folder


def test_confidence_is_the_scores_statistic():
    logits = torch.randn(50, 7) * 4
    y = torch.randint(0, 7, (50,))
    expected = np.clip(logit_scaled_confidence(logits.numpy(), y.numpy()), -12, 12)
    np.testing.assert_allclose(confidence(logits, y).numpy(), expected, rtol=1e-6, atol=1e-6)


def test_level_maps_match_the_originals_moments_on_validation():
    shadow = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 3.0, 5.0, 7.0]], dtype=torch.float64)
    original = torch.tensor([2.0, 4.0, 6.0, 8.0], dtype=torch.float64)
    a, b = level_maps(shadow, original, "affine")
    mapped = a[:, None] + b[:, None] * shadow
    torch.testing.assert_close(mapped.mean(1), original.mean().expand(2))
    torch.testing.assert_close(mapped.std(1), original.std().expand(2))
    a, b = level_maps(shadow, original, "shift")
    torch.testing.assert_close(b, torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(a + shadow.mean(1), original.mean().expand(2))
    a, b = level_maps(shadow, original, "none")
    assert (a == 0).all() and (b == 1).all()


def test_a_shadow_that_left_a_class_out_is_mapped_on_the_classes_it_saw():
    original = torch.tensor([2.0, 4.0, 6.0, 8.0, 3.0, 5.0], dtype=torch.float64)
    shadow = original.clone()[None]
    shadow[0, 4:] = -9.0  # the last two validation examples are of the class it never saw
    seen = torch.tensor([[True] * 4 + [False] * 2])
    a, b = level_maps(shadow, original, "affine", seen)
    torch.testing.assert_close(a, torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(b, torch.ones(1, dtype=torch.float64))
    a, b = level_maps(shadow, original, "affine")  # fitted on all, the unseen class drags the map
    assert float(b[0]) < 0.8
    out = torch.tensor([[False, False, True, True], [False, True, False, False]])
    y_train = torch.tensor([0, 0, 1, 1])
    assert seen_classes(out, y_train, 3).tolist() == [[True, False, False], [True, True, False]]


def _logits_with(conf: np.ndarray, y: np.ndarray, classes: int) -> np.ndarray:
    """Logits whose logit-scaled confidence at y is ``conf`` (the other classes tied)."""
    logits = np.zeros((len(y), classes), dtype=np.float32)
    logits[np.arange(len(y)), y] = conf + np.log(classes - 1)
    return logits


def test_targets_come_from_the_shadows_that_never_saw_the_example_only(tiny_pool, tiny_original, tmp_path):
    original, data = tiny_original
    pool = load_pool(tiny_pool)
    rows = pool.rows(data.forget.index.cpu().numpy())
    y = np.full(len(pool.train_index), -1)
    y[pool.rows(data.retain.index.cpu().numpy())] = data.retain.y.cpu().numpy()
    y[rows] = data.forget.y.cpu().numpy()
    # out shadows say -2 - k/10; the shadows that saw the example say +9 (memorised): only the former may count
    fake = {k: _logits_with(np.where(out, -2.0 - k / 10, 9.0), y, data.num_classes) for k, out in enumerate(pool.out)}
    folder = tmp_path / "pool"
    folder.mkdir()
    for name in ("pool.json", "members.npz"):
        (folder / name).write_bytes((tiny_pool / name).read_bytes())
    for k in range(pool.size):
        f = read_npz(shadow_path(tiny_pool, k))
        write_bytes(shadow_path(folder, k), npz_bytes(train_logits=fake[k], val_logits=f["val_logits"], meta=f["meta"]))
    cfg = method_config("shadow_matching", {"pool": str(folder), "correction": "none", "shrink": 0.0})
    t = shadow_targets(load_pool(folder), predict(original, data.val, runtime=data.runtime), data, cfg)
    for i, r in enumerate(rows):
        outs = [-2.0 - k / 10 for k in range(pool.size) if pool.out[k, r]]
        assert int(t.outs[i]) == len(outs) == 2
        assert t.location[i] == pytest.approx(np.mean(outs), abs=1e-5)
        assert t.spread[i] == pytest.approx(np.std(outs, ddof=1), abs=1e-5)
    assert torch.allclose(t.others.sum(1), torch.ones(len(rows), dtype=torch.float64))
    # with shrinkage the spread moves towards the pool-wide one, here the same for every example
    shrunk = shadow_targets(load_pool(folder), predict(original, data.val, runtime=data.runtime), data,
                            dataclasses.replace(cfg, shrink=100.0))
    assert shrunk.spread.std() < t.spread.std()


def test_a_class_pool_gives_a_class_forget_its_shadows_confidences_unmapped(tiny_original, tmp_path):
    from conftest import tiny_setting

    original, _ = tiny_original
    setting = tiny_setting(forget="class:1")
    data, classes = setting.unlearn_data, setting.dataset.num_classes
    job = PrepareJob(setting.config, PoolConfig(shadows=classes, by_class=True), cache_dir=str(tmp_path / "cache"))
    source = prepare_pool(job, log=lambda _: None)
    pool = load_pool(source)
    y = np.empty(len(pool.train_index), dtype=np.int64)
    y[pool.rows(setting.sets.train.index.cpu().numpy())] = setting.sets.train.y.cpu().numpy()
    y_val = data.val.y.cpu().numpy()
    # shadow k sees its own classes at 3 + k/2 (so its map onto the original is far from the identity)
    # and the class it left out at -5 - k/10: a class forget's target is that value itself
    folder = tmp_path / "pool"
    folder.mkdir()
    for name in ("pool.json", "members.npz"):
        (folder / name).write_bytes((source / name).read_bytes())
    for k in range(pool.size):
        meta = read_npz(shadow_path(source, k))["meta"]
        train = _logits_with(np.where(y == k, -5.0 - k / 10, 3.0 + k / 2 + np.arange(len(y)) % 3), y, classes)
        val = _logits_with(np.where(y_val == k, -5.0 - k / 10, 3.0 + k / 2 + np.arange(len(y_val)) % 3), y_val, classes)
        write_bytes(shadow_path(folder, k), npz_bytes(train_logits=train, val_logits=val, meta=meta))
    cfg = method_config("shadow_matching", {"pool": str(folder)})
    t = shadow_targets(load_pool(folder), predict(original, data.val, runtime=data.runtime), data, cfg)
    assert (t.outs == 1).all()
    torch.testing.assert_close(t.location, torch.full_like(t.location, -5.1))


def test_a_run_moves_the_forget_set_to_the_shadows_level_within_its_budget(tiny_pool, tiny_original, tmp_path):
    original, data = tiny_original
    pool = load_pool(tiny_pool)
    y = np.zeros(len(pool.train_index), dtype=np.int64)
    y[pool.rows(data.retain.index.cpu().numpy())] = data.retain.y.cpu().numpy()
    y[pool.rows(data.forget.index.cpu().numpy())] = data.forget.y.cpu().numpy()
    folder = tmp_path / "pool"
    folder.mkdir()
    for name in ("pool.json", "members.npz"):
        (folder / name).write_bytes((tiny_pool / name).read_bytes())
    for k in range(pool.size):
        f = read_npz(shadow_path(tiny_pool, k))
        write_bytes(shadow_path(folder, k), npz_bytes(train_logits=_logits_with(np.full(len(y), -4.0), y, data.num_classes),
                                                      val_logits=f["val_logits"], meta=f["meta"]))
    cfg = method_config("shadow_matching", {"pool": str(folder), "correction": "none", "spread_scale": 0.0,
                                            "budget": 10.0, "forget_weight": 3.0,
                                            "batch_size": 8, "forget_batch_size": 8})
    before = confidence(predict(original, data.forget, runtime=data.runtime), data.forget.y.cpu())
    result = run_method("shadow_matching", original, data, cfg, seed=0)
    after = confidence(predict(result.model, data.forget, runtime=data.runtime), data.forget.y.cpu())
    assert (after + 4).abs().mean() < 0.5 * (before + 4).abs().mean()
    assert result.cost.compute <= cfg.budget * retrain_compute(len(data.retain), len(data.val), data.train_config)
    assert json.loads(json.dumps(result.config))["pool"] == str(folder)


def test_the_head_fit_moves_the_forget_set_to_its_goals_and_keeps_the_retain_predictions(tiny_original):
    original, data = tiny_original
    y = data.forget.y.cpu()
    student = clone(original)
    head = model_parts(student, data.spec).classifier
    trunk = {k: v.clone() for k, v in student.state_dict().items() if not k.startswith(_prefix(student, head))}
    goal = torch.full((len(y),), -2.0, dtype=torch.float64)
    before_f = confidence(predict(student, data.forget, runtime=data.runtime), y)
    before_r = predict(student, data.retain, runtime=data.runtime).argmax(1)
    cfg = method_config("shadow_matching", {"without_pool": True, "head_fit": 30.0})
    assert fit_head(student, data, y, goal, cfg, seed=0)
    after_f = confidence(predict(student, data.forget, runtime=data.runtime), y)
    after_r = predict(student, data.retain, runtime=data.runtime).argmax(1)
    assert (after_f - goal).abs().mean() < 0.5 * (before_f - goal).abs().mean()
    assert (after_r == before_r).double().mean() >= 0.8
    for k, v in student.state_dict().items():  # only the head moved
        if k in trunk:
            assert torch.equal(v, trunk[k]), k


def _prefix(model, module) -> str:
    return next(name for name, m in model.named_modules() if m is module) + "."


@pytest.mark.parametrize("budget", [0.09, 0.3])
def test_a_run_stays_within_its_budget_on_a_cheap_recipe(tiny_pool, tiny_original, budget):
    # The tiny recipe's retrain is cheap: the head fit's reading of 2,048 retain examples alone would
    # pass 9 % of it, so the head fit holds fewer (or none) and the fine-tune takes what is left.
    original, data = tiny_original
    cfg = method_config("shadow_matching", {"pool": str(tiny_pool), "budget": budget})
    result = run_method("shadow_matching", original, data, cfg, seed=0)
    assert result.cost.compute <= budget * retrain_compute(len(data.retain), len(data.val), data.train_config)


def test_without_a_pool_it_refuses_and_names_the_setting(tiny_original):
    original, data = tiny_original
    with pytest.raises(InputError, match="method.shadow_matching.pool"):
        run_method("shadow_matching", original, data, method_config("shadow_matching"), seed=0)
    with pytest.raises(InputError, match="correction"):
        method_config("shadow_matching", {"correction": "quantile"})
    with pytest.raises(InputError, match="no shadow pool"):
        run_method("shadow_matching", original, data, method_config("shadow_matching", {"pool": "/nonexistent"}), seed=0)
