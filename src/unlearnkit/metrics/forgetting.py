"""The (ε, δ) forgetting-quality score of the NeurIPS 2023 Machine Unlearning competition, computed fast.

The definition lives in ``shared/spec/forgetting-quality.md``. For every forget example the score
attacks the N unlearned values against the N retrained values with two families of decision rules
(one threshold; an interval), turns each attack's false-positive and false-negative rates into an ε
(Kairouz et al.'s bound), keeps the largest, and pays 2^-k points for an ε in bin k of width 0.5.

Three modes:

- ``"compat"`` reproduces the competition's threshold grids exactly (100 thresholds per unit; the
  single-threshold grid holds the float32 points that the official ``torch.linspace`` call
  returns, the interval family's grids are float64 ``np.linspace`` with 400 left thresholds per
  right one).
  Where the competition's code raises instead (every attack discarded, as for two identical
  constant samples), ε is 0.
- ``"exact"`` takes the supremum over every threshold and every interval with end points at data
  values, in both orientations (either side may be called "positive"); decisions only change at data
  values, so this is the true maximum over both families and never below compat. Apart from the
  range-based peaky rule it depends only on the order of the 2N values, so it is unchanged by any
  strictly increasing transform of the statistic.
- ``"bounded"`` is the calibrated score of the competition write-up's Equation 2: the competition's
  grids, with FPR and FNR replaced by one-sided 95 % Clopper-Pearson upper bounds from the counts
  (see :func:`~unlearnkit.metrics.epsilon.epsilon_table` for how the discard rules read under
  bounds). A perfect unlearner scores about 0.99 at any N, where compat caps it near 0.18. The
  grids, not the exhaustive sweep: each bound holds for one attack, and the maximum over the
  O(N^2) intervals of the sweep is a multiple-comparisons problem the bound does not correct
  (measured, two samples of one Gaussian, E = 60: bounded-over-the-sweep F = 0.95 / 0.88 / 0.63 at
  N = 32 / 128 / 512, against 0.99 / 0.99 / 0.99 over the grids, which is also what the spec's
  table reports).

How the per-example ε is computed fast: :mod:`unlearnkit.metrics.epsilon` (the ε of every attack,
tabulated over its counts) and :mod:`unlearnkit.metrics.attacks` (the two attack families over
chunks of examples). Confidence intervals for the score: :mod:`unlearnkit.metrics.intervals`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from unlearnkit.errors import InputError
from unlearnkit.metrics.epsilon import DEFAULT_DELTA, EPSILON_CAP, WINNER_NAMES, example_epsilons

Mode = Literal["compat", "exact", "bounded"]
MODES: tuple[str, ...] = ("compat", "exact", "bounded")

BIN_WIDTH = 0.5
MIN_MODELS = 8
# compat and bounded modes accept statistics up to this magnitude: their threshold grid has 100
# points per unit, so a range of 2e12 already means 2e14 grid points.
MAX_COMPAT_MAGNITUDE = 1e12


# --------------------------------------------------------------------------------------------------
# The statistic


def checked_logits(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """A float64 copy of ``logits`` [..., C] and ``labels`` broadcast to ``logits.shape[:-1]``.

    Raises:
        InputError: fewer than two classes, non-finite logits, non-integer or out-of-range labels.
    """
    z = np.array(logits, dtype=np.float64)  # a copy: the input is never modified
    if z.ndim < 1 or z.shape[-1] < 2:
        raise InputError(f"logits must have shape [..., C] with C >= 2 classes; got shape {z.shape}")
    if not np.isfinite(z).all():
        raise InputError("logits contain NaN or inf")
    y = np.asarray(labels)
    if not np.issubdtype(y.dtype, np.integer):
        raise InputError(f"labels must be integers; got dtype {y.dtype}")
    try:
        y = np.broadcast_to(y, z.shape[:-1])
    except ValueError:
        raise InputError(
            f"labels of shape {np.shape(labels)} do not match logits of shape {z.shape}"
        ) from None
    n_classes = z.shape[-1]
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"labels must lie in [0, {n_classes}); got {y.min()}..{y.max()}")
    return z, y


def logit_scaled_confidence(logits, labels) -> np.ndarray:
    """The competition's per-example statistic: log p_y - log(sum of the other probabilities).

    Computed in float64 after subtracting the largest logit, with 1e-45 added inside both logs
    exactly as the competition does, so values saturate near +-103.6 instead of overflowing.

    Args:
        logits: ``[..., C]`` class logits (any float dtype; numpy array, torch CPU tensor or list).
        labels: integer labels broadcastable to ``logits.shape[:-1]``, each in ``[0, C)``.

    Returns:
        float64 array of shape ``logits.shape[:-1]``.

    Raises:
        InputError: on non-finite logits, fewer than two classes, or labels out of range.
    """
    z, y = checked_logits(logits, labels)
    z -= z.max(axis=-1, keepdims=True)
    probs = np.exp(z)
    probs /= probs.sum(axis=-1, keepdims=True)
    y = y[..., None]
    p_true = np.take_along_axis(probs, y, axis=-1)[..., 0]
    # The competition zeroes the true class and sums the rest (rather than 1 - p_true), which keeps
    # precision when p_true is close to 1.
    np.put_along_axis(probs, y, 0.0, axis=-1)
    p_rest = probs.sum(axis=-1)
    return np.log(p_true + 1e-45) - np.log(p_rest + 1e-45)


# --------------------------------------------------------------------------------------------------
# Bins and points


def epsilon_bins(n_models: int) -> np.ndarray:
    """Edges of the point bins for ``n_models`` models per side.

    Bin k covers ``[0.5 k, 0.5 k + 0.5)`` and is worth ``2^-k`` points; only bins ending at or below
    ``ceil(ln(n_models - 1))`` exist (N = 512: 14 bins, the last ending at 7.0; N = 2: none).

    Returns:
        float64 array ``[0, 0.5, ..., ceil(ln(N - 1))]``: one more edge than there are bins.
    """
    if int(n_models) != n_models or n_models < 2:
        raise InputError(f"n_models must be an integer >= 2; got {n_models!r}")
    max_epsilon = math.ceil(math.log(int(n_models) - 1))
    n_bins = int(max_epsilon / BIN_WIDTH)
    return BIN_WIDTH * np.arange(n_bins + 1, dtype=np.float64)


def epsilon_points(epsilons, n_models: int) -> np.ndarray:
    """Points earned by each ε: ``2^-k`` in bin k, 0 beyond the last bin."""
    eps = np.asarray(epsilons, dtype=np.float64)
    n_bins = len(epsilon_bins(n_models)) - 1
    # 2 * eps is exact in binary floating point, so floor(2 eps) reproduces "eps < 0.5 (k + 1)".
    k = np.floor(eps / BIN_WIDTH)
    return np.where(k < n_bins, np.exp2(-np.minimum(k, n_bins)), 0.0)


@dataclass(frozen=True)
class EpsilonBin:
    """One bar of the ε histogram: ``lower <= ε < upper`` (the overflow bar includes the cap)."""

    lower: float
    upper: float
    points: float
    count: int


@dataclass(frozen=True, eq=False)
class ForgettingQualityResult:
    """The score of one unlearning method: per-example ε and points, and their mean F.

    Attributes:
        epsilons: ``[E]`` per-example ε in ``[0, 50]``.
        points: ``[E]`` per-example points in ``[0, 1]``.
        forget_quality: F, the mean of ``points``.
        winners: ``[E]`` int8 codes into :data:`WINNER_NAMES`: which rule set the example's ε
            ("none" when ε = 0, "peaky" for the range-ratio rule, else the attack family).
        n_models: N, models per side.
        n_examples: E, forget examples.
        mode: "compat", "exact" or "bounded".
        delta: the δ of the (ε, δ) guarantee.
    """

    epsilons: np.ndarray
    points: np.ndarray
    forget_quality: float
    winners: np.ndarray
    n_models: int
    n_examples: int
    mode: str
    delta: float

    def winner_names(self) -> np.ndarray:
        """``winners`` as strings."""
        return np.asarray(WINNER_NAMES)[self.winners]

    def winner_counts(self) -> dict[str, int]:
        """How many examples each rule won."""
        counts = np.bincount(self.winners, minlength=len(WINNER_NAMES))
        return {name: int(c) for name, c in zip(WINNER_NAMES, counts)}

    def histogram(self) -> tuple[EpsilonBin, ...]:
        """Examples per ε bin, then one overflow bar from the last edge up to the cap (0 points)."""
        edges = epsilon_bins(self.n_models)
        n_bins = len(edges) - 1
        k = np.minimum(np.floor(self.epsilons / BIN_WIDTH), n_bins).astype(np.int64)
        counts = np.bincount(k, minlength=n_bins + 1)
        bars = [
            EpsilonBin(float(edges[i]), float(edges[i + 1]), 2.0**-i, int(counts[i]))
            for i in range(n_bins)
        ]
        bars.append(EpsilonBin(float(edges[-1]), EPSILON_CAP, 0.0, int(counts[n_bins])))
        return tuple(bars)

    def to_dict(self) -> dict:
        """A JSON-ready summary (per-example arrays as lists)."""
        return {
            "forget_quality": self.forget_quality,
            "mode": self.mode,
            "delta": self.delta,
            "n_models": self.n_models,
            "n_examples": self.n_examples,
            "winner_counts": self.winner_counts(),
            "histogram": [vars(b) for b in self.histogram()],
            "epsilons": self.epsilons.tolist(),
            "points": self.points.tolist(),
            "winners": self.winner_names().tolist(),
        }


# --------------------------------------------------------------------------------------------------
# Input checks


def model_matrix(name: str, x) -> np.ndarray:
    """``x`` as a real float64 array [N models, E examples], or an InputError naming ``name``."""
    if np.iscomplexobj(x):
        raise InputError(
            f"{name} has complex dtype {np.asarray(x).dtype}; the statistic must be real "
            "(reading it as float would silently drop the imaginary part)"
        )
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot read as a float array ({exc})") from None
    if a.ndim != 2:
        hint = " (a single row? pass [N models, E examples])" if a.ndim == 1 else ""
        raise InputError(f"{name} must be a 2-D array [N models, E examples]; got {a.ndim}-D shape {a.shape}{hint}")
    return a


def check_statistics(unlearned, retrained, mode: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """The two ``[N, E]`` float64 arrays the score reads, or an InputError saying what is wrong with them."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if not (isinstance(delta, (int, float)) and 0.0 <= delta < 1.0):
        raise InputError(f"delta must be a number in [0, 1); got {delta!r}")
    u, t = model_matrix("unlearned", unlearned), model_matrix("retrained", retrained)
    if u.shape != t.shape:
        raise InputError(
            f"unlearned has shape {u.shape} but retrained has shape {t.shape}; both must be "
            "[N models, E examples] with the same N and the same E (example i in column i)"
        )
    n, e = u.shape
    if e == 0:
        raise InputError("no forget examples: the arrays have E = 0 columns")
    if n < MIN_MODELS:
        n_bins = 2 * math.ceil(math.log(n - 1)) if n >= 2 else 0
        raise InputError(
            f"N = {n} models per side is too few: the score needs at least {MIN_MODELS}. Its point "
            f"bins end at ceil(ln(N - 1)), so N = {n} leaves {n_bins} bin(s) of width 0.5 (N = 2 "
            "leaves none and every example scores 0): the score would mean nothing. Use more seeds."
        )
    for name, a in (("unlearned", u), ("retrained", t)):
        bad = ~np.isfinite(a)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise InputError(
                f"{name} has {int(bad.sum())} NaN or inf value(s), the first at model {i}, example {j}"
            )
        if mode != "exact" and np.abs(a).max() > MAX_COMPAT_MAGNITUDE:
            raise InputError(
                f"{name} has values beyond +-{MAX_COMPAT_MAGNITUDE:g}; the competition's grid (100 "
                f"thresholds per unit, used by mode={mode!r}) cannot span them. Use mode='exact' "
                "or rescale the statistic."
            )
    return u, t


