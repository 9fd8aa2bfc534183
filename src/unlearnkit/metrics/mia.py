"""Membership-inference attacks on per-example statistics that a run collects.

Three attacks, from weakest to strongest, each with a stated chance level:

- :func:`loss_mia`: the competition starting kit's attack. Logistic regression on per-example losses,
  forget set (members, label 1) against test set (non-members, label 0), balanced, stratified k-fold
  cross-validated accuracy. Chance = 0.5; 0.5 is also what a perfect unlearner aims for.
- :func:`svc_mia`: "MIA-efficacy" of the l1-sparse and SalUn papers. SVCs trained on retain (members)
  against test (non-members), one per feature (correctness, confidence, entropy, the reference
  code's "modified entropy" (see :func:`mia_features`), the probability vector); the score is the
  rate at which forget examples are predicted non-members. Its chance level is the same rate on
  held-out test examples, reported alongside (not 0.5: an SVC fitted to indistinguishable classes
  is biased in an arbitrary direction).
- :func:`ulira`: a per-example likelihood-ratio attack in the spirit of U-LiRA (Hayes et al. 2024):
  Gaussians fitted to each example's statistic under unlearned and under retrained models, on a
  quarter of the seeds, classify another quarter (no shadow-model pool, unlike the paper). Mean
  balanced accuracy over examples; chance = 0.5, and the same attack run retrained-vs-retrained
  is reported as its empirical chance baseline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from unlearnkit.errors import InputError
from unlearnkit.metrics.forgetting import MIN_MODELS

#: The SVC features, in the order of the reference implementation.
SVC_FEATURES: tuple[str, ...] = ("correctness", "confidence", "entropy", "m_entropy", "prob")


def _vector(name: str, x, *, min_len: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise InputError(f"{name} must be a 1-D array of per-example values; got shape {a.shape}")
    if len(a) < min_len:
        raise InputError(f"{name} needs at least {min_len} values; got {len(a)}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contains NaN or inf")
    return a


def _balanced(rng: np.random.Generator, a: np.ndarray, size: int) -> np.ndarray:
    """A random subset of ``size`` rows of ``a`` (all of them, shuffled, when it has exactly that)."""
    return a[rng.permutation(len(a))[:size]]


# --------------------------------------------------------------------------------------------------
# Loss-based logistic regression (the starting kit)


@dataclass(frozen=True, eq=False)
class LossMIAResult:
    """Cross-validated accuracy of telling forget-set losses from test-set losses.

    Attributes:
        accuracy: mean accuracy over the folds. Chance = 0.5 (classes are balanced).
        fold_accuracies: ``[n_splits]`` per-fold accuracy.
        n_per_class: examples per class after balancing.
    """

    accuracy: float
    fold_accuracies: np.ndarray
    n_per_class: int
    chance: float = 0.5


def loss_mia(forget_losses, test_losses, *, n_splits: int = 5, seed: int = 0) -> LossMIAResult:
    """The competition starting kit's membership-inference attack on per-example losses.

    The larger set is randomly subsampled to the size of the smaller (the kit asserts equal sizes),
    losses are standardized (which leaves a one-feature logistic regression's decisions unchanged
    but keeps the solver well conditioned), and accuracy is stratified ``n_splits``-fold
    cross-validated.

    Args:
        forget_losses: ``[n_f]`` losses of forget examples under the model (members, label 1).
        test_losses: ``[n_t]`` losses of test examples (non-members, label 0).
        n_splits: folds.
        seed: drives the balancing subsample and the fold shuffle.
    """
    if int(n_splits) != n_splits or n_splits < 2:
        raise InputError(f"n_splits must be an integer >= 2; got {n_splits!r}")
    forget = _vector("forget_losses", forget_losses, min_len=n_splits)
    test = _vector("test_losses", test_losses, min_len=n_splits)
    rng = np.random.default_rng([int(seed), 0])
    size = min(len(forget), len(test))
    x = np.concatenate([_balanced(rng, forget, size), _balanced(rng, test, size)])[:, None]
    y = np.concatenate([np.ones(size, dtype=int), np.zeros(size, dtype=int)])
    folds = StratifiedKFold(n_splits=int(n_splits), shuffle=True, random_state=int(seed))
    attack = make_pipeline(StandardScaler(), LogisticRegression())
    scores = cross_val_score(attack, x, y, cv=folds, scoring="accuracy")
    scores.setflags(write=False)
    return LossMIAResult(accuracy=float(scores.mean()), fold_accuracies=scores, n_per_class=size)


# --------------------------------------------------------------------------------------------------
# SVC on output features (l1-sparse / SalUn "MIA-efficacy")


def mia_features(probs, labels) -> dict[str, np.ndarray]:
    """The five per-example features of the SVC attack, from softmax outputs and labels.

    Returns a dict with ``correctness`` (argmax == label, 0/1), ``confidence`` (p of the label),
    ``entropy`` (of the probability vector), ``m_entropy`` and ``prob`` (the vector itself), each
    with one row per example. ``0 * log 0`` counts as 0 in ``entropy``; logs are floored at
    ``log(1e-30)`` where p = 0, as in the reference.

    ``m_entropy`` is what the reference code of the l1-sparse and SalUn papers
    (``evaluation/SVC_MIA.py``) computes, which is not Song & Mittal's modified entropy
    ``-(1 - p_y) log p_y - sum_{j != y} p_j log(1 - p_j)``. The reference's "log(1 - p)" is a
    second copy of ``log p``, and it indexes ``p[:, labels]``, which replaces whole columns (every
    class that occurs among the labels of the call, for every row) rather than each row's label.
    So, with L the set of classes occurring in ``labels``:
    ``m_entropy = -sum_{j in L} (1 - p_j) log p_j - sum_{j not in L} p_j log p_j``. It is not a
    per-example quantity: a row's value depends on the other rows' labels, and for a set holding
    every class it is ``-sum_j (1 - p_j) log p_j``, whatever the row's label. As in the reference,
    :func:`svc_mia` computes it once per set (retain, test, forget). Only ``confidence`` enters the
    published MIA-efficacy; the other features are reported alongside.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError(f"probs must be [n examples, C classes] with C >= 2; got shape {p.shape}")
    if y.shape != (len(p),) or not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"labels must be {len(p)} integers; got shape {y.shape}, dtype {y.dtype}")
    if not np.isfinite(p).all() or (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-4):
        raise InputError("probs must be finite, non-negative rows summing to 1 (softmax outputs)")
    if len(y) and (y.min() < 0 or y.max() >= p.shape[1]):
        raise InputError(f"labels must lie in [0, {p.shape[1]})")
    rows = np.arange(len(p))
    floor = math.log(1e-30)
    with np.errstate(divide="ignore"):
        log_p = np.where(p > 0, np.log(p), floor)
    entropy = -np.where(p > 0, p * log_p, 0.0).sum(axis=1)
    in_labels = np.zeros(p.shape[1], dtype=bool)
    in_labels[y] = True
    weights = np.where(in_labels, 1.0 - p, p)
    return {
        "correctness": (p.argmax(axis=1) == y).astype(np.float64)[:, None],
        "confidence": p[rows, y][:, None],
        "entropy": entropy[:, None],
        "m_entropy": -(weights * log_p).sum(axis=1)[:, None],
        "prob": p,
    }


