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
  (see :func:`epsilon_table` for how the discard rules read under bounds). A perfect unlearner
  scores about 0.99 at any N, where compat caps it near 0.18. The grids, not the exhaustive sweep:
  each bound holds for one attack, and the maximum over the O(N^2) intervals of the sweep is a
  multiple-comparisons problem the bound does not correct (measured, two samples of one Gaussian,
  E = 60: bounded-over-the-sweep F = 0.95 / 0.88 / 0.63 at N = 32 / 128 / 512, against 0.99 /
  0.99 / 0.99 over the grids, which is also what the spec's table reports).

How it is fast: ε depends on an attack only through its two counts (P positives and Q negatives
predicted positive), so all (N + 1)^2 values are tabulated once, ranked, and every attack becomes an
integer look-up. Counts only change at data values: the threshold family is evaluated once per data
value (is there a grid point between it and its neighbour? a binary search in the float32 grid,
which torch itself makes, one call per example), and the interval family's ~400 x 400 grid per
example turns out to lie on an integer lattice up to rounding, so "how many values lie below each
left threshold" is one cumulative count read through a strided view, with exact float64 fix-ups
where a data value sits within rounding distance of a lattice point. Everything else is batched over
chunks of examples (no Python loop over examples), and chunks run on parallel workers.
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterator, Literal

import numpy as np
import torch
from scipy import stats

from unlearnkit.errors import InputError

Mode = Literal["compat", "exact", "bounded"]
MODES: tuple[str, ...] = ("compat", "exact", "bounded")

DEFAULT_DELTA = 1e-5
EPSILON_CAP = 50.0
BIN_WIDTH = 0.5
MIN_MODELS = 8
THRESHOLDS_PER_UNIT = 100
INTERVAL_BUFFER = 2.0
N_LEFT_THRESHOLDS = math.ceil(2 * INTERVAL_BUFFER * THRESHOLDS_PER_UNIT)  # 400, as the competition
PEAKY_RATIO = 0.01
CLOPPER_PEARSON_LEVEL = 0.95
# compat and bounded modes accept statistics up to this magnitude: their threshold grid has 100
# points per unit, so a range of 2e12 already means 2e14 grid points.
MAX_COMPAT_MAGNITUDE = 1e12

#: Names of the codes in :attr:`ForgettingQualityResult.winners`.
WINNER_NAMES: tuple[str, ...] = ("none", "peaky", "threshold", "interval")
WINNER_NONE, WINNER_PEAKY, WINNER_THRESHOLD, WINNER_INTERVAL = range(4)

# Work per chunk of examples, in grid cells / interval pairs: bounds memory to a few hundred MB.
_CHUNK_CELLS = 2_000_000
# Rank tables with at most this many distinct ε values are stored as int16 (see _rank_table).
_INT16_RANKS = 65536


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


def _check_statistics(unlearned, retrained, mode: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
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
# The ε of one attack, tabulated over its counts


@functools.lru_cache(maxsize=16)
def epsilon_table(n_models: int, delta: float = DEFAULT_DELTA, bounded: bool = False) -> np.ndarray:
    """ε of an attack as a function of its counts: ``table[P, Q]``, shape ``[N + 1, N + 1]``.

    P is the number of positives predicted positive (FNR = (N - P) / N), Q the number of negatives
    predicted positive (FPR = Q / N). Point estimates (``bounded=False``), as the competition:

    - Q = 0 and P = N (perfect separation): +inf.
    - Q = 0 or P = N, but not both: the attack is discarded, entered as 0. (0 can stand for "no
      attack" because every kept attack's ε is clipped below at 0, so a maximum is unchanged.)
    - otherwise ``max(log(1 - δ - FPR) - log(FNR), log(1 - δ - FNR) - log(FPR))``, NaN terms
      ignored (an attack whose terms are both NaN is dropped, i.e. 0), clipped below at 0.

    With ``bounded=True`` FPR and FNR are the one-sided 95 % Clopper-Pearson upper bounds
    ``beta.ppf(0.95, k + 1, N - k)`` (1 when k = N). An upper bound is never 0, so the discard and
    perfect-separation rules, which are about rates of exactly 0, never fire: every attack goes
    through the formula. This is the point of the bounds: a zero count is weak evidence with few
    models, and the bound turns it into the largest ε the data support at 95 % (perfect separation
    of N = 512 models gives ε = log((1 - δ - u) / u) = 5.14 with u = 1 - 0.05^(1/N), not +inf).

    The returned array is read-only and cached per ``(n_models, delta, bounded)``.
    """
    if int(n_models) != n_models or n_models < 1:
        raise InputError(f"n_models must be a positive integer; got {n_models!r}")
    n = int(n_models)
    counts = np.arange(n + 1, dtype=np.float64)
    if bounded:
        upper = np.ones(n + 1)
        k = counts[:-1]
        upper[:-1] = stats.beta.ppf(CLOPPER_PEARSON_LEVEL, k + 1, n - k)
        fpr = upper[None, :]  # indexed by Q
        fnr = upper[::-1][:, None]  # indexed by P through N - P
    else:
        fpr = (counts / n)[None, :]
        fnr = ((n - counts) / n)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        term1 = np.log(1 - delta - fpr) - np.log(fnr)
        term2 = np.log(1 - delta - fnr) - np.log(fpr)
        eps = np.fmax(term1, term2)  # fmax ignores a NaN term, as the competition's nanmax
    eps = np.where(np.isnan(eps), 0.0, np.maximum(eps, 0.0))
    if not bounded:
        discarded = np.zeros((n + 1, n + 1), dtype=bool)
        discarded[:, 0] = True  # Q = 0
        discarded[n, :] ^= True  # P = N; both at once is perfect separation, not a discard
        eps = np.where(discarded, 0.0, eps)
        eps[n, 0] = np.inf
    eps.setflags(write=False)
    return eps


@functools.lru_cache(maxsize=16)
def _rank_table(n_models: int, delta: float, bounded: bool) -> tuple[torch.Tensor, np.ndarray]:
    """ε's order as integer ranks over packed counts, and the ε of each rank.

    An attack with counts (P, Q) packs to ``P * (N + 1) + Q`` and looks up its rank at
    ``table[(N + 1)^2 + packed]``: the table starts with (N + 1)^2 copies of the lowest rank, so
    the interval kernels can subtract packed running counts without clamping (an empty interval
    packs to a negative number and lands on the lowest rank). The lowest rank is ε = 0: discarded,
    or no attack at all. Kernels take maxima of ranks and map the best back to ε at the end.

    Ranks are stored as int16 shifted by -32768 when there are at most 65536 distinct ε values
    (N = 512 has 65282): the look-ups are the hot loop, and a 1 MB table stays in a core's cache
    where a 2 MB one does not (4x faster measured). Otherwise int32.
    """
    values, ranks = np.unique(epsilon_table(n_models, delta, bounded).ravel(), return_inverse=True)
    assert values[0] == 0.0  # (P, Q) = (0, 0) is always discarded or 0
    dtype, shift = (np.int16, -32768) if len(values) <= _INT16_RANKS else (np.int32, 0)
    table = np.concatenate([np.zeros((n_models + 1) ** 2, dtype=np.int64), ranks]) + shift
    return torch.from_numpy(table.astype(dtype)), values


def _ranks_to_int(best: torch.Tensor) -> np.ndarray:
    """Undo the int16 shift of :func:`_rank_table`."""
    out = best.numpy().astype(np.int64)
    return out + 32768 if best.dtype == torch.int16 else out


@dataclass(frozen=True)
class _Chunk:
    """Both samples of C examples merged and sorted, with running counts per side."""

    values: torch.Tensor  # [C, 2N] float64, sorted ascending
    count_u: torch.Tensor  # [C, 2N + 1] int64: unlearned values among the first c sorted values
    count_r: torch.Tensor  # [C, 2N + 1] int64: retrained values among the first c sorted values
    n: int

    @classmethod
    def build(cls, u: np.ndarray, r: np.ndarray) -> "_Chunk":
        """From ``[N, C]`` slices of the two samples."""
        n = u.shape[0]
        merged = torch.from_numpy(np.concatenate([u, r], axis=0).T.copy())
        values, order = torch.sort(merged, dim=1)
        count_u = torch.zeros(values.shape[0], 2 * n + 1, dtype=torch.int64)
        count_u[:, 1:] = torch.cumsum(order < n, dim=1)
        count_r = torch.arange(2 * n + 1) - count_u
        return cls(values, count_u, count_r, n)

    @property
    def offset(self) -> int:
        """Where packed count 0 sits in the rank table."""
        return (self.n + 1) ** 2

    def packed(self, positive_is_u: torch.Tensor) -> torch.Tensor:
        """``[C, 2N + 1]`` int64 running counts packed as ``pos * (N + 1) + neg``."""
        pos = torch.where(positive_is_u[:, None], self.count_u, self.count_r)
        neg = torch.where(positive_is_u[:, None], self.count_r, self.count_u)
        return pos * (self.n + 1) + neg


def _count_below(values: torch.Tensor, rows: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``#values[rows[j]] < x[j]`` for sorted rows: a binary search vectorized over j."""
    width = values.shape[1]
    flat = values.reshape(-1)
    lo = rows * width
    hi = lo + width
    base = lo.clone()
    for _ in range(width.bit_length() + 1):
        active = lo < hi
        if not bool(active.any()):
            break
        mid = (lo + hi) // 2
        go = (flat[mid.clamp(max=flat.numel() - 1)] < x) & active
        lo = torch.where(go, mid + 1, lo)
        hi = torch.where(active & ~go, mid, hi)
    return lo - base


def _linspace_at(j: torch.Tensor, start, stop, num, step) -> torch.Tensor:
    """Element ``j`` of ``np.linspace(start, stop, num)``, bit for bit (float64 ``j * step + start``).

    ``step`` must be ``(stop - start) / (num - 1)`` (0 where num <= 1). numpy special-cases a step
    that underflows to 0 (gh-5437) by computing ``(j / div) * delta + start``; that branch is
    reproduced too.
    """
    jf = j.to(torch.float64)
    value = jf * step + start
    zero_step = (step == 0) & (num > 1)
    if bool(zero_step.any()):
        div = (num - 1).clamp_min(1).to(torch.float64)
        value = torch.where(zero_step, (jf / div) * (stop - start) + start, value)
    return torch.where((j == num - 1) & (num > 1), stop, value)


def _linspace_step(start, stop, num) -> torch.Tensor:
    return torch.where(
        num > 1, (stop - start) / (num - 1).clamp_min(1).to(torch.float64), torch.zeros_like(start)
    )


def _official_threshold_grid(lo: torch.Tensor, hi: torch.Tensor, num: torch.Tensor) -> torch.Tensor:
    """``[C, max num]`` float64: each example's single-threshold grid as the official code builds it.

    The official code calls ``torch.linspace(min, max, num)`` on float64 tensors, and torch returns
    its default dtype, float32: the grid points are float32 values, which sit up to a few 1e-6
    away from a float64 linspace at magnitude 40, and an example whose statistics lie exactly on
    grid points can change ε. So the grid is made by that very call, not by a formula: torch's CPU
    kernel computes in float32, partly vectorised, and differs in the last bit from both a scalar
    float32 formula and a float32 rounding of numpy's grid (measured). Above 32,768 points torch
    also splits the work by thread, which can move bits again; logit-scaled confidences saturate
    at +-103.6, so their grids never get that long, and the call runs single-threaded here anyway
    (see :func:`_one_torch_thread`).

    Returns the points sorted (counting the points <= a value does not depend on their order),
    padded with +inf; ``lo``, ``hi`` are ``[C, 1]`` float64 and ``num`` is ``[C, 1]`` int64.
    """
    sizes = num[:, 0].tolist()
    grid = torch.full((len(sizes), max(sizes, default=0)), math.inf, dtype=torch.float64)
    for row, (start, stop, size) in enumerate(zip(lo[:, 0].tolist(), hi[:, 0].tolist(), sizes)):
        if size > 0:
            grid[row, :size] = torch.linspace(start, stop, size, dtype=torch.float32)
    return torch.sort(grid, dim=1).values


def _compat_threshold(chunk: _Chunk, positive_is_u: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """Best rank over the competition's single-threshold grid (value >= t means positive)."""
    n, v = chunk.n, chunk.values
    lo, hi = v[:, :1], v[:, -1:]
    num = torch.ceil((hi - lo) * THRESHOLDS_PER_UNIT).to(torch.int64)
    # Counts depend on t only through c = #values < t, and c takes the value c exactly for
    # t in (v[c-1], v[c]]: cut c is used by the grid iff a grid point falls in that interval.
    le = torch.searchsorted(_official_threshold_grid(lo, hi, num), v, right=True)  # [C, 2N]
    used = le > torch.cat([torch.zeros_like(le[:, :1]), le[:, :-1]], dim=1)
    packed = chunk.packed(positive_is_u)[:, :-1]
    # P = N - pos below t, Q = N - neg below t  =>  packed (P, Q) = N (N + 2) - packed below.
    idx = torch.where(used, n * (n + 2) - packed, 0) + chunk.offset
    return rank[idx].amax(dim=1)


def _compat_interval(chunk: _Chunk, peaky_is_u, width, peaky_min, peaky_max, rank) -> torch.Tensor:
    """Best rank over the competition's interval grid (l <= value <= r means the peakier side).

    Right thresholds ``r_i = linspace(min_p + w - 2, max_p + 2, R)`` with R = ceil(range * 100);
    for each, 400 left thresholds ``l_ik = linspace(r_i - w - 2, r_i - w + 2, 400)``, all float64
    as numpy computes them. All examples of the chunk must share R. P = pos <= r - pos < l
    (likewise Q), so with packed running counts an attack is ``packed(#values <= r_i)`` minus
    ``packed(#values < l_ik)``; an empty interval (l > r) packs to <= 0, a discarded attack.

    Since r_max - r_min = 4 up to rounding, the steps of both grids are rational multiples of one
    lattice unit h (r step = 399 h / g, l step = (R - 1) h / g, g = gcd(399, R - 1)), and l_ik lies
    within a few ulps of lattice point ``b = i * 399 / g + k * (R - 1) / g``. So "#values < l" is
    computed once per lattice point (a cumulative count) and read for all (i, k) through a strided
    view; only lattice points with a data value within the rounding tolerance are resolved exactly,
    from the float64 l_ik. Examples where rounding is not small against h (huge magnitudes) take a
    plain search over the full grid instead.
    """
    v = chunk.values
    c_examples = v.shape[0]
    buffer = INTERVAL_BUFFER
    r_min = (peaky_min + width) - buffer
    r_max = peaky_max + buffer
    n_right = torch.ceil((r_max - r_min) * THRESHOLDS_PER_UNIT).to(torch.int64)
    n_r = int(n_right[0])
    if not bool((n_right == n_r).all()):
        raise AssertionError("a chunk of the interval kernel must share its number of right thresholds")
    i = torch.arange(n_r)
    r_step = _linspace_step(r_min, r_max, n_right)
    r = _linspace_at(i[None, :], r_min[:, None], r_max[:, None], n_right[:, None], r_step[:, None])
    packed = chunk.packed(peaky_is_u)
    right = torch.gather(packed, 1, torch.searchsorted(v, r, right=True)) + chunk.offset
    w = width[:, None]
    l_start = (r - w) - buffer
    l_stop = (r - w) + buffer
    l_step = (l_stop - l_start) / (N_LEFT_THRESHOLDS - 1)

    g = math.gcd(N_LEFT_THRESHOLDS - 1, n_r - 1) if n_r > 1 else 0
    lattice = torch.zeros(c_examples, dtype=torch.bool)
    if g:
        row_stride, col_stride = (N_LEFT_THRESHOLDS - 1) // g, (n_r - 1) // g
        h = r_step / row_stride
        origin = l_start[:, 0]
        # How far the float64 grid strays from the lattice, measured, plus slack for this very
        # arithmetic: a few ulps of the largest magnitude involved.
        drift_row = (l_start - (origin[:, None] + (i * row_stride)[None, :] * h[:, None])).abs().amax(1)
        drift_step = (l_step - col_stride * h[:, None]).abs().amax(1) * (N_LEFT_THRESHOLDS - 1)
        scale = 1.0 + torch.maximum(v.abs().amax(1), l_stop.abs().amax(1))
        tolerance = drift_row + drift_step + 1e-12 * scale
        lattice = (h > 0) & (tolerance < h / 16)
    best = torch.empty(c_examples, dtype=rank.dtype)
    on = torch.nonzero(lattice).squeeze(1)
    off = torch.nonzero(~lattice).squeeze(1)
    if on.numel():
        best[on] = _interval_on_lattice(
            v[on], packed[on], right[on], l_start[on], l_step[on], l_stop[on],
            h[on], tolerance[on], row_stride, col_stride, rank,
        )
    if off.numel():
        k = torch.arange(N_LEFT_THRESHOLDS, dtype=torch.float64)
        left = k * l_step[off, :, None]  # numpy's linspace: j * step, then + start; last = stop
        left += l_start[off, :, None]
        left[:, :, -1] = l_stop[off]
        below = torch.searchsorted(v[off], left.view(len(off), -1))
        idx = right[off].repeat_interleave(N_LEFT_THRESHOLDS, dim=1) - torch.gather(packed[off], 1, below)
        best[off] = rank[idx].amax(dim=1)
    return best


def _interval_on_lattice(v, packed, right, l_start, l_step, l_stop, h, tolerance, row_stride,
                         col_stride, rank) -> torch.Tensor:
    """The interval kernel's fast path: see :func:`_compat_interval`."""
    c_examples, n_r = right.shape
    n_k = N_LEFT_THRESHOLDS
    size = row_stride * (n_r - 1) + col_stride * (n_k - 1) + 1
    origin = l_start[:, :1]
    y = (v - origin) / h[:, None]  # data in lattice units
    # Value x is below lattice point b iff b > y, i.e. b >= floor(y) + 1 (y not near an integer).
    first_above = (torch.floor(y) + 1).clamp(0, size).to(torch.int64)
    weight = (packed[:, 1:] - packed[:, :-1]).to(torch.int32)  # N + 1 for a positive, 1 otherwise
    below = torch.zeros(c_examples, size + 1, dtype=torch.int32)
    below.scatter_add_(1, first_above, weight)
    np.cumsum(below.numpy(), axis=1, out=below.numpy())  # numpy's is 6x faster than torch's here
    # below[b] = packed count of values < lattice point b; row i, column k reads b = i*rs + k*cs.
    view = below.as_strided((c_examples, n_r, n_k), (size + 1, row_stride, col_stride))
    idx = torch.empty((c_examples, n_r, n_k), dtype=torch.int32)  # contiguous, unlike view's strides
    torch.sub(right.to(torch.int32)[:, :, None], view, out=idx)

    # Lattice points with a data value within the tolerance: resolve every (i, k) on them exactly.
    nearest = torch.round(y)
    slack = (tolerance + 8 * torch.finfo(torch.float64).eps * (1 + v.abs().amax(1)))[:, None]
    close = ((y - nearest).abs() * h[:, None] <= slack) & (nearest >= 0) & (nearest < size)
    if bool(close.any()):
        e, pos = torch.nonzero(close, as_tuple=True)
        point = nearest[e, pos].to(torch.int64)
        rows = torch.arange(n_r)
        rest = point[:, None] - rows[None, :] * row_stride  # = k * col_stride on the lattice
        ok = (rest % col_stride == 0) & (rest >= 0) & (rest < col_stride * n_k)
        which, row = torch.nonzero(ok, as_tuple=True)
        ex, col = e[which], rest[which, row] // col_stride
        exact_l = torch.where(
            col == n_k - 1,
            l_stop[ex, row],
            col.to(torch.float64) * l_step[ex, row] + l_start[ex, row],
        )
        cut = _count_below(v, ex, exact_l)
        idx[ex, row, col] = (right[ex, row] - packed[ex, cut]).to(torch.int32)
    return rank.index_select(0, idx.view(-1)).view(c_examples, -1).amax(dim=1)


def _exact_threshold(chunk: _Chunk, rank: torch.Tensor) -> torch.Tensor:
    """Best rank over every threshold, either side positive."""
    n, v = chunk.n, chunk.values
    # A threshold t sees c = #values < t; only cuts between distinct values are reachable.
    cut = torch.ones_like(v, dtype=torch.bool)
    cut[:, 1:] = v[:, 1:] != v[:, :-1]
    above_u = n - chunk.count_u[:, :-1]
    above_r = n - chunk.count_r[:, :-1]
    idx_u = torch.where(cut, above_u * (n + 1) + above_r, 0) + chunk.offset
    idx_r = torch.where(cut, above_r * (n + 1) + above_u, 0) + chunk.offset
    return torch.maximum(rank[idx_u].amax(dim=1), rank[idx_r].amax(dim=1))


def _exact_interval(chunk: _Chunk, rank: torch.Tensor) -> torch.Tensor:
    """Best rank over every interval with end points at data values, either side positive."""
    ones = torch.ones(chunk.values.shape[0], dtype=torch.bool)
    return torch.maximum(
        _exact_interval_one_side(chunk, ones, rank), _exact_interval_one_side(chunk, ~ones, rank)
    )


def _exact_interval_one_side(chunk: _Chunk, positive_is_u, rank) -> torch.Tensor:
    """Best rank over every interval, one side positive, searching only intervals that can win.

    Groups are the distinct values, in order. ε does not decrease when an attack gains a positive
    (P up) or loses a negative (Q down), as long as it stays clear of the discarded edges Q = 0
    and P = N. From any optimal interval, drop pure-negative end groups while a negative remains
    and add neighbouring pure-positive groups while P stays below N; the result is still optimal,
    and its left end is a group that (holds a positive, or is pure-negative right before one) and
    (comes first, or follows a group that is not pure-positive, or follows the first group holding
    a positive). The right end mirrors this. Only those candidate pairs are scored.
    """
    v = chunk.values
    c_examples, two_n = v.shape
    packed = chunk.packed(positive_is_u)
    pos_in = torch.where(positive_is_u[:, None], chunk.count_u, chunk.count_r)
    neg_in = torch.arange(two_n + 1) - pos_in
    start = torch.ones_like(v, dtype=torch.bool)
    start[:, 1:] = v[:, 1:] != v[:, :-1]
    # Group g covers sorted positions [g_start, g_end); pad to 2N groups with empty ones.
    group = start.cumsum(dim=1) - 1
    g_start = torch.full((c_examples, two_n + 1), two_n, dtype=torch.int64)
    g_start.scatter_(1, torch.where(start, group, two_n), torch.arange(two_n).expand(c_examples, -1))
    g_start[:, -1] = two_n  # also undoes the writes of non-start positions to this spare column
    g_end = g_start[:, 1:]
    g_start = g_start[:, :-1]
    gp = torch.gather(pos_in, 1, g_end) - torch.gather(pos_in, 1, g_start)
    gn = torch.gather(neg_in, 1, g_end) - torch.gather(neg_in, 1, g_start)
    has_p = gp > 0
    pure_p = has_p & (gn == 0)
    pure_n = (gp == 0) & (gn > 0)
    false = torch.zeros_like(has_p[:, :1])
    p_next = torch.cat([has_p[:, 1:], false], dim=1)
    p_prev = torch.cat([false, has_p[:, :-1]], dim=1)
    pure_p_prev = torch.cat([false, pure_p[:, :-1]], dim=1)
    pure_p_next = torch.cat([pure_p[:, 1:], false], dim=1)
    first_p = has_p & (torch.cumsum(has_p, dim=1) == 1)
    last_p = has_p & (torch.flip(torch.cumsum(torch.flip(has_p, [1]), dim=1), [1]) == 1)
    first_p_prev = torch.cat([false, first_p[:, :-1]], dim=1)
    last_p_next = torch.cat([last_p[:, 1:], false], dim=1)
    left_ok = (has_p | (pure_n & p_next)) & (~pure_p_prev | first_p_prev)
    right_ok = (has_p | (pure_n & p_prev)) & (~pure_p_next | last_p_next)

    # Non-candidates: a left end at the offset, a right end at 0, so every pair with one lands on
    # rank 0 (right + offset - left stays in [0, offset)).
    off = chunk.offset
    left_pack = torch.where(left_ok, torch.gather(packed, 1, g_start), off)
    right_pack = torch.where(right_ok, torch.gather(packed, 1, g_end) + off, off)
    # Move candidates to the front (stable), keep as many columns as the busiest example needs.
    n_left = max(int(left_ok.sum(dim=1).max()), 1)
    n_right = max(int(right_ok.sum(dim=1).max()), 1)
    order_l = torch.sort((~left_ok).to(torch.int8), dim=1, stable=True).indices[:, :n_left]
    order_r = torch.sort((~right_ok).to(torch.int8), dim=1, stable=True).indices[:, :n_right]
    left_pack = torch.gather(left_pack, 1, order_l).to(torch.int32)
    right_pack = torch.gather(right_pack, 1, order_r).to(torch.int32)
    idx = right_pack[:, None, :] - left_pack[:, :, None]
    return rank.index_select(0, idx.view(-1)).view(c_examples, -1).amax(dim=1)


# --------------------------------------------------------------------------------------------------
# Scoring


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 1


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[int]:
    """Run torch ops single-threaded; yield how many threads torch had (the number of workers).

    The kernels parallelize over chunks of examples instead: on a small shared machine, OpenMP
    threads that wait for each other at every op are far slower (17x measured on 2 busy cores) than
    independent workers that each keep one core busy. torch's thread count is process-wide, so
    concurrent callers share one reference count and the last one out restores it.
    """
    global _threads_users, _threads_before
    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
        workers = _threads_before
    try:
        yield workers
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)


def _epsilons(u: np.ndarray, r: np.ndarray, mode: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-example ε (clipped to [0, cap]) and winner codes for validated ``[N, E]`` arrays."""
    n, e = u.shape
    # The competition's sides: positive = larger median (ties: unlearned); the interval family's
    # positive = smaller range (ties: the other one); the peaky rule compares the two ranges.
    r_positive = np.median(r, axis=0) > np.median(u, axis=0)
    pos = np.where(r_positive, r, u)
    neg = np.where(r_positive, u, r)
    range_pos = pos.max(axis=0) - pos.min(axis=0)
    range_neg = neg.max(axis=0) - neg.min(axis=0)
    smallest = np.minimum(range_pos, range_neg)
    largest = np.maximum(range_pos, range_neg)
    with np.errstate(divide="ignore", invalid="ignore"):
        peaky = smallest / largest < PEAKY_RATIO  # 0 / 0 is NaN: two constant samples are not peaky
    peaky_is_pos = range_pos < range_neg
    peaky_is_u = peaky_is_pos != r_positive
    peaky_side = np.where(peaky_is_pos, pos, neg)
    peaky_min = peaky_side.min(axis=0)
    peaky_max = peaky_side.max(axis=0)
    rank, values = _rank_table(n, float(delta), mode == "bounded")

    todo = np.flatnonzero(~peaky)
    on_grid = mode != "exact"
    if on_grid:
        # The interval kernel needs one number of right thresholds per chunk: group by it.
        n_right = np.ceil(((peaky_max + INTERVAL_BUFFER) - ((peaky_min + smallest) - INTERVAL_BUFFER))
                          * THRESHOLDS_PER_UNIT)
        todo = todo[np.argsort(n_right[todo], kind="stable")]
        groups = np.split(todo, np.flatnonzero(np.diff(n_right[todo])) + 1)
        per_example = N_LEFT_THRESHOLDS * (N_LEFT_THRESHOLDS + 1)
    else:
        groups = [todo]
        per_example = (2 * n) ** 2 // 2
    size = max(1, _CHUNK_CELLS // per_example)
    chunks = [g[i : i + size] for g in groups for i in range(0, len(g), size)]

    def run(cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chunk = _Chunk.build(u[:, cols], r[:, cols])
        if on_grid:
            t = torch.from_numpy
            threshold = _compat_threshold(chunk, t(~r_positive[cols]), rank)
            interval = _compat_interval(
                chunk, t(peaky_is_u[cols]), t(smallest[cols]), t(peaky_min[cols]),
                t(peaky_max[cols]), rank,
            )
        else:
            threshold, interval = _exact_threshold(chunk, rank), _exact_interval(chunk, rank)
        return _ranks_to_int(threshold), _ranks_to_int(interval)

    best_threshold = np.zeros(e, dtype=np.int64)
    best_interval = np.zeros(e, dtype=np.int64)
    with _one_torch_thread() as workers:
        if workers > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                results = list(pool.map(run, chunks))
        else:
            results = [run(cols) for cols in chunks]
    for cols, (threshold, interval) in zip(chunks, results):
        best_threshold[cols] = threshold
        best_interval[cols] = interval

    best = np.maximum(best_threshold, best_interval)
    eps = np.minimum(values[best], EPSILON_CAP)
    winners = np.where(best_threshold >= best_interval, WINNER_THRESHOLD, WINNER_INTERVAL)
    winners = np.where(best == 0, WINNER_NONE, winners)
    eps[peaky] = EPSILON_CAP
    winners[peaky] = WINNER_PEAKY
    return eps, winners.astype(np.int8)


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
    u, r = _check_statistics(unlearned, retrained, mode, delta)
    eps, winners = _epsilons(u, r, mode, float(delta))
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
# Final score and its intervals


def _mean_accuracy(name: str, value) -> float:
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
    ra_u = _mean_accuracy("retain_acc_unlearned", retain_acc_unlearned)
    ta_u = _mean_accuracy("test_acc_unlearned", test_acc_unlearned)
    ra_r = _mean_accuracy("retain_acc_retrained", retain_acc_retrained)
    ta_r = _mean_accuracy("test_acc_retrained", test_acc_retrained)
    if ra_r == 0 or ta_r == 0:
        raise InputError("the retrained models' retain and test accuracies must be above 0")
    return f * (ra_u / ra_r) * (ta_u / ta_r)


@dataclass(frozen=True)
class ModelAccuracies:
    """Per-model accuracies, ``[N]`` each, subsampled together with the models by :func:`score_intervals`."""

    retain_unlearned: np.ndarray
    test_unlearned: np.ndarray
    retain_retrained: np.ndarray
    test_retrained: np.ndarray


@dataclass(frozen=True)
class Interval:
    """A point estimate, its standard error, and a normal confidence interval around it."""

    estimate: float
    low: float
    high: float
    standard_error: float


@dataclass(frozen=True)
class ScoreIntervals:
    """Confidence intervals for F and, when accuracies were given, for the final score.

    Attributes:
        forget_quality: the interval for E[F] at N models per side (see :func:`score_intervals`).
        final_score: the same for the final score, or None without accuracies.
        mode: the scoring mode.
        confidence: nominal coverage.
        n_models: N, models per side.
        subsample_size: m, models per side in each subsample (N - floor(3 N / 8); bounded mode:
            N - floor(N / 4)).
        n_subsamples: how many subsamples the standard errors rest on.
        seed: base seed of the subsamples.
    """

    forget_quality: Interval
    final_score: Interval | None
    mode: str
    confidence: float
    n_models: int
    subsample_size: int
    n_subsamples: int
    seed: int

    def to_dict(self) -> dict:
        """A JSON-ready summary."""
        out = {k: v for k, v in vars(self).items() if k not in ("forget_quality", "final_score")}
        out["forget_quality"] = vars(self.forget_quality)
        out["final_score"] = None if self.final_score is None else vars(self.final_score)
        return out


# Values (models x examples, per side) scored per call while subsampling: bounds memory.
_SUBSAMPLE_VALUES = 4_000_000


def _subsample_size(n_models: int, mode: str) -> int:
    """m = N - d models per subsample: d = floor(N / 4) in bounded mode, else floor(3 N / 8).

    See :func:`score_intervals` for the measurements behind both.
    """
    deleted = n_models // 4 if mode == "bounded" else (3 * n_models) // 8
    return n_models - deleted


def score_intervals(
    unlearned,
    retrained,
    *,
    mode: Mode = "compat",
    delta: float = DEFAULT_DELTA,
    accuracies: ModelAccuracies | None = None,
    n_subsamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> ScoreIntervals:
    """Confidence intervals for the forget quality F and the final score, by subsampling models.

    What the interval is for: F (and the final score) is a statistic of N unlearned and N
    retrained models, and its expectation depends on N (ε is biased upward at finite N, and the
    point bins depend on N), so there is no N-free "true F" to cover. The target is ``E[F_N]``:
    the expected F of N unlearned and N retrained models drawn afresh from the two distributions
    that produced them (new seeds of both runs), on these same E forget examples; likewise
    ``E[final score]``. The interval says how far the reported number could move if the 2N runs
    were repeated, not how far it is from a perfect unlearner's (compare with the ceiling for that).

    How: F_N is unbiased for that target by definition, so only its spread is estimated, by the
    delete-d jackknife over models (Shao & Wu 1989), i.e. subsampling without replacement with the
    finite-population correction. Each of ``n_subsamples`` subsamples keeps m = N - d distinct
    unlearned and m distinct retrained models (the two drawn independently; the accuracies of the
    same models go with them) and is scored with N's point bins, so that only the number of models
    changes; then ``SE^2 = m / (N - m) * Var(F_m)``, exact for a mean and consistent for
    non-smooth statistics such as quantiles (and this maximum over thresholds) while d / N stays
    away from 0 and 1. The interval is ``F_N +- z SE`` (normal: F averages E per-example points),
    clipped to [0, 1] (the final score: to >= 0).

    d is a finite-sample choice, measured as the ratio of the estimated SE (mean over 20 datasets,
    40 subsamples each) to the true SD of F_N (over 600 datasets), on the family of distributions
    of the coverage table below, N = 16 and 32, shifts of 0, 0.5 and 1 sd. Compat:
    d = floor(3 N / 8), ratios 1.10-1.39; half-sampling (d = N / 2) fell to 0.82 at N = 16
    without shift, and d = N / 4 gave 1.37-1.44, wider than needed. Bounded: d = floor(N / 4),
    ratios 1.05-1.79 (N = 32: shifts 0 and 0.5 only); with d = 3 N / 8 they fell to 0.63-0.98,
    because the Clopper-Pearson bounds loosen as models are deleted, which pushes F_m towards 1 and
    shrinks its spread faster than the 1 / m the correction assumes. Exact mode takes compat's d
    (measured only with d = N / 2, at N = 16 without shift: ratio 1.29).

    Why not the bootstrap: resampling models with replacement repeats models, and the threshold
    attack reads a repeated model's tied values as separation, so every replicate's ε ran high
    and F low (at N = 32, no shift: F = 0.196 with a "95 % interval" of [0.115, 0.159]).
    Subsamples without replacement hold only distinct, real models.

    Measured coverage of the nominal 95 % interval for E[F_N] (60 independent datasets per cell,
    E = 60 Gaussian statistics per model, per-example locations in [-4, 8] and spreads in
    [0.5, 3], the unlearned shifted by ``shift`` spreads; E[F_N] from 600 more datasets;
    60 subsamples each):

    ======== ==== ============== ============== ==================== ====================
    mode     N    F, shift 0     F, shift 0.5   final score, shift 0 final score, 0.5
    ======== ==== ============== ============== ==================== ====================
    compat   16   0.93           0.95           0.90                 0.95
    compat   32   0.97           0.97           0.95                 0.97
    bounded  16   1.00           0.97           1.00                 0.97
    bounded  32   0.97           0.97           1.00                 0.97
    ======== ==== ============== ============== ==================== ====================

    (Per-model accuracies for the final score: Gaussian, sd 0.01 around 0.90 / 0.85, the
    unlearned 0.02 per unit of shift lower.) Each cell is 60 datasets, so +-0.03 of Monte Carlo
    error.

    Args:
        unlearned, retrained, mode, delta: as :func:`forgetting_quality`; N >= 16 (a subsample
            keeps at least 10 models, and coverage was measured from N = 16).
        accuracies: per-model accuracies; when given, the final score gets an interval too.
        n_subsamples: subsamples (>= 2); subsample b is drawn from a generator seeded by
            ``(seed, b)``, so it does not depend on ``n_subsamples``. Each costs about as much as
            a :func:`forgetting_quality` call on m models.
        confidence: nominal coverage, in (0, 1).
        seed: base seed.

    Raises:
        InputError: as :func:`forgetting_quality`, N < 16, accuracies of the wrong shape or out of
            [0, 1], ``n_subsamples`` < 2, ``confidence`` outside (0, 1).

    References:
        Shao, Wu. A General Theory for Jackknife Variance Estimation. Annals of Statistics, 1989.
        Politis, Romano. Large Sample Confidence Regions Based on Subsamples under Minimal
        Assumptions. Annals of Statistics, 1994.
    """
    if isinstance(n_subsamples, bool) or int(n_subsamples) != n_subsamples or n_subsamples < 2:
        raise InputError(f"n_subsamples must be an integer >= 2; got {n_subsamples!r}")
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise InputError(f"confidence must be in (0, 1); got {confidence!r}")
    u, r = _check_statistics(unlearned, retrained, mode, delta)
    n, e = u.shape
    if n < 2 * MIN_MODELS:
        raise InputError(
            f"N = {n} models per side is too few for an interval: it scores subsamples of 5/8 "
            f"of the models or more, each needs at least {MIN_MODELS}, and coverage was measured "
            f"from N = {2 * MIN_MODELS}: use N >= {2 * MIN_MODELS}"
        )
    acc = None
    if accuracies is not None:
        acc = [np.asarray(a, dtype=np.float64) for a in vars(accuracies).values()]
        for name, a in zip(vars(accuracies), acc):
            if a.shape != (n,):
                raise InputError(f"accuracies.{name} must have shape ({n},) (one per model); got {a.shape}")
            _mean_accuracy(f"accuracies.{name}", a)

    m = _subsample_size(n, mode)
    b_total = int(n_subsamples)
    picks_u = np.empty((b_total, m), dtype=np.int64)
    picks_r = np.empty((b_total, m), dtype=np.int64)
    for b in range(b_total):
        rng = np.random.default_rng([int(seed), b])
        picks_u[b] = rng.permutation(n)[:m]
        picks_r[b] = rng.permutation(n)[:m]
    # Score many subsamples in one call: their examples side by side, [m, b * E].
    f_sub = np.empty(b_total)
    per_call = max(1, _SUBSAMPLE_VALUES // (m * e))
    for first in range(0, b_total, per_call):
        bs = range(first, min(first + per_call, b_total))
        su = np.concatenate([u[picks_u[b]] for b in bs], axis=1)
        sr = np.concatenate([r[picks_r[b]] for b in bs], axis=1)
        eps, _ = _epsilons(su, sr, mode, float(delta))
        f_sub[first : first + len(bs)] = epsilon_points(eps, n).reshape(len(bs), e).mean(axis=1)

    z = float(stats.norm.ppf(0.5 + confidence / 2))
    scale = math.sqrt(m / (n - m))
    f0 = float(epsilon_points(_epsilons(u, r, mode, float(delta))[0], n).mean())
    se_f = scale * float(np.std(f_sub, ddof=1))
    fq_interval = Interval(f0, max(0.0, f0 - z * se_f), min(1.0, f0 + z * se_f), se_f)
    fs_interval = None
    if acc is not None:
        ra_u, ta_u, ra_r, ta_r = acc
        s0 = final_score(f0, ra_u, ta_u, ra_r, ta_r)
        s_sub = [
            final_score(f_sub[b], ra_u[picks_u[b]], ta_u[picks_u[b]], ra_r[picks_r[b]], ta_r[picks_r[b]])
            for b in range(b_total)
        ]
        se_s = scale * float(np.std(s_sub, ddof=1))
        fs_interval = Interval(s0, max(0.0, s0 - z * se_s), s0 + z * se_s, se_s)
    return ScoreIntervals(
        forget_quality=fq_interval,
        final_score=fs_interval,
        mode=mode,
        confidence=float(confidence),
        n_models=n,
        subsample_size=m,
        n_subsamples=b_total,
        seed=int(seed),
    )
