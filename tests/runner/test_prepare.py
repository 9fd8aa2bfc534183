"""Preparing a pool of shadows: the structured leave-out design, resuming, partial pools, keys that ignore the forget set."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import TINY_DATA, TINY_TRAIN
from unlearnkit.config import to_dict
from unlearnkit.errors import InputError
from unlearnkit.results.leaderboard import read_leaderboard
from unlearnkit.results.pool import load_pool, shadow_path
from unlearnkit.runner.prepare import (PoolConfig, PrepareJob, find_pool, leave_out_design, parse_range, pool_dir, pool_fields,
                                       prepare_pool)
from unlearnkit.runner.setting import make_setting_config, resolve_setting


def tiny_job(tmp_path, forget: str | None = None, **pool) -> PrepareJob:
    setting = make_setting_config(dataset_options=TINY_DATA, forget=forget, model="test_small_cnn",
                                  train_options=to_dict(TINY_TRAIN))
    return PrepareJob(setting, PoolConfig(**{"shadows": 4, "leave_out": 0.25, **pool}), cache_dir=str(tmp_path))


def test_every_group_is_out_of_the_same_number_of_shadows_and_together():
    groups = np.repeat(np.arange(40), np.arange(40) % 5 + 1)
    groups[::7] = -1  # examples without a person are their own group
    cfg = PoolConfig(shadows=16, leave_out=0.25, seed=3)
    out = leave_out_design(groups, cfg)
    assert out.shape == (16, len(groups))
    assert cfg.outs_per_group == 4 and (out.sum(0) == 4).all()
    for g in range(40):
        members = out[:, groups == g]
        assert (members == members[:, :1]).all(), f"group {g} is split between shadows"
    load = out.sum(1)
    assert load.max() - load.min() <= 5  # balanced to within one group's size
    # the first two blocks (8 shadows) are a pool of their own: every group out of exactly 2 of them
    assert (out[:8].sum(0) == 2).all()
    assert np.array_equal(out, leave_out_design(groups, cfg))
    assert not np.array_equal(out, leave_out_design(groups, dataclasses.replace(cfg, seed=4)))


def test_a_class_pool_leaves_each_class_out_of_its_own_shadows():
    labels = np.array([0, 1, 2, 1, 0, 2, 2])
    cfg = PoolConfig(shadows=6, by_class=True)
    out = leave_out_design(np.full(len(labels), -1), cfg, labels, 3)
    assert np.array_equal(out, labels[None, :] == np.array([0, 1, 2, 0, 1, 2])[:, None])
    assert (out.sum(0) == 2).all()
    with pytest.raises(InputError, match="multiple of the dataset's 3 classes"):
        leave_out_design(np.full(len(labels), -1), PoolConfig(shadows=4, by_class=True), labels, 3)
    # a group pool's key and record are what they were before classes could be left out
    assert "by_class" not in pool_fields(PoolConfig()) and pool_fields(cfg)["by_class"] is True


def test_a_class_forget_finds_the_class_pool_and_any_other_the_group_pool(tmp_path):
    group = prepare_pool(tiny_job(tmp_path), log=lambda _: None)
    classes = resolve_setting(tiny_job(tmp_path).setting).dataset.num_classes
    by_class = prepare_pool(tiny_job(tmp_path, shadows=classes, by_class=True), log=lambda _: None)
    pool = load_pool(by_class)
    assert pool.record["outs_per_group"] == 1 and not pool.record["grouped"]
    assert pool.leave_out == "class" and load_pool(group).leave_out == 0.25
    assert find_pool(tiny_job(tmp_path, forget="identity:0.1").setting, str(tmp_path)) == group
    assert find_pool(tiny_job(tmp_path, forget="class:1").setting, str(tmp_path)) == by_class
    # each shadow never saw its class, and knows the others
    y = np.empty(len(pool.train_index), dtype=np.int64)
    setting = resolve_setting(tiny_job(tmp_path).setting)
    y[pool.rows(setting.sets.train.index.cpu().numpy())] = setting.sets.train.y.cpu().numpy()
    assert np.array_equal(pool.out, y[None, :] == np.arange(classes)[:, None])


def test_a_pool_is_trained_resumed_and_read(tmp_path):
    job = tiny_job(tmp_path)
    lines: list[str] = []
    folder = prepare_pool(dataclasses.replace(job, shadows=(0, 2)), log=lines.append)
    assert [shadow_path(folder, k).is_file() for k in range(4)] == [True, True, False, False]
    with pytest.raises(InputError, match="not trained yet"):
        load_pool(folder)
    assert load_pool(folder, shadows=2).size == 2
    before = shadow_path(folder, 0).read_bytes()
    lines.clear()
    assert prepare_pool(job, log=lines.append) == folder
    assert "2 of 4 shadows already" in lines[0] and shadow_path(folder, 0).read_bytes() == before
    pool = load_pool(folder)
    n_train = len(pool.train_index)
    assert pool.train_logits.shape[:2] == (4, n_train) and pool.val_logits.shape[:2] == (4, len(pool.val_index))
    assert np.isfinite(pool.train_logits).all()
    assert (pool.out.sum(0) == 1).all()
    cost = pool.cost()
    # each shadow trains on about 3/4 of D: the pool costs about 3 retrains on D
    assert 2.0 < cost["compute_ratio"] < 3.5


def test_the_pool_does_not_depend_on_the_forget_set(tmp_path):
    assert pool_dir(tiny_job(tmp_path)) == pool_dir(tiny_job(tmp_path, forget="identity:0.1"))
    assert pool_dir(tiny_job(tmp_path)) != pool_dir(tiny_job(tmp_path, leave_out=0.5))


def test_rows_refuse_examples_outside_the_pool(tmp_path):
    pool = load_pool(prepare_pool(tiny_job(tmp_path), log=lambda _: None))
    assert np.array_equal(pool.rows(pool.train_index[[3, 1]]), [3, 1])
    with pytest.raises(InputError, match="not among the pool's training examples"):
        pool.rows(np.array([10**9]))


@pytest.mark.parametrize("bad", [{"shadows": 1}, {"leave_out": 0.0}, {"leave_out": 0.9}, {"shadows": 10, "leave_out": 0.25}])
def test_bad_pool_configs_are_refused(bad):
    with pytest.raises(InputError):
        PoolConfig(**bad)


def test_ranges_and_missing_pools_are_checked(tmp_path):
    assert parse_range("2:5", 8) == (2, 5)
    for text in ("5", "a:b", "3:3", "0:9"):
        with pytest.raises(InputError, match="--only"):
            parse_range(text, 8)
    with pytest.raises(InputError, match="no shadow pool"):
        load_pool(tmp_path)


def test_the_cli_prepares_a_pool_that_a_bench_finds(tmp_path, capsys):
    from unlearnkit.cli import main
    from unlearnkit.methods import method_config
    from unlearnkit.runner.jobs import DEFAULT_METHODS, default_methods
    from unlearnkit.runner.prepare import find_pool, with_pools

    sets = [f"--set=dataset.{k}={v}" for k, v in TINY_DATA.items()] + [
        f"--set=train.{k}={v}" for k, v in to_dict(TINY_TRAIN).items() if k in ("epochs", "batch_size", "precision", "device")]
    job = tiny_job(tmp_path)
    assert find_pool(job.setting, str(tmp_path)) is None
    assert default_methods(job.setting, str(tmp_path)) == DEFAULT_METHODS
    with pytest.raises(InputError, match="unlearnkit prepare"):
        with_pools({"shadow_matching": method_config("shadow_matching")}, job.setting, str(tmp_path))
    assert main(["prepare", "--model", "test_small_cnn", "--shadows", "4", "--leave-out", "0.25",
                 "--cache-dir", str(tmp_path), *sets]) == 0
    assert "pool of 4 shadows" in capsys.readouterr().out
    folder = find_pool(job.setting, str(tmp_path))
    assert folder == pool_dir(job)
    assert default_methods(job.setting, str(tmp_path)) == DEFAULT_METHODS + ("shadow_matching",)  # a bench's default list
    filled = with_pools({"shadow_matching": method_config("shadow_matching"), "finetune": method_config("finetune")},
                        job.setting, str(tmp_path))
    assert filled["shadow_matching"].pool == str(folder) and filled["finetune"] == method_config("finetune")
    assert main(["prepare", "--only", "3:9", "--shadows", "4", "--leave-out", "0.25", "--cache-dir", str(tmp_path)]) == 2
    assert main(["prepare", "--shadows", "4", "--leave-out", "half", "--cache-dir", str(tmp_path)]) == 2
    assert "expected a share such as 0.125, or `class`" in capsys.readouterr().err
    # A bench over the same setting finds the pool, and its report carries the one-time cost and R requests.
    out = tmp_path / "bench"
    assert main(["bench", "--model", "test_small_cnn", *sets, "--forget", "identity:0.1", "--seeds", "8", "--no-ceiling",
                 "--methods", "finetune,shadow_matching", "--set", "method.finetune.epochs=1", "--workers", "1",
                 "--cache-dir", str(tmp_path), "--out", str(out)]) == 0
    board = read_leaderboard(out / "leaderboard.json")
    rows = {r.method: r for r in board.rows}
    pool = load_pool(folder).cost()
    assert rows["shadow_matching"].one_time_ratio == pytest.approx(pool["compute"] / board.retrain_cost.compute)
    assert rows["shadow_matching"].one_time_ratio > 1.0 and rows["finetune"].one_time_ratio is None
    report = (out / "report.md").read_text()
    assert "## The cost of answering R requests" in report and "| shadow_matching |" in report