@dataclass(frozen=True)
class SVCMIAResult:
    """Rate at which forget examples are predicted non-members, per feature, and its chance level.

    Attributes:
        efficacy: the ``confidence`` feature's rate, the number the l1-sparse and SalUn papers
            report as MIA-efficacy. Higher means the forget set looks more like unseen data.
        baseline: the same classifier's rate on held-out test examples (non-members it was not
            trained on): the efficacy of a forget set that is exactly as unfamiliar as unseen data.
        by_feature: efficacy for each of :data:`SVC_FEATURES`.
        baseline_by_feature: baseline for each of :data:`SVC_FEATURES`.
        n_train_per_class: retain and test examples used to train each SVC.
        n_heldout: test examples held out for the baseline.
        n_forget: forget examples scored.
    """

    efficacy: float
    baseline: float
    by_feature: dict[str, float]
    baseline_by_feature: dict[str, float]
    n_train_per_class: int
    n_heldout: int
    n_forget: int


def svc_mia(
    retain_probs,
    retain_labels,
    test_probs,
    test_labels,
    forget_probs,
    forget_labels,
    *,
    seed: int = 0,
    max_per_class: int = 2000,
    heldout_fraction: float = 0.2,
) -> SVCMIAResult:
    """MIA-efficacy: SVCs trained on retain (members) vs test (non-members), applied to the forget set.

    One ``SVC(C=3, gamma="auto", kernel="rbf")`` per feature of :func:`mia_features`, as in the
    reference implementation of the l1-sparse and SalUn papers, trained on equal numbers of retain
    and test examples (seeded subsamples, at most ``max_per_class`` each: an SVC's fit is quadratic
    in its training set, and a full retain set would take minutes).

    Chance: the reference reports the raw rate, whose level depends on the classifier. Fitted to
    indistinguishable classes, an RBF SVC is biased in an arbitrary direction (rates of 0.07 or
    0.66 on identical distributions are typical), so 0.5 is not the reference point. The reference
    point is ``baseline``: the rate on test examples held out from training (``heldout_fraction``
    of the test set). A forget set that the model treats like unseen data scores about the
    baseline; one it treats like training data scores lower.

    Args:
        retain_probs, retain_labels: softmax outputs ``[n, C]`` and labels ``[n]`` on retain data.
        test_probs, test_labels: the same on held-out test data.
        forget_probs, forget_labels: the same on the forget set.
        seed: drives the subsampling and the held-out split.
        max_per_class: cap on retain and test examples used for training.
        heldout_fraction: share of the test set kept out of training for the baseline, in (0, 1).
    """
    if int(max_per_class) != max_per_class or max_per_class < 2:
        raise InputError(f"max_per_class must be an integer >= 2; got {max_per_class!r}")
    if not (0.0 < heldout_fraction < 1.0):
        raise InputError(f"heldout_fraction must be in (0, 1); got {heldout_fraction!r}")
    retain = mia_features(retain_probs, retain_labels)
    test = mia_features(test_probs, test_labels)
    forget = mia_features(forget_probs, forget_labels)
    n_r, n_t, n_f = len(retain["prob"]), len(test["prob"]), len(forget["prob"])
    n_held = max(1, int(round(heldout_fraction * n_t)))
    size = int(min(n_r, n_t - n_held, max_per_class))
    if size < 2 or n_f < 1:
        raise InputError(
            f"need at least 2 retain examples, 2 test examples to train on besides the "
            f"{n_held} held out, and 1 forget example; got {n_r} retain, {n_t} test, {n_f} forget"
        )
    if not retain["prob"].shape[1] == test["prob"].shape[1] == forget["prob"].shape[1]:
        raise InputError("retain, test and forget probabilities must have the same number of classes")
    rng = np.random.default_rng([int(seed), 1])
    pick_r = rng.permutation(n_r)[:size]
    order_t = rng.permutation(n_t)
    pick_t, held = order_t[:size], order_t[n_t - n_held :]
    y = np.concatenate([np.ones(size, dtype=int), np.zeros(size, dtype=int)])
    rates, baselines = {}, {}
    for name in SVC_FEATURES:
        x = np.concatenate([retain[name][pick_r], test[name][pick_t]])
        clf = SVC(C=3, gamma="auto", kernel="rbf").fit(x, y)
        rates[name] = float(1.0 - clf.predict(forget[name]).mean())
        baselines[name] = float(1.0 - clf.predict(test[name][held]).mean())
    return SVCMIAResult(
        efficacy=rates["confidence"],
        baseline=baselines["confidence"],
        by_feature=rates,
        baseline_by_feature=baselines,
        n_train_per_class=size,
        n_heldout=n_held,
        n_forget=n_f,
    )


