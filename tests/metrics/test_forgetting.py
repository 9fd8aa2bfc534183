"""The (ε, δ) forgetting-quality score: the spec's worked facts, hand-computed cases, and agreement
with slow, obviously-correct reference implementations written here from the spec."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from unlearnkit.errors import InputError
from unlearnkit.metrics import forgetting as fq
from unlearnkit.metrics import (
    EPSILON_CAP,
    ModelAccuracies,
    bootstrap_intervals,
    epsilon_bins,
    epsilon_points,
    final_score,
    forgetting_quality,
    logit_scaled_confidence,
)

DELTA = 1e-5


# --------------------------------------------------------------------------------------------------
# Reference implementations: the spec, literally, one example at a time.


def ref_attacks_eps(tp, fp, n, bounded=False):
    """Max ε over attacks with true-positive counts ``tp`` and false-positive counts ``fp`` (spec step 4).

    Point rates: FPR = fp / N, FNR = (N - tp) / N; perfect separation is +inf, exactly one zero
    rate discards the attack. Bounded: both rates are Clopper-Pearson upper bounds, never 0.
    """
    tp, fp = np.asarray(tp), np.asarray(fp)
    if bounded:
        k = np.arange(n + 1)
        upper = np.where(k == n, 1.0, stats.beta.ppf(0.95, k + 1, np.maximum(n - k, 1)))
        fpr, fnr = upper[fp], upper[n - tp]
        keep = np.ones(len(tp), dtype=bool)
    else:
        fpr, fnr = fp / n, (n - tp) / n
        if ((fpr == 0) & (fnr == 0)).any():
            return math.inf
        keep = (fpr > 0) & (fnr > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(  # fmax: a NaN term is ignored
            np.log(1 - DELTA - fpr) - np.log(fnr), np.log(1 - DELTA - fnr) - np.log(fpr)
        )
    eps = eps[keep & ~np.isnan(eps)]
    return max(0.0, float(eps.max())) if eps.size else 0.0


def ref_compat_example(pos, neg, bounded=False):
    """One example, the spec's steps 2-5 on the competition grids (numpy float64 linspace)."""
    n = len(pos)
    rp, rn = np.ptp(pos), np.ptp(neg)
    largest, smallest = max(rp, rn), min(rp, rn)
    if largest > 0 and smallest / largest < 0.01:
        return EPSILON_CAP, "peaky"
    everything = np.concatenate([pos, neg])
    m = int(np.ceil((everything.max() - everything.min()) * 100))
    thresholds = np.linspace(everything.min(), everything.max(), m)
    tp = (pos[:, None] >= thresholds).sum(0)
    fp = (neg[:, None] >= thresholds).sum(0)
    e_single = ref_attacks_eps(tp, fp, n, bounded)
    p, q = (neg, pos) if rp >= rn else (pos, neg)
    w = smallest
    lo, hi = p.min() + w - 2.0, p.max() + 2.0
    rights = np.linspace(lo, hi, int(np.ceil((hi - lo) * 100)))
    lefts = np.concatenate([np.linspace(t - w - 2.0, t - w + 2.0, 400) for t in rights])
    rights = np.repeat(rights, 400)
    inside = lambda x: ((lefts <= x[:, None]) & (x[:, None] <= rights)).sum(0)  # noqa: E731
    e_interval = ref_attacks_eps(inside(p), inside(q), n, bounded)
    eps = min(max(e_single, e_interval), EPSILON_CAP)
    winner = "none" if eps == 0 else ("threshold" if e_single >= e_interval else "interval")
    return eps, winner


def ref_grid(u, r, bounded=False):
    r_positive = np.median(r, 0) > np.median(u, 0)
    pos, neg = np.where(r_positive, r, u), np.where(r_positive, u, r)
    out = [ref_compat_example(pos[:, i], neg[:, i], bounded) for i in range(u.shape[1])]
    return np.array([o[0] for o in out]), [o[1] for o in out]


def ref_exact(u, r):
    """Every threshold and every interval with data-valued end points, both sides positive."""
    out = []
    for a, b in zip(u.T, r.T):
        n = len(a)
        ra, rb = np.ptp(a), np.ptp(b)
        if max(ra, rb) > 0 and min(ra, rb) / max(ra, rb) < 0.01:
            out.append(EPSILON_CAP)
            continue
        values = np.unique(np.concatenate([a, b]))
        lo, hi = [x.ravel() for x in np.meshgrid(values, values, indexing="ij")]
        best = 0.0
        for x, y in ((a, b), (b, a)):
            best = max(best, ref_attacks_eps((x >= values[:, None]).sum(1), (y >= values[:, None]).sum(1), n))
            inside = lambda s: ((lo <= s[:, None]) & (s[:, None] <= hi)).sum(0)  # noqa: E731
            best = max(best, ref_attacks_eps(inside(x), inside(y), n))
        out.append(min(best, EPSILON_CAP))
    return np.array(out)


