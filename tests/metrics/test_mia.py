"""Membership-inference attacks: at chance on identical distributions, near-perfect on separated ones."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlearnkit.errors import InputError
from unlearnkit.metrics import SVC_FEATURES, loss_mia, mia_features, svc_mia, ulira


def softmax_outputs(rng, n, margin, classes=10):
    """Softmax outputs and labels whose true-class logit leads by about ``margin``."""
    logits = rng.normal(size=(n, classes))
    labels = rng.integers(0, classes, n)
    logits[np.arange(n), labels] += margin + rng.normal(size=n)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True), labels


# --------------------------------------------------------------------------------------------------
# loss_mia


def test_loss_mia_is_at_chance_on_identical_distributions():
    rng = np.random.default_rng(0)
    result = loss_mia(rng.exponential(size=600), rng.exponential(size=900), seed=1)
    assert result.chance == 0.5
    assert abs(result.accuracy - 0.5) < 0.06
    assert result.n_per_class == 600 and len(result.fold_accuracies) == 5


def test_loss_mia_is_near_perfect_on_separated_distributions():
    rng = np.random.default_rng(0)
    members = rng.exponential(size=300) * 0.01  # memorized: tiny losses
    assert loss_mia(members, rng.exponential(size=300) + 2.0).accuracy > 0.98


def test_loss_mia_is_seeded():
    rng = np.random.default_rng(2)
    a, b = rng.exponential(size=200), rng.exponential(size=300) * 1.2
    first = loss_mia(a, b, seed=3)
    np.random.seed(1)  # global RNG state must not leak into the attack
    np.random.random(17)
    again, other = loss_mia(a, b, seed=3), loss_mia(a, b, seed=4)
    np.testing.assert_array_equal(first.fold_accuracies, again.fold_accuracies)
    # The seed drives the balancing subsample and the folds: another seed draws other folds.
    assert not np.array_equal(first.fold_accuracies, other.fold_accuracies)


def test_loss_mia_bad_input():
    with pytest.raises(InputError):
        loss_mia(np.zeros((3, 2)), np.zeros(10))
    with pytest.raises(InputError):
        loss_mia(np.array([0.1, np.nan, 0.3, 0.2, 0.5]), np.zeros(10))
    with pytest.raises(InputError):
        loss_mia(np.zeros(3), np.zeros(10))  # fewer than n_splits


# --------------------------------------------------------------------------------------------------
# svc_mia


def test_mia_features():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    feats = mia_features(probs, np.array([0, 0]))
    np.testing.assert_array_equal(feats["correctness"][:, 0], [1.0, 0.0])
    np.testing.assert_allclose(feats["confidence"][:, 0], [0.7, 0.1])
    np.testing.assert_allclose(feats["entropy"][0, 0], -(0.7 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)))
    # As the papers' reference code: weights 1 - p_j on every class among the labels (here only
    # class 0, for both rows), p_j elsewhere, all times log p_j.
    m = [-(0.3 * np.log(0.7) + 0.2 * np.log(0.2) + 0.1 * np.log(0.1)),
         -(0.9 * np.log(0.1) + 0.1 * np.log(0.1) + 0.8 * np.log(0.8))]
    np.testing.assert_allclose(feats["m_entropy"][:, 0], m)
    # Every class present: -sum_j (1 - p_j) log p_j, whatever the row's own label.
    every = mia_features(np.vstack([probs, probs[:1]]), np.array([0, 1, 2]))["m_entropy"][:, 0]
    np.testing.assert_allclose(every[[0, 2]], -(0.3 * np.log(0.7) + 0.8 * np.log(0.2) + 0.9 * np.log(0.1)))
    assert set(feats) == set(SVC_FEATURES)
    with pytest.raises(InputError):
        mia_features(np.array([[0.5, 0.6]]), np.array([0]))  # rows must sum to 1


def test_m_entropy_matches_the_reference_indexing():
    # The reference, step by step on torch tensors: its "log(1 - p)" is log p again, and it
    # indexes whole columns with the label vector.
    rng = np.random.default_rng(4)
    probs, labels = softmax_outputs(rng, 50, 1.0, classes=6)
    labels = labels % 4  # classes 4 and 5 never occur as labels
    probs[0, 5] = 0.0
    probs[0] /= probs[0].sum()
    p, y = torch.from_numpy(probs), torch.from_numpy(labels)
    log_prob = torch.where(p > 0, p.log(), torch.tensor(1e-30, dtype=p.dtype).log())
    log_reverse_prob = torch.where(p > 0, p.log(), torch.tensor(1e-30, dtype=p.dtype).log())
    modified_probs = p.clone()
    modified_probs[:, y] = (1 - p)[:, y]
    modified_log_probs = log_reverse_prob.clone()
    modified_log_probs[:, y] = log_prob[:, y]
    reference = -(modified_probs * modified_log_probs).sum(dim=-1).numpy()
    np.testing.assert_allclose(mia_features(probs, labels)["m_entropy"][:, 0], reference, rtol=1e-12)


def test_svc_mia_is_at_chance_on_identical_distributions():
    rng = np.random.default_rng(0)
    outputs = [softmax_outputs(rng, n, 2.0) for n in (1500, 2000, 600)]
    result = svc_mia(*outputs[0], *outputs[1], *outputs[2], seed=0, max_per_class=500)
    # Chance is the held-out test examples' rate (an SVC fitted to noise is biased arbitrarily).
    for name in SVC_FEATURES:
        assert abs(result.by_feature[name] - result.baseline_by_feature[name]) < 0.12, name
    assert abs(result.efficacy - result.baseline) < 0.1
    assert result.n_train_per_class == 500 and result.n_heldout == 400 and result.n_forget == 600


def test_svc_mia_separates_members_from_non_members():
    rng = np.random.default_rng(1)
    retain = softmax_outputs(rng, 1000, 8.0)  # confidently fitted
    test = softmax_outputs(rng, 1000, 0.5)
    like_test = svc_mia(*retain, *test, *softmax_outputs(rng, 300, 0.5), max_per_class=400)
    like_retain = svc_mia(*retain, *test, *softmax_outputs(rng, 300, 8.0), max_per_class=400)
    assert like_test.efficacy > 0.95 and like_test.baseline > 0.95  # forgotten: looks unseen
    assert like_retain.efficacy < 0.05  # remembered: looks like training data


def test_svc_mia_bad_input():
    rng = np.random.default_rng(0)
    good = softmax_outputs(rng, 20, 1.0)
    with pytest.raises(InputError):
        svc_mia(*good, *good, good[0][:, :5] / good[0][:, :5].sum(1, keepdims=True), good[1] % 5)
    with pytest.raises(InputError):
        svc_mia(*good, good[0][:2], good[1][:2], *good)  # too few test examples to train and hold out


# --------------------------------------------------------------------------------------------------
# ulira


def test_ulira_is_at_chance_on_identical_distributions():
    rng = np.random.default_rng(0)
    u, r = rng.normal(size=(32, 300)), rng.normal(size=(32, 300))
    result = ulira(u, r, seed=0)
    assert abs(result.accuracy - 0.5) < 0.03
    assert abs(result.baseline - 0.5) < 0.03
    assert result.n_fit == 8 and result.n_eval == 8
    assert result.per_example.shape == result.baseline_per_example.shape == (300,)


def test_ulira_is_near_perfect_on_separated_distributions():
    rng = np.random.default_rng(1)
    u, r = rng.normal(size=(32, 200)) + 8.0, rng.normal(size=(32, 200))
    result = ulira(u, r)
    assert result.accuracy > 0.99
    assert abs(result.baseline - 0.5) < 0.05  # the baseline never sees the unlearned models


def test_ulira_handles_constant_statistics():
    u = np.full((8, 3), 2.0)
    result = ulira(u, u.copy())
    np.testing.assert_array_equal(result.per_example, 0.5)  # ties count half
    assert ulira(u, u + 1.0).accuracy == 1.0


def test_ulira_bad_input():
    with pytest.raises(InputError, match="N >= 8"):
        ulira(np.zeros((6, 3)), np.zeros((6, 3)))
    with pytest.raises(InputError):
        ulira(np.zeros((8, 3)), np.zeros((8, 4)))
    with pytest.raises(InputError):
        ulira(np.full((8, 3), np.inf), np.zeros((8, 3)))
