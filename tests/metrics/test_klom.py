"""KLoM: agreement with the reference's binning written out literally, oracle cases, a pinned value."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from unlearnkit.errors import InputError
from unlearnkit.metrics import klom, logit_scaled_confidence, margins


def ref_klom_example(p_arr, q_arr, bins=20, floor=1e-5, clip=100.0):
    """One example as the reference computes it: np.digitize over 21 shared edges, scipy's entropy."""
    p_arr, q_arr = np.clip(p_arr, -clip, clip), np.clip(q_arr, -clip, clip)
    lo, hi = min(p_arr.min(), q_arr.min()), max(p_arr.max(), q_arr.max())
    if lo >= hi:
        hi = lo + 1
    edges = np.linspace(lo, hi, bins + 1)
    p_idx, q_idx = np.digitize(p_arr, edges), np.digitize(q_arr, edges)
    p_counts = np.array([np.sum(p_idx == i) for i in range(1, bins + 1)])
    q_counts = np.array([np.sum(q_idx == i) for i in range(1, bins + 1)])
    p = p_counts / p_counts.sum() if p_counts.sum() > 0 else np.zeros(bins)
    q = q_counts / q_counts.sum() if q_counts.sum() > 0 else np.zeros(bins)
    q = np.where(p > 0, np.maximum(q, floor), q)
    return stats.entropy(pk=p, qk=q)


def test_klom_equals_the_reference_binning_exactly():
    rng = np.random.default_rng(0)
    for case in range(24):
        n_u, n_r, e = int(rng.integers(2, 30)), int(rng.integers(2, 30)), int(rng.integers(1, 12))
        u = rng.normal(size=(n_u, e)) * rng.uniform(0.1, 60) + rng.uniform(-80, 80)
        r = rng.normal(size=(n_r, e)) * rng.uniform(0.1, 60) + rng.uniform(-80, 80)
        if case % 3 == 0:  # ties, values on bin edges
            u, r = np.round(u / 5) * 5, np.round(r / 5) * 5
        if case % 4 == 0 and n_u == n_r:
            r[:, 0] = u[:, 0]
        result = klom(u, r)
        expected = np.array([ref_klom_example(u[:, j], r[:, j]) for j in range(e)])
        np.testing.assert_array_equal(result.per_example, expected)
        assert result.p95 == np.percentile(expected, 95)
        assert result.n_repaired == 0


def test_identical_samples_give_zero():
    x = np.random.default_rng(1).normal(size=(20, 50)) * 3
    result = klom(x, x.copy())
    np.testing.assert_array_equal(result.per_example, 0.0)
    assert result.p95 == 0.0
    constant = np.full((8, 3), 2.5)
    assert klom(constant, constant).p95 == 0.0  # an empty range: one bin of width 1


def test_separated_samples_give_a_large_value():
    rng = np.random.default_rng(2)
    u = rng.normal(size=(50, 40))
    result = klom(u, rng.normal(size=(50, 40)) + 30)
    # Every unlearned bin has no retrained mass: about log(1 / floor) = 11.5 less the entropy of p.
    assert (result.per_example > 8).all()
    same = klom(u, rng.normal(size=(50, 40)))
    assert result.p95 > 5 * same.p95


def test_klom_grows_with_the_shift():
    rng = np.random.default_rng(3)
    base_u, base_r = rng.normal(size=(100, 200)), rng.normal(size=(100, 200))
    values = [klom(base_u + shift, base_r).p95 for shift in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert values == sorted(values) and values[-1] > 3 * values[0]


def test_pinned_value_on_a_tiny_input():
    # Combined range [0, 4]: 20 bins of width 0.2. Unlearned 0.0, 0.5, 0.5, 3.9 land in bins 1, 3,
    # 3, 20: p = (1/4, 1/2, 1/4). Retrained 0.1, 0.5, 3.1 land in bins 1, 3, 16, and 4.0 (the
    # combined maximum) lands past the last bin and is left out: q = 1/3 each. Bin 20 has no
    # retrained mass: floored at 1e-5, and q renormalised by Z = 1 + 1e-5.
    u = np.array([0.0, 0.5, 0.5, 3.9])[:, None]
    r = np.array([0.1, 0.5, 3.1, 4.0])[:, None]
    z = 1 + 1e-5
    expected = math.log(z) + 0.25 * math.log(0.75) + 0.5 * math.log(1.5) + 0.25 * math.log(25_000)
    assert klom(u, r).per_example[0] == pytest.approx(expected, rel=1e-12)
    assert klom(u, r).per_example[0] == pytest.approx(2.662479811853722, rel=1e-12)


def test_where_the_reference_gives_nan_the_maximum_counts_in_the_last_bin():
    # Every unlearned value at the combined maximum: the reference's histogram of them is empty.
    u = np.full((4, 2), 5.0)
    r = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 0.0]])
    with np.errstate(invalid="ignore"):
        assert math.isnan(ref_klom_example(u[:, 0], r[:, 0]))
    result = klom(u, r)
    assert result.n_repaired == 2
    # Column 0: p all in bin 20, retrained has none there: log(Z / 1e-5), Z = 1 + 1e-5.
    assert result.per_example[0] == pytest.approx(math.log((1 + 1e-5) / 1e-5), rel=1e-12)
    # Column 1: p all in bin 20, and 3 of the 4 retrained values with it.
    assert result.per_example[1] == pytest.approx(math.log(4 / 3), rel=1e-12)
    assert np.isfinite(result.p95)


