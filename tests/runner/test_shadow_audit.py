"""The shadow-based audit: a pool split in halves, approximate references, and `forget` reporting an estimate."""

from __future__ import annotations

import numpy as np
import pytest

from unlearnkit.engine.checkpoint import load_checkpoint
from unlearnkit.engine.train import predict
from unlearnkit.errors import InputError
from unlearnkit.methods import method_config
from unlearnkit.methods.shadow_matching import shadow_targets
from unlearnkit.report.audit import write_audit
from unlearnkit.results.pool import load_pool
from unlearnkit.runner.forget import make_forget_job, run_forget
from unlearnkit.runner.jobs import TrainJob, run_train
from unlearnkit.runner.prepare import PoolConfig, PrepareJob, prepare_pool
from unlearnkit.runner.setting import make_setting_config, resolve_setting
from unlearnkit.runner.shadow_audit import shadow_reference_confidences, split_pool

DATA = {"people": 40, "min_images": 3, "max_images": 5}
RECIPE = {"epochs": 3, "batch_size": 32, "precision": "fp32"}
PEOPLE = "0,5,6"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A checkpoint and, in the cache, a pool of 8 shadows of its recipe (each person out of 2, one per half)."""
    root = tmp_path_factory.mktemp("shadow_audit")
    setting = make_setting_config(dataset_options=DATA, forget=None, model="test_small_cnn", train_options=RECIPE)
    (ckpt,) = run_train(TrainJob(setting, (0,), out=str(root / "orig")), log=lambda _: None)
    cache = root / "cache"
    folder = prepare_pool(PrepareJob(setting, PoolConfig(shadows=8, leave_out=0.25), cache_dir=str(cache)),
                          log=lambda _: None)
    return ckpt, str(cache), folder


def test_a_pool_splits_into_two_complete_halves_and_a_small_one_is_refused(prepared):
    _, _, folder = prepared
    pool = load_pool(folder)
    first, second = split_pool(pool)
    assert (first.size, second.size) == (4, 4)
    left_out = pool.out.any(0)
    assert (first.out.sum(0)[left_out] == 1).all() and (second.out.sum(0)[left_out] == 1).all()
    np.testing.assert_array_equal(second.train_logits, pool.train_logits[4:])
    with pytest.raises(InputError, match="cannot be split"):
        split_pool(pool.select(range(3)))
    with pytest.raises(InputError, match="at least 2"):
        pool.select(range(7, 8))


def test_approximate_references_are_draws_around_the_shadows_targets(prepared):
    ckpt, _, folder = prepared
    setting = resolve_setting(make_setting_config(dataset_options=DATA, forget=f"identities:{PEOPLE}",
                                                  model="test_small_cnn", train_options=RECIPE))
    original, _, _ = load_checkpoint(ckpt, device="cpu")
    data = setting.unlearn_data
    val = predict(original, data.val, runtime=data.runtime)
    _, second = split_pool(load_pool(folder))
    draws = shadow_reference_confidences(second, val, data, 4000, seed=3)
    assert draws.shape == (4000, len(data.forget))
    np.testing.assert_array_equal(draws[:16], shadow_reference_confidences(second, val, data, 16, seed=3)[:16])
    assert not np.array_equal(draws[:16], shadow_reference_confidences(second, val, data, 16, seed=4))
    t = shadow_targets(second, val, data, method_config("shadow_matching", {"pool": str(folder)}))
    np.testing.assert_allclose(draws.mean(0), t.location.numpy(), atol=4 * float(t.spread.max()) / np.sqrt(4000))
    np.testing.assert_allclose(draws.std(0), t.spread.numpy(), rtol=0.1)


def _forget(ckpt, cache, out, **kw) -> dict:
    job = make_forget_job(str(ckpt), out=str(out), dataset_options=DATA, identities=PEOPLE, cache_dir=cache, **kw)
    outcome = run_forget(job, log=lambda _: None)
    return write_audit(job.out, outcome.audit)


def test_forget_with_a_pool_estimates_the_score_from_the_other_half_and_says_it_is_no_verification(prepared, tmp_path):
    ckpt, cache, folder = prepared
    audit = _forget(ckpt, cache, tmp_path / "a", method="shadow_matching", guard=None)
    # The prepared method took its targets from the first half; the audit read the second.
    assert audit["method"]["config"]["shadows"] == 4 and audit["job"]["pool"] == str(folder)
    shadows = audit["shadow_audit"]
    assert shadows["computed"] and shadows["independent"] and shadows["shadows"] == [4, 7]
    assert shadows["n"] == 16 and shadows["exact"] is None  # no retrained references in this cache
    assert 0 <= shadows["method"] <= 1 and 0 <= shadows["halves"] <= 1
    check = next(c for c in audit["checks"] if c["check"] == "eps_delta_shadows")
    assert check["passed"] is None  # an estimate is never a pass
    words = [t for t in audit["failed"] if t.startswith("Estimated without retrains")]
    assert len(words) == 1 and "not a verification" in words[0] and "shadows 4..7" in words[0]
    assert "Shadow-based estimate" in (tmp_path / "a" / "audit.html").read_text()
    # Given the whole pool, the method's targets come from the audit's shadows too, and the audit says so.
    audit = _forget(ckpt, cache, tmp_path / "b", method="shadow_matching", method_options={"shadows": 8}, guard=None)
    assert not audit["shadow_audit"]["independent"]
    assert any("not independent" in t for t in audit["failed"])


def test_forget_with_an_unprepared_method_still_uses_the_pool_and_without_one_says_why(prepared, tmp_path):
    ckpt, cache, _ = prepared
    audit = _forget(ckpt, cache, tmp_path / "a", method="finetune", method_options={"epochs": 1}, guard=None)
    assert audit["shadow_audit"]["computed"] and audit["shadow_audit"]["independent"]
    audit = _forget(ckpt, str(tmp_path / "empty"), tmp_path / "b", method="finetune", method_options={"epochs": 1},
                    guard=None)
    assert not audit["shadow_audit"]["computed"] and "unlearnkit prepare" in audit["shadow_audit"]["why_not"]
    assert not any(c["check"] == "eps_delta_shadows" for c in audit["checks"])