def random_cases(seed: int, count: int):
    """Small inputs of several kinds: continuous, integer ties, grid-aligned, tiny ranges, offsets."""
    rng = np.random.default_rng(seed)
    kinds = [
        lambda n, e: (rng.normal(size=(n, e)), rng.normal(size=(n, e)) + rng.uniform(-1, 2)),
        lambda n, e: (rng.integers(-3, 4, (n, e)) * 1.0, rng.integers(-2, 5, (n, e)) * 1.0),
        lambda n, e: (np.round(rng.normal(size=(n, e)) * 50) / 100, np.round(rng.normal(size=(n, e)) * 50) / 100 + 0.01),
        lambda n, e: (rng.normal(size=(n, e)) * 1e-3, rng.normal(size=(n, e)) * 1e-3 + 5e-4),
        lambda n, e: (rng.normal(size=(n, e)) * 20, rng.normal(size=(n, e)) * 20 + 15),
        lambda n, e: (rng.integers(0, 2, (n, e)) * 1.0, rng.integers(0, 2, (n, e)) + 0.5),
        lambda n, e: (np.round(rng.normal(size=(n, e)) * 3, 2) + 1e9, np.round(rng.normal(size=(n, e)) * 3 + 1, 2) + 1e9),
    ]
    for i in range(count):
        n = int(rng.integers(8, 13))
        u, r = kinds[i % len(kinds)](n, 4)
        yield (r, u) if i % 2 else (u, r)


# --------------------------------------------------------------------------------------------------
# Agreement with the references


def test_compat_equals_reference_exactly():
    n_right = set()
    for u, r in random_cases(seed=1, count=14):
        result = forgetting_quality(u, r, mode="compat")
        expected, winners = ref_grid(u, r)
        np.testing.assert_array_equal(result.epsilons, expected)
        assert list(result.winner_names()) == winners
        pos = np.where(np.median(r, 0) > np.median(u, 0), r, u)
        neg = np.where(np.median(r, 0) > np.median(u, 0), u, r)
        peaky = np.where(np.ptp(pos, 0) < np.ptp(neg, 0), pos, neg)
        w = np.minimum(np.ptp(pos, 0), np.ptp(neg, 0))
        n_right |= set(np.ceil(((peaky.max(0) + 2.0) - ((peaky.min(0) + w) - 2.0)) * 100).astype(int))
    # Both lattice shapes of the interval grid (400 and 401 right thresholds) were exercised.
    assert {400, 401} <= n_right


def test_bounded_equals_reference_exactly():
    for u, r in random_cases(seed=2, count=7):
        expected, _ = ref_grid(u, r, bounded=True)
        np.testing.assert_array_equal(forgetting_quality(u, r, mode="bounded").epsilons, expected)


def test_exact_equals_brute_force():
    for u, r in random_cases(seed=3, count=14):
        np.testing.assert_array_equal(forgetting_quality(u, r, mode="exact").epsilons, ref_exact(u, r))


def test_int32_rank_table_path(monkeypatch):
    # Tables with more than 65536 distinct ε values use int32 ranks; force that path on small N.
    monkeypatch.setattr(fq, "_INT16_RANKS", 0)
    fq._rank_table.cache_clear()
    try:
        for u, r in random_cases(seed=4, count=4):
            for mode in ("compat", "exact"):
                expected = ref_grid(u, r)[0] if mode == "compat" else ref_exact(u, r)
                np.testing.assert_array_equal(forgetting_quality(u, r, mode=mode).epsilons, expected)
    finally:
        fq._rank_table.cache_clear()


# --------------------------------------------------------------------------------------------------
# The spec's worked facts


@pytest.mark.parametrize("mode", ["compat", "exact", "bounded"])
def test_identical_samples_score_zero_epsilon_and_one_point(mode):
    x = np.random.default_rng(0).normal(size=(16, 20))
    result = forgetting_quality(x, x.copy(), mode=mode)
    np.testing.assert_array_equal(result.epsilons, 0.0)
    np.testing.assert_array_equal(result.points, 1.0)
    assert result.forget_quality == 1.0
    assert set(result.winner_names()) == {"none"}