def test_clipping_and_options():
    u = np.array([[150.0, -300.0], [120.0, -101.0], [-5.0, 0.0]])
    r = np.array([[100.0, -100.0], [100.0, -100.0], [-5.0, 0.0]])
    np.testing.assert_array_equal(klom(u, r).per_example, 0.0)  # both clip to the same samples
    assert klom(u, r, clip=200.0).p95 > 0
    x = np.random.default_rng(4).normal(size=(30, 20))
    coarse, fine = klom(x, x + 0.3, n_bins=5), klom(x, x + 0.3, n_bins=50)
    assert coarse.n_bins == 5 and fine.n_bins == 50 and coarse.p95 != fine.p95
    result = klom(x, x + 0.3)
    record = json.loads(json.dumps(result.to_dict()))  # JSON-ready, and carries every field of the result
    assert record.pop("per_example") == result.per_example.tolist() and len(result.per_example) == 20
    assert record == {"p95": result.p95, "n_unlearned": 30, "n_retrained": 30, "n_examples": 20, "n_bins": 20,
                      "clip": 100.0, "floor": 1e-5, "n_repaired": result.n_repaired}


@pytest.mark.parametrize(
    "u, r, kwargs, words",
    [
        (np.zeros(8), np.zeros(8), {}, "2-D"),
        (np.zeros((8, 3)), np.zeros((8, 4)), {}, "column"),
        (np.zeros((1, 3)), np.zeros((8, 3)), {}, "at least 2 models"),
        (np.zeros((8, 0)), np.zeros((8, 0)), {}, "E = 0"),
        (np.full((8, 3), np.nan), np.zeros((8, 3)), {}, "NaN"),
        (np.zeros((8, 3)), np.zeros((8, 3)), {"n_bins": 0}, "n_bins"),
        (np.zeros((8, 3)), np.zeros((8, 3)), {"clip": -1.0}, "clip"),
        (np.zeros((8, 3)), np.zeros((8, 3)), {"floor": 0.0}, "floor"),
    ],
)
def test_klom_bad_input(u, r, kwargs, words):
    with pytest.raises(InputError, match=words):
        klom(u, r, **kwargs)


def test_margins():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1000.0, 0.0, -5.0]], dtype=np.float32)
    labels = np.array([0, 2, 0])
    before = logits.copy()
    m = margins(logits, labels)
    np.testing.assert_array_equal(logits, before)
    assert m[0] == pytest.approx(2.0 - math.log(math.e + 1.0), rel=1e-12)
    assert m[1] == pytest.approx(-math.log(2.0), rel=1e-12)
    assert m[2] == pytest.approx(1000.0 - math.log(1.0 + math.exp(-5.0)), rel=1e-12)  # no saturation
    # The reference's formula on torch tensors, and the logit-scaled confidence away from saturation.
    rng = np.random.default_rng(5)
    z = rng.normal(size=(4, 6, 5)) * 3
    y = rng.integers(0, 5, 6)
    t = torch.from_numpy(z)
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(y), 5).bool().expand(4, -1, -1)
    reference = (t[one_hot].view(4, 6) - t.masked_fill(one_hot, -torch.inf).logsumexp(dim=-1)).numpy()
    np.testing.assert_allclose(margins(z, y), reference, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(margins(z, y), logit_scaled_confidence(z, y), rtol=1e-9, atol=1e-9)
    with pytest.raises(InputError):
        margins(logits, np.array([0, 3, 0]))
    with pytest.raises(InputError):
        margins(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(InputError):
        margins(np.array([1.0]), np.array(0))