# --------------------------------------------------------------------------------------------------
# Per-example likelihood ratio (U-LiRA style)


@dataclass(frozen=True, eq=False)
class ULiRAResult:
    """Per-example Gaussian likelihood-ratio attack: unlearned vs retrained, and its chance baseline.

    Attributes:
        accuracy: mean over examples of the balanced accuracy telling unlearned from retrained
            models. Chance = 0.5; a perfect unlearner scores 0.5 up to noise.
        baseline: the same attack telling retrained from (other) retrained models: what "chance"
            looks like at these sample sizes.
        per_example: ``[E]`` balanced accuracy per example.
        baseline_per_example: ``[E]`` the same for the baseline.
        n_fit: models per side that each Gaussian is fitted on.
        n_eval: models per side that are classified.
    """

    accuracy: float
    baseline: float
    per_example: np.ndarray
    baseline_per_example: np.ndarray
    n_fit: int
    n_eval: int
    chance: float = 0.5


def _gaussian_attack(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-example balanced accuracy of telling ``a`` from ``b`` (both ``[n, E]``), two-fold.

    In each fold, each side's first (then second) half of the rows fits one Gaussian per example;
    the other half is classified by the larger log-likelihood (ties count half).
    """
    half = a.shape[0] // 2
    folds = ((slice(0, half), slice(half, 2 * half)), (slice(half, 2 * half), slice(0, half)))
    acc = np.zeros(a.shape[1])
    for fit, held in folds:
        mean_a, var_a = a[fit].mean(axis=0), a[fit].var(axis=0, ddof=1)
        mean_b, var_b = b[fit].mean(axis=0), b[fit].var(axis=0, ddof=1)
        # A side with no spread would have an infinite likelihood at its value; a floor relative to
        # the scale keeps constant statistics comparable (equal constants tie, and count half).
        floor = 1e-12 * (1.0 + var_a + var_b + mean_a**2 + mean_b**2)
        var_a, var_b = np.maximum(var_a, floor), np.maximum(var_b, floor)

        def says_a(x: np.ndarray) -> np.ndarray:
            log_a = -0.5 * (np.log(var_a) + (x - mean_a) ** 2 / var_a)
            log_b = -0.5 * (np.log(var_b) + (x - mean_b) ** 2 / var_b)
            return np.where(log_a > log_b, 1.0, np.where(log_a == log_b, 0.5, 0.0))

        tpr = says_a(a[held]).mean(axis=0)
        tnr = 1.0 - says_a(b[held]).mean(axis=0)
        acc += 0.5 * (tpr + tnr) / len(folds)
    return acc


def ulira(unlearned, retrained, *, seed: int = 0) -> ULiRAResult:
    """A per-example likelihood-ratio attack in the spirit of U-LiRA (Hayes et al. 2024).

    With N models per side: the models of each side are shuffled (seeded); the retrained models are
    split into halves A and B of N // 2. The attack tells the unlearned models from retrained half A
    (each half of the unlearned models in turn, averaged); the baseline tells retrained half B from
    half A, so both attacks see the same numbers of models and the baseline shows the spread of
    "no difference" at this N. Each attack fits per-example Gaussians on half of each side's models
    and classifies the other half, then swaps (two-fold): every Gaussian is fitted on N // 4
    models (two at N = 8) and classifies another N // 4 per side.

    How this differs from Hayes et al.'s U-LiRA: they train a pool of shadow models on random forget
    sets, so that each example was unlearned in some shadow models and never seen by others, fit the
    two Gaussians of each example on those shadow models, and attack separate target models. Here
    there is no shadow pool: the N unlearned and N retrained models of one forget set, which a
    benchmark has anyway, play both roles by cross-fitting, so each Gaussian rests on N / 4 models
    instead of a large pool, and fitting and attacked models come from the same run. The means and
    variances are noisy at small N, which makes this attack weaker than U-LiRA at the same N and
    its accuracies not comparable with the paper's; compare ``accuracy`` with ``baseline``
    (the same attack at the same N where there is nothing to find), not with 0.5 alone.

    Args:
        unlearned: ``[N, E]`` per-example statistic (e.g. logit-scaled confidence) under N unlearned
            models.
        retrained: ``[N, E]`` the same under N retrained models.
        seed: drives the shuffles.

    References:
        Hayes, Shumailov, Triantafillou, Khalifa, Papernot. Inexact Unlearning Needs More Careful
        Evaluations to Avoid a False Sense of Privacy, 2024.
    """
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrained, dtype=np.float64)
    if u.ndim != 2 or u.shape != r.shape:
        raise InputError(
            f"unlearned and retrained must both be [N models, E examples] of the same shape; got "
            f"{u.shape} and {r.shape}"
        )
    n, e = u.shape
    if e == 0:
        raise InputError("no examples: the arrays have E = 0 columns")
    if n < MIN_MODELS:
        raise InputError(
            f"N = {n} models per side is too few: the attack fits each Gaussian on N / 4 models and "
            f"needs at least 2 of them, so N >= {MIN_MODELS}"
        )
    if not (np.isfinite(u).all() and np.isfinite(r).all()):
        raise InputError("unlearned and retrained must not contain NaN or inf")
    rng = np.random.default_rng([int(seed), 2])
    u = u[rng.permutation(n)]
    r = r[rng.permutation(n)]
    half = n // 2
    r_a, r_b = r[:half], r[half : 2 * half]
    per_example = 0.5 * (_gaussian_attack(u[:half], r_a) + _gaussian_attack(u[half : 2 * half], r_a))
    baseline = _gaussian_attack(r_b, r_a)
    for a in (per_example, baseline):
        a.setflags(write=False)
    return ULiRAResult(
        accuracy=float(per_example.mean()),
        baseline=float(baseline.mean()),
        per_example=per_example,
        baseline_per_example=baseline,
        n_fit=half // 2,
        n_eval=half // 2,
    )