@pytest.mark.parametrize("mode", ["compat", "exact"])
def test_disjoint_samples_are_capped_and_score_nothing(mode):
    rng = np.random.default_rng(0)
    u = rng.normal(size=(16, 10))
    r = rng.normal(size=(16, 10)) + 20  # no overlap: perfect separation, ε = inf -> 50
    result = forgetting_quality(u, r, mode=mode)
    np.testing.assert_array_equal(result.epsilons, EPSILON_CAP)
    np.testing.assert_array_equal(result.points, 0.0)


def test_bounded_perfect_separation_is_the_clopper_pearson_limit():
    # Bounds are never 0, so perfect separation is finite: log((1 - δ - u) / u), u = 1 - 0.05^(1/N).
    n = 512
    rng = np.random.default_rng(0)
    u = rng.normal(size=(n, 3))
    result = forgetting_quality(u, u + 100, mode="bounded")
    limit = 1 - 0.05 ** (1 / n)
    np.testing.assert_allclose(result.epsilons, math.log((1 - DELTA - limit) / limit), rtol=1e-9)
    assert result.epsilons[0] == pytest.approx(5.14, abs=0.01)


@pytest.mark.parametrize("mode", ["compat", "exact", "bounded"])
@pytest.mark.parametrize("peaky_side", ["unlearned", "retrained"])
def test_ranges_100x_apart_trigger_the_peaky_rule(mode, peaky_side):
    rng = np.random.default_rng(1)
    wide = rng.normal(size=(12, 5))
    narrow = rng.normal(size=(12, 5)) * 0.001 + np.array([-3.0, 0.0, 0.2, 3.0, 10.0])  # any median
    u, r = (narrow, wide) if peaky_side == "unlearned" else (wide, narrow)
    result = forgetting_quality(u, r, mode=mode)
    np.testing.assert_array_equal(result.epsilons, EPSILON_CAP)
    assert set(result.winner_names()) == {"peaky"}


def test_bin_edges():
    np.testing.assert_array_equal(epsilon_bins(512), np.arange(15) * 0.5)  # 14 bins, last ends at 7
    np.testing.assert_array_equal(epsilon_bins(64), np.arange(11) * 0.5)  # ceil(ln 63) = 5: 10 bins
    np.testing.assert_array_equal(epsilon_bins(2), [0.0])  # ceil(ln 1) = 0: no bins at all
    with pytest.raises(InputError):
        epsilon_bins(1)


def test_points_per_bin():
    eps = [0.0, 0.49, 0.5, 1.2, 6.999, 7.0, 50.0]
    np.testing.assert_array_equal(epsilon_points(eps, 512), [1, 1, 0.5, 0.25, 2.0**-13, 0, 0])
    np.testing.assert_array_equal(epsilon_points([4.9, 5.0], 64), [2.0**-9, 0.0])


# --------------------------------------------------------------------------------------------------
# Small cases computed by hand (N = 10)


def test_hand_case_threshold_family():
    # unlearned 0..9, retrained 5..14: retrained has the larger median, so it is positive. The best
    # thresholds leave 1 positive below and 4 negatives above (t in (5, 6]) or 4 and 1 (t in
    # (8, 9]): FNR = 0.1, FPR = 0.4 -> ε = log(1 - δ - 0.4) - log(0.1). Cutting at 5 or 10 would
    # give a zero rate: discarded. The interval family (unlearned positive, equal ranges) ties.
    u = np.arange(10.0)[:, None]
    r = u + 5
    expected = math.log(1 - DELTA - 0.4) - math.log(0.1)
    for mode in ("compat", "exact"):
        result = forgetting_quality(u, r, mode=mode)
        assert result.epsilons[0] == pytest.approx(expected, rel=1e-12)
        assert result.points[0] == 2.0**-3  # 1.79 is in bin [1.5, 2)
    assert forgetting_quality(u, r).winner_names()[0] == "threshold"


def test_hand_case_interval_family():
    # retrained: 0.0, 0.1, ..., 0.9 (range 0.9), the peakier side; unlearned: four far below, one
    # inside the cluster at 0.45, five far above. An interval around the cluster that keeps 9 of
    # the 10 retrained values has exactly one unlearned value inside: (P, Q) = (9, 1), FPR = FNR =
    # 0.1, ε = log(1 - δ - 0.1) - log(0.1) = 2.197. Keeping all 10 has Q = 1 and P = N: discarded.
    # No single threshold does better than ε = 0: unlearned has the larger median.
    r = (np.arange(10) / 10)[:, None]
    u = np.array([-10, -9, -8, -7, 0.45, 6, 7, 8, 9, 10.0])[:, None]
    expected = math.log(1 - DELTA - 0.1) - math.log(0.1)
    for mode in ("compat", "exact"):
        result = forgetting_quality(u, r, mode=mode)
        assert result.epsilons[0] == pytest.approx(expected, rel=1e-12)
        assert result.winner_names()[0] == "interval"
        assert result.points[0] == 2.0**-4


