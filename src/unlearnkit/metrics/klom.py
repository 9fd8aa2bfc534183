"""KLoM: the KL divergence of margins between unlearned and retrained models (Georgiev et al. 2024).

For every example, the margins of N unlearned models and of N retrained ("oracle") models are two
samples of one scalar; KLoM bins both on a shared grid and takes KL(unlearned ‖ retrained). A set
of examples (forget, retain, test) is summarised by the 95th percentile of the per-example values:
lower is better, 0 is indistinguishable. Like the forgetting-quality score it is biased at finite
N (two samples of one distribution give KL > 0), so read it next to the same number for a second,
independent set of retrained models.

The binning follows the reference implementation of the data-unlearning benchmark that introduced
KLoM as an evaluation (``compute_binned_KL_div`` / ``kl_from_margins`` in
RoyRin/data-unlearning-bench, ``unlearning_bench/eval.py``), step by step:

1. both samples are clipped to ``[-clip, clip]`` (100);
2. ``n_bins + 1`` (21) edges ``np.linspace(lo, hi, n_bins + 1)`` over the two samples' combined
   range, or over ``[lo, lo + 1]`` when every value is the same;
3. each value goes to bin ``k`` when ``edge[k] <= value < edge[k + 1]`` (``np.digitize``): a value
   equal to the combined maximum lands past the last bin and is left out of its histogram (so at
   N = 8 one model in eight can be missing from one side); each histogram is normalised by the
   values it kept;
4. the retrained probabilities are floored at ``floor`` (1e-5) in bins where the unlearned ones
   are positive, then (as ``scipy.stats.entropy`` does) both histograms are renormalised to sum to
   1, and KL(unlearned ‖ retrained) = Σ p log(p / q).

One deliberate difference: where every unlearned value sits at the combined maximum (all left out
in step 3), the reference divides 0 by 0 and returns NaN, which then makes the 95th percentile NaN.
Here the maximum is counted in the last bin instead, for both samples of that example only; every
other example gets the reference's number.

References:
    Georgiev, Rinberg, Park, Garg, Ilyas, Madry, Neel. Attribute-to-Delete: Machine Unlearning via
    Datamodel Matching, 2024.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from unlearnkit.errors import InputError
from unlearnkit.metrics.forgetting import checked_logits, model_matrix

#: The reference's defaults.
N_BINS = 20
CLIP = 100.0
FLOOR = 1e-5
PERCENTILE = 95.0

# Values x bins compared at once: bounds memory to about 100 MB.
_CHUNK_CELLS = 50_000_000


def margins(logits, labels) -> np.ndarray:
    """The correct-class margin: the label's logit minus the log-sum-exp of the other logits.

    This is the datamodels papers' margin, ``log(p_y / (1 - p_y))``, and what the reference code
    computes (``logits_correct - logits_other.logsumexp()``); it is the same number as
    :func:`~unlearnkit.metrics.forgetting.logit_scaled_confidence` without that statistic's
    1e-45 guard (which saturates it at +-103.6). Computed in float64 from a copy of the logits
    (the reference computes in the model's dtype, fp16 under autocast).

    Args:
        logits: ``[..., C]`` class logits (numpy array, torch CPU tensor or nested lists).
        labels: integer labels broadcastable to ``logits.shape[:-1]``, each in ``[0, C)``.

    Returns:
        float64 array of shape ``logits.shape[:-1]``.

    Raises:
        InputError: fewer than two classes, non-finite logits, non-integer or out-of-range labels.
    """
    z, y = checked_logits(logits, labels)
    y = y[..., None]
    correct = np.take_along_axis(z, y, axis=-1)[..., 0]
    np.put_along_axis(z, y, -np.inf, axis=-1)
    top = z.max(axis=-1, keepdims=True)
    other = top[..., 0] + np.log(np.exp(z - top).sum(axis=-1))
    return correct - other


@dataclass(frozen=True, eq=False)
class KLoMResult:
    """Per-example KL divergence of margins and its 95th percentile.

    Attributes:
        per_example: ``[E]`` KL(unlearned ‖ retrained) of each example, >= 0.
        p95: the 95th percentile of ``per_example`` (``np.percentile``, linear interpolation), the
            number the KLoM papers report. Lower is better.
        n_unlearned: unlearned models (rows of the first input).
        n_retrained: retrained models.
        n_examples: E.
        n_bins, clip, floor: the binning used.
        n_repaired: examples where the reference would have returned NaN (see the module notes).
    """

    per_example: np.ndarray
    p95: float
    n_unlearned: int
    n_retrained: int
    n_examples: int
    n_bins: int
    clip: float
    floor: float
    n_repaired: int

    def to_dict(self) -> dict:
        """A JSON-ready summary (the per-example values as a list)."""
        out = {k: v for k, v in vars(self).items() if k != "per_example"}
        out["per_example"] = self.per_example.tolist()
        return out


def _check(name: str, x) -> np.ndarray:
    a = model_matrix(name, x)
    if a.shape[0] < 2:
        raise InputError(f"{name} needs at least 2 models (rows) to form a distribution; got {a.shape[0]}")
    if np.isnan(a).any():
        i, j = np.argwhere(np.isnan(a))[0]
        raise InputError(f"{name} has NaN values, the first at model {i}, example {j}")
    return a


def klom(
    unlearned_margins,
    retrained_margins,
    *,
    n_bins: int = N_BINS,
    clip: float = CLIP,
    floor: float = FLOOR,
) -> KLoMResult:
    """KLoM of unlearned models against retrained ones: per-example binned KL, and its 95th percentile.

    Args:
        unlearned_margins: ``[N_u, E]`` margins (:func:`margins`) of E examples under N_u unlearned
            models.
        retrained_margins: ``[N_r, E]`` the same under N_r retrained models; example i is column i
            in both. N_u and N_r may differ (each histogram is normalised); the reference uses
            equal N.
        n_bins: bins of the shared grid (reference: 20).
        clip: margins are clipped to ``[-clip, clip]`` first (reference: 100); +-inf clips too.
        floor: the retrained probability's floor where the unlearned one is positive (reference:
            1e-5); it caps one bin's contribution near ``log(1 / floor)``.

    Returns:
        The per-example values and their 95th percentile.

    Raises:
        InputError: arrays that are not 2-D, columns that do not match, fewer than two models on a
            side, E = 0, NaN, or a non-positive ``n_bins``, ``clip`` or ``floor``.
    """
    if isinstance(n_bins, bool) or int(n_bins) != n_bins or n_bins < 1:
        raise InputError(f"n_bins must be a positive integer; got {n_bins!r}")
    if not (isinstance(clip, (int, float)) and clip > 0 and np.isfinite(clip)):
        raise InputError(f"clip must be a positive finite number; got {clip!r}")
    if not (isinstance(floor, (int, float)) and 0 < floor < 1):
        raise InputError(f"floor must be a number in (0, 1); got {floor!r}")
    u = _check("unlearned_margins", unlearned_margins)
    r = _check("retrained_margins", retrained_margins)
    if u.shape[1] != r.shape[1]:
        raise InputError(
            f"unlearned_margins has {u.shape[1]} examples (columns) but retrained_margins has "
            f"{r.shape[1]}; example i must be column i of both"
        )
    e = u.shape[1]
    if e == 0:
        raise InputError("no examples: the arrays have E = 0 columns")
    n_bins = int(n_bins)
    u = np.clip(u, -clip, clip)
    r = np.clip(r, -clip, clip)
    per_example = np.empty(e)
    repaired = 0
    step = max(1, _CHUNK_CELLS // ((u.shape[0] + r.shape[0]) * (n_bins + 1)))
    for start in range(0, e, step):
        cols = slice(start, start + step)
        values, fixed = _binned_kl(u[:, cols], r[:, cols], n_bins, float(floor))
        per_example[cols] = values
        repaired += fixed
    per_example.setflags(write=False)
    return KLoMResult(
        per_example=per_example,
        p95=float(np.percentile(per_example, PERCENTILE)),
        n_unlearned=u.shape[0],
        n_retrained=r.shape[0],
        n_examples=e,
        n_bins=n_bins,
        clip=float(clip),
        floor=float(floor),
        n_repaired=repaired,
    )


def _binned_kl(u: np.ndarray, r: np.ndarray, n_bins: int, floor: float) -> tuple[np.ndarray, int]:
    """Per-column KL(u ‖ r) of clipped ``[N, C]`` samples, and how many columns were repaired."""
    lo = np.minimum(u.min(axis=0), r.min(axis=0))
    hi = np.maximum(u.max(axis=0), r.max(axis=0))
    hi = np.where(lo >= hi, lo + 1.0, hi)
    edges = np.linspace(lo, hi, n_bins + 1, axis=1)  # [C, n_bins + 1], bit for bit per column

    def counts(x: np.ndarray, closed_top: np.ndarray) -> np.ndarray:
        # np.digitize: bin k (1-based) holds edge[k-1] <= x < edge[k]; n_bins + 1 is past the end.
        k = (x[:, :, None] >= edges[None, :, :]).sum(axis=2)  # [N, C]
        k = np.where(closed_top[None, :] & (k == n_bins + 1), n_bins, k)
        flat = (np.arange(x.shape[1]) * (n_bins + 2) + k).ravel()
        c = np.bincount(flat, minlength=x.shape[1] * (n_bins + 2)).reshape(x.shape[1], n_bins + 2)
        return c[:, 1 : n_bins + 1]

    reference = np.zeros(u.shape[1], dtype=bool)
    p_counts = counts(u, reference)
    # Every unlearned value at the combined maximum: the reference's 0 / 0. Close the last bin.
    repair = p_counts.sum(axis=1) == 0
    if repair.any():
        p_counts = np.where(repair[:, None], counts(u, repair), p_counts)
    q_counts = counts(r, repair)
    p = p_counts / p_counts.sum(axis=1, keepdims=True)
    q_total = q_counts.sum(axis=1, keepdims=True)
    q = np.divide(q_counts, q_total, out=np.zeros(q_counts.shape), where=q_total > 0)
    q = np.where(p > 0, np.maximum(q, floor), q)
    return stats.entropy(p, q, axis=1), int(repair.sum())