# --------------------------------------------------------------------------------------------------
# The score


def forgetting_quality(
    unlearned, retrained, *, mode: Mode = "compat", delta: float = DEFAULT_DELTA
) -> ForgettingQualityResult:
    """The forgetting-quality score F of unlearned models against retrained ones.

    Args:
        unlearned: ``[N, E]`` statistic (e.g. :func:`logit_scaled_confidence`) of each forget
            example under each of N unlearned models.
        retrained: ``[N, E]`` the same under N models retrained without the forget set. Both arrays
            must have the same shape: the rates are fractions over N on both sides.
        mode: "compat" (the competition's grids, exactly), "exact" (every threshold and interval,
            both orientations; never below compat) or "bounded" (the competition's grids with
            Clopper-Pearson upper bounds on the rates; about 0.99 for a perfect unlearner at any N).
        delta: δ of the (ε, δ) guarantee.

    Returns:
        The per-example ε, points and winning rule, and their mean F.

    Raises:
        InputError: shapes that differ or are not 2-D, N < 8, E = 0, NaN or inf, an unknown mode.

    Chunks of examples run on ``torch.get_num_threads()`` worker threads, each running torch
    single-threaded; torch's (process-wide) thread count is 1 during the call and restored after.
    """
    u, r = check_statistics(unlearned, retrained, mode, delta)
    eps, winners = example_epsilons(u, r, mode, float(delta))
    n, e = u.shape
    points = epsilon_points(eps, n)
    for a in (eps, points, winners):
        a.setflags(write=False)
    return ForgettingQualityResult(
        epsilons=eps,
        points=points,
        forget_quality=float(points.mean()),
        winners=winners,
        n_models=n,
        n_examples=e,
        mode=mode,
        delta=float(delta),
    )


