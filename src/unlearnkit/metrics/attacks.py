"""The two attack families of the forgetting-quality score, evaluated over chunks of examples at once.

Internal machinery of :mod:`unlearnkit.metrics.epsilon`: each kernel takes a :class:`Chunk` (both
samples of C examples merged, sorted and counted) and a rank table
(:func:`~unlearnkit.metrics.epsilon.rank_table`) and returns, per example, the rank of its best
attack of one family. ``compat_*`` follow the competition's threshold grids (see
``shared/spec/forgetting-quality.md``); ``exact_*`` take every threshold and interval with end
points at data values, in both orientations.

How it is fast: ε depends on an attack only through its two counts (P positives and Q negatives
predicted positive), so all (N + 1)^2 values are tabulated once (:mod:`~unlearnkit.metrics.epsilon`),
ranked, and every attack becomes an integer look-up. Counts only change at data values: the
threshold family is evaluated once per data value (is there a grid point between it and its
neighbour? a binary search in the float32 grid, which torch itself makes, one call per example), and
the interval family's ~400 x 400 grid per example turns out to lie on an integer lattice up to
rounding, so "how many values lie below each left threshold" is one cumulative count read through a
strided view, with exact float64 fix-ups where a data value sits within rounding distance of a
lattice point. Everything else is batched over chunks of examples (no Python loop over examples),
and chunks run on parallel workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

THRESHOLDS_PER_UNIT = 100
INTERVAL_BUFFER = 2.0
N_LEFT_THRESHOLDS = math.ceil(2 * INTERVAL_BUFFER * THRESHOLDS_PER_UNIT)  # 400, as the competition


@dataclass(frozen=True)
class Chunk:
    """Both samples of C examples merged and sorted, with running counts per side."""

    values: torch.Tensor  # [C, 2N] float64, sorted ascending
    count_u: torch.Tensor  # [C, 2N + 1] int64: unlearned values among the first c sorted values
    count_r: torch.Tensor  # [C, 2N + 1] int64: retrained values among the first c sorted values
    n: int

    @classmethod
    def build(cls, u: np.ndarray, r: np.ndarray) -> "Chunk":
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


def compat_threshold(chunk: Chunk, positive_is_u: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
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


def compat_interval(chunk: Chunk, peaky_is_u, width, peaky_min, peaky_max, rank) -> torch.Tensor:
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
    """The interval kernel's fast path: see :func:`compat_interval`."""
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


def exact_threshold(chunk: Chunk, rank: torch.Tensor) -> torch.Tensor:
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


def exact_interval(chunk: Chunk, rank: torch.Tensor) -> torch.Tensor:
    """Best rank over every interval with end points at data values, either side positive."""
    ones = torch.ones(chunk.values.shape[0], dtype=torch.bool)
    return torch.maximum(
        _exact_interval_one_side(chunk, ones, rank), _exact_interval_one_side(chunk, ~ones, rank)
    )


def _exact_interval_one_side(chunk: Chunk, positive_is_u, rank) -> torch.Tensor:
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
