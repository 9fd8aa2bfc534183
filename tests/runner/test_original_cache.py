"""One cached original serves every forget set of a setting; its outputs are recorded per forget set."""

from __future__ import annotations

import numpy as np

from unlearnkit.io import write_bytes
from unlearnkit.results.store import BenchStore, load_run, run_meta
from unlearnkit.runner.jobs import make_bench_job
from unlearnkit.runner.setting import make_setting_config, resolve_setting
from unlearnkit.runner.units import Unit, execute

DATA = {"people": 30, "min_images": 3, "max_images": 5, "image_size": 16}
TRAIN = {"epochs": 1, "precision": "fp32", "batch_size": 32}


def test_a_second_forget_set_reuses_the_original_and_records_its_outputs_on_that_set(tmp_path):
    stores, records = [], []
    for seed in (0, 1):
        cfg = make_setting_config(dataset_options=DATA, forget="identity:0.1", forget_options={"seed": seed},
                                  model="test_small_cnn", train_options=TRAIN)
        setting = resolve_setting(cfg)
        job = make_bench_job(cfg, methods=("finetune",), seeds=8, out=str(tmp_path / f"b{seed}"), cache_dir=str(tmp_path / "cache"))
        store = BenchStore.for_setting(job.out, job.cache_dir, setting)
        execute(job, Unit("original"), [0], store, write_bytes)
        stores.append(store)
        records.append((setting, load_run(store.original_outputs)))
    assert stores[0].original_checkpoint == stores[1].original_checkpoint  # trained once
    assert stores[0].original_outputs != stores[1].original_outputs
    (s0, r0), (s1, r1) = records
    assert len(r0["forget_logits"]) == len(s0.forget.indices) and len(r1["forget_logits"]) == len(s1.forget.indices)
    assert not np.array_equal(s0.forget.indices, s1.forget.indices)
    # The second record is the same model's (its training metadata), measured on the second forget set.
    m0, m1 = run_meta(r0), run_meta(r1)
    assert m0["seed"] == m1["seed"] and m0["compute"] == m1["compute"] and m0["history"] == m1["history"]
    assert np.allclose(r0["test_logits"], r1["test_logits"], atol=1e-5)