def test_hand_case_interval_perfect_separation():
    # Without the value inside the cluster, [0, 0.9] holds every retrained value and no unlearned:
    # perfect separation by an interval (ε = inf -> 50), though no single threshold achieves it.
    r = (np.arange(10) / 10)[:, None]
    u = np.array([-10, -9, -8, -7, -6, 6, 7, 8, 9, 10.0])[:, None]
    result = forgetting_quality(u, r)
    assert result.epsilons[0] == EPSILON_CAP
    assert result.winner_names()[0] == "interval"


# --------------------------------------------------------------------------------------------------
# Exact mode: never below compat, and blind to strictly increasing transforms


def test_exact_is_never_below_compat():
    rng = np.random.default_rng(7)
    u = rng.normal(size=(12, 40))
    r = rng.normal(size=(12, 40)) * rng.uniform(0.5, 2, 40) + rng.uniform(-1, 1, 40)
    compat = forgetting_quality(u, r, mode="compat").epsilons
    exact = forgetting_quality(u, r, mode="exact").epsilons
    assert (exact >= compat).all()
    assert (exact > compat).any()  # the grid misses splits


def _peaky(u, r):
    ru, rr = np.ptp(u, 0), np.ptp(r, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.minimum(ru, rr) / np.maximum(ru, rr) < 0.01


TRANSFORMS = {
    "exp": np.exp,
    "cube": lambda x: x**3 + x,
    "arcsinh": lambda x: np.arcsinh(5 * x),
    "affine": lambda x: 3.7 * x - 11.0,
    "logistic": lambda x: 1 / (1 + np.exp(-2 * x)),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(8, 11),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
    transform=st.sampled_from(sorted(TRANSFORMS)),
)
def test_exact_is_unchanged_by_strictly_increasing_transforms(n, seed, ties, transform):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, 3))
    r = rng.normal(size=(n, 3)) * rng.uniform(0.5, 2) + rng.uniform(-1.5, 1.5)
    if ties:
        u, r = np.round(u * 2) / 2, np.round(r * 2) / 2
    f = TRANSFORMS[transform]
    fu, fr = f(u), f(r)
    # The peaky rule compares ranges, which a nonlinear transform changes: keep away from it.
    assume(not (_peaky(u, r) | _peaky(fu, fr)).any())
    before = forgetting_quality(u, r, mode="exact").epsilons
    after = forgetting_quality(fu, fr, mode="exact").epsilons
    np.testing.assert_array_equal(before, after)


# --------------------------------------------------------------------------------------------------
# Bounded mode: calibrated


@pytest.mark.parametrize("n", [32, 128, 512])
def test_bounded_scores_a_perfect_unlearner_near_one(n):
    rng = np.random.default_rng(n)
    u, r = rng.normal(size=(n, 60)), rng.normal(size=(n, 60))
    assert forgetting_quality(u, r, mode="bounded").forget_quality >= 0.95
    assert forgetting_quality(u, r, mode="compat").forget_quality <= 0.3  # the compat ceiling


def test_bounded_penalizes_a_one_sd_shift_at_n_512():
    rng = np.random.default_rng(11)
    u, r = rng.normal(size=(512, 60)), rng.normal(size=(512, 60)) + 1.0
    assert forgetting_quality(u, r, mode="bounded").forget_quality <= 0.2


# --------------------------------------------------------------------------------------------------
# Result object, statistic, final score, bootstrap


def test_result_histogram_and_dict():
    rng = np.random.default_rng(5)
    u, r = rng.normal(size=(16, 30)), rng.normal(size=(16, 30)) + 0.7
    r[:, :3] = rng.normal(size=(16, 3)) * 1e-4  # three peaky examples: ε = 50, the overflow bar
    result = forgetting_quality(u, r)
    bars = result.histogram()
    assert len(bars) == len(epsilon_bins(16))  # every bin plus the overflow bar
    assert sum(b.count for b in bars) == 30
    assert bars[-1].upper == EPSILON_CAP and bars[-1].points == 0.0 and bars[-1].count >= 3
    assert sum(b.count * b.points for b in bars) / 30 == pytest.approx(result.forget_quality)
    record = json.loads(json.dumps(result.to_dict()))
    assert record["n_models"] == 16 and len(record["epsilons"]) == 30
    assert sum(result.winner_counts().values()) == 30
    with pytest.raises(ValueError):
        result.epsilons[0] = 1.0  # results are read-only