# --------------------------------------------------------------------------------------------------
# Final score


def mean_accuracy(name: str, value) -> float:
    """The mean of one accuracy or of one per model, or an InputError naming ``name``."""
    a = np.asarray(value, dtype=np.float64)
    if a.size == 0 or not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
        raise InputError(f"{name} must be finite accuracies in [0, 1]; got {value!r}")
    return float(a.mean())


def final_score(
    forget_quality: float,
    retain_acc_unlearned,
    test_acc_unlearned,
    retain_acc_retrained,
    test_acc_retrained,
) -> float:
    """The competition's final score: ``F * (RA_U / RA_R) * (TA_U / TA_R)``.

    Each accuracy is a fraction in [0, 1], either one number or one per model (averaged over the
    N models of that side). The ratios are not capped, as in the competition.
    """
    f = float(forget_quality)
    if not (0.0 <= f <= 1.0):
        raise InputError(f"forget_quality must be in [0, 1]; got {forget_quality!r}")
    ra_u = mean_accuracy("retain_acc_unlearned", retain_acc_unlearned)
    ta_u = mean_accuracy("test_acc_unlearned", test_acc_unlearned)
    ra_r = mean_accuracy("retain_acc_retrained", retain_acc_retrained)
    ta_r = mean_accuracy("test_acc_retrained", test_acc_retrained)
    if ra_r == 0 or ta_r == 0:
        raise InputError("the retrained models' retain and test accuracies must be above 0")
    return f * (ra_u / ra_r) * (ta_u / ta_r)
