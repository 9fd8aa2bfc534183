"""The (ε, δ) score without new retrains: a prepared pool's shadows as approximate references.

The competition's score compares N unlearned models with N models retrained without the forget
set S, example by example. A prepared pool (docs/prepared_models.md) already holds, for every
training example, models that never saw it: the shadows whose leave-out held its person. Their
confidences on a forget example, level-corrected on the validation split exactly as
``shadow_matching`` corrects its targets, give a location and a spread per example; N approximate
reference confidences per example are drawn from them (normal, from a fixed seed) and the N runs
are scored against those with the same ``forgetting_quality``.

They are shadows, not exact retrains: each was trained without a share of the people (1/8 by
default) rather than without S alone, each example has only K x share of them, and the draws
are normal. How far the approximate score sits from the exact one is measured on benches with both
(benchmarks/shadow_audit.py; docs/prepared_models.md). When the method being audited took its own
targets from the same pool, the audit uses the other shadows: :func:`split_pool` gives the method
the first half and the audit the second (the structured design makes each half a complete pool).
"""

from __future__ import annotations

import numpy as np
import torch

from unlearnkit.errors import InputError
from unlearnkit.methods.base import UnlearnData
from unlearnkit.methods.shadow_matching import ShadowMatchingConfig, shadow_targets
from unlearnkit.results.pool import ShadowPool
from unlearnkit.engine.seeding import derive_seed, torch_generator


def half_size(out: np.ndarray, folder: object) -> int:
    """The size of each half of a pool whose leave-out design is ``out`` (bool [K, n_train]): K // 2,
    where both halves leave every left-out example out at least once; else InputError naming ``folder``."""
    half = out.shape[0] // 2
    left_out = out.any(0)
    if half < 2 or not all((out[part].any(0) | ~left_out).all() for part in (slice(None, half), slice(half, None))):
        raise InputError(f"pool {folder}: {out.shape[0]} shadows cannot be split into two halves that each leave "
                         "every person out at least once; prepare at least 2 / leave-out shadows")
    return half


def split_pool(pool: ShadowPool) -> tuple[ShadowPool, ShadowPool]:
    """(the first half, the second half) of ``pool``: targets for a prepared method, references for its audit."""
    half = half_size(pool.out, pool.folder)
    return pool.select(range(half)), pool.select(range(half, pool.size))


def shadow_reference_confidences(pool: ShadowPool, original_val: torch.Tensor, data: UnlearnData, n: int, *,
                                 seed: int = 0, cfg: ShadowMatchingConfig | None = None) -> np.ndarray:
    """[n, |S|] approximate references' confidences (the score's statistic) on ``data.forget``.

    Args:
        pool: The shadows to read (the audit's half, see :func:`split_pool`).
        original_val: The original's logits on the validation split, for the level correction.
        data: The request's data.
        n: Approximate references to draw (the number of unlearned runs scored against them).
        seed: Seeds the draws.
        cfg: The level correction and spread shrinkage to use (default: shadow_matching's defaults).
    """
    targets = shadow_targets(pool, original_val, data, cfg or ShadowMatchingConfig(pool=str(pool.folder)))
    z = torch.randn(n, len(targets.location), generator=torch_generator(derive_seed(seed, "shadow_audit")),
                    dtype=torch.float64)
    return (targets.location + targets.spread * z).numpy()


__all__ = ["half_size", "shadow_reference_confidences", "split_pool"]