@pytest.mark.parametrize(
    "u, r, words",
    [
        (np.zeros((16, 3)), np.zeros((16, 4)), "same N and the same E"),
        (np.zeros((5, 3)), np.zeros((5, 3)), "bin"),
        (np.zeros(16), np.zeros(16), "2-D"),
        (np.zeros((16, 0)), np.zeros((16, 0)), "E = 0"),
        (np.full((16, 3), np.nan), np.zeros((16, 3)), "NaN"),
        (np.zeros((16, 3)), np.full((16, 3), np.inf), "NaN or inf"),
        (np.zeros((16, 3)) + 1e13, np.zeros((16, 3)), "exact"),
    ],
)
def test_bad_input_raises_input_error(u, r, words):
    with pytest.raises(InputError, match=words):
        forgetting_quality(u, r)


def test_bad_mode_and_delta():
    x = np.zeros((16, 2))
    with pytest.raises(ValueError, match="mode"):
        forgetting_quality(x, x, mode="fast")
    with pytest.raises(ValueError, match="delta"):
        forgetting_quality(x, x, delta=1.5)


def test_logit_scaled_confidence():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1000.0, 0.0, -5.0]], dtype=np.float32)
    labels = np.array([0, 2, 0])
    before = logits.copy()
    conf = logit_scaled_confidence(logits, labels)
    np.testing.assert_array_equal(logits, before)  # input untouched
    p = np.exp(np.float64([2, 1, 0]))
    p /= p.sum()
    assert conf[0] == pytest.approx(math.log(p[0]) - math.log(p[1] + p[2]), rel=1e-12)
    assert conf[1] == pytest.approx(math.log(1 / 3) - math.log(2 / 3), rel=1e-12)
    assert conf[2] == pytest.approx(-math.log(1e-45), rel=1e-6)  # saturates, stays finite
    assert conf.dtype == np.float64
    # [N models, E examples, C] with per-example labels.
    many = np.random.default_rng(0).normal(size=(4, 5, 3))
    assert logit_scaled_confidence(many, np.arange(5) % 3).shape == (4, 5)
    with pytest.raises(InputError):
        logit_scaled_confidence(logits, np.array([0, 3, 0]))
    with pytest.raises(InputError):
        logit_scaled_confidence(np.array([[np.nan, 0.0]]), np.array([0]))


def test_final_score():
    assert final_score(0.5, 0.9, 0.8, 0.9, 0.8) == pytest.approx(0.5)
    assert final_score(0.5, [0.8, 1.0], [0.4], 0.9, 0.8) == pytest.approx(0.5 * 1.0 * 0.5)
    assert final_score(1.0, 1.0, 1.0, 0.5, 0.5) == pytest.approx(4.0)  # ratios are not capped
    with pytest.raises(InputError):
        final_score(0.5, 1.2, 0.8, 0.9, 0.8)
    with pytest.raises(InputError):
        final_score(0.5, 0.9, 0.8, 0.0, 0.8)


def test_bootstrap_is_seeded_and_replicates_do_not_depend_on_n_boot():
    rng = np.random.default_rng(3)
    u, r = rng.normal(size=(12, 8)), rng.normal(size=(12, 8)) + 0.5
    acc = ModelAccuracies(*(rng.uniform(0.7, 0.9, 12) for _ in range(4)))
    a = bootstrap_intervals(u, r, mode="exact", n_boot=6, seed=4, accuracies=acc)
    b = bootstrap_intervals(u, r, mode="exact", n_boot=6, seed=4, accuracies=acc)
    assert a == b
    assert a.forget_quality.estimate == forgetting_quality(u, r, mode="exact").forget_quality
    assert a.forget_quality.low <= a.forget_quality.replicate_mean <= a.forget_quality.high
    assert a.final_score is not None
    # Replicate 0 is the same whatever n_boot: with one replicate the interval is that value.
    first = bootstrap_intervals(u, r, mode="exact", n_boot=1, seed=4).forget_quality
    two = bootstrap_intervals(u, r, mode="exact", n_boot=2, seed=4).forget_quality
    assert first.low == first.high == first.replicate_mean
    second = 2 * two.replicate_mean - first.low
    assert two.low == pytest.approx(np.percentile([first.low, second], 2.5))
    assert bootstrap_intervals(u, r, mode="exact", n_boot=6, seed=5) != a
    with pytest.raises(InputError):
        bootstrap_intervals(u, r, n_boot=0)
    with pytest.raises(InputError, match="shape"):
        bootstrap_intervals(u, r, n_boot=2, accuracies=ModelAccuracies(*([0.8] * 4)))
