"""The per-example ε of the forgetting-quality score: every attack's ε tabulated over its counts.

For every forget example the score attacks the N unlearned values against the N retrained values
with two families of decision rules (:mod:`unlearnkit.metrics.attacks`), turns each attack's
false-positive and false-negative rates into an ε (Kairouz et al.'s bound) and keeps the largest;
:func:`example_epsilons` does this for every example at once.
:mod:`unlearnkit.metrics.forgetting` turns the ε into points and the score.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import numpy as np
import torch
from scipy import stats

from unlearnkit.errors import InputError
from unlearnkit.metrics.attacks import (
    INTERVAL_BUFFER,
    N_LEFT_THRESHOLDS,
    THRESHOLDS_PER_UNIT,
    Chunk,
    compat_interval,
    compat_threshold,
    exact_interval,
    exact_threshold,
)

DEFAULT_DELTA = 1e-5
EPSILON_CAP = 50.0
PEAKY_RATIO = 0.01
CLOPPER_PEARSON_LEVEL = 0.95

#: Names of the codes in :attr:`~unlearnkit.metrics.forgetting.ForgettingQualityResult.winners`.
WINNER_NAMES: tuple[str, ...] = ("none", "peaky", "threshold", "interval")
WINNER_NONE, WINNER_PEAKY, WINNER_THRESHOLD, WINNER_INTERVAL = range(4)

# Work per chunk of examples, in grid cells / interval pairs: bounds memory to a few hundred MB.
_CHUNK_CELLS = 2_000_000
# Rank tables with at most this many distinct ε values are stored as int16 (see rank_table).
_INT16_RANKS = 65536


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
def rank_table(n_models: int, delta: float, bounded: bool) -> tuple[torch.Tensor, np.ndarray]:
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


def ranks_to_int(best: torch.Tensor) -> np.ndarray:
    """Undo the int16 shift of :func:`rank_table`."""
    out = best.numpy().astype(np.int64)
    return out + 32768 if best.dtype == torch.int16 else out


# --------------------------------------------------------------------------------------------------
# The best attack of every example


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


def example_epsilons(u: np.ndarray, r: np.ndarray, mode: str, delta: float) -> tuple[np.ndarray, np.ndarray]:
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
    rank, values = rank_table(n, float(delta), mode == "bounded")

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
        chunk = Chunk.build(u[:, cols], r[:, cols])
        if on_grid:
            t = torch.from_numpy
            threshold = compat_threshold(chunk, t(~r_positive[cols]), rank)
            interval = compat_interval(
                chunk, t(peaky_is_u[cols]), t(smallest[cols]), t(peaky_min[cols]),
                t(peaky_max[cols]), rank,
            )
        else:
            threshold, interval = exact_threshold(chunk, rank), exact_interval(chunk, rank)
        return ranks_to_int(threshold), ranks_to_int(interval)

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
