"""Explicit, derived randomness: every model's seed is a function of (run seed, model index, purpose)."""

from __future__ import annotations

import zlib

import numpy as np
import torch


def derive_seed(*keys: int | str) -> int:
    """A 63-bit seed derived from ``keys``; stable across processes, machines and versions.

    ``derive_seed(run_seed, k, "train")`` is the seed of model k of a run, so seed 17 of a 512-seed
    run equals seed 17 run alone.
    """
    words = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    if any(w < 0 for w in words):
        raise ValueError(f"seeds must be non-negative, got {keys}")
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def parse_seeds(text: str) -> list[int]:
    """Parse a seed range: ``"0:8"`` (0..7), ``"3"``, or ``"1,5,9"``."""
    from unlearnkit.errors import InputError

    text = text.strip()
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":", 1))
            seeds = list(range(lo, hi))
        else:
            seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--seeds {text!r}: expected START:STOP (e.g. 0:8), a number, or a list like 1,5,9") from None
    if not seeds:
        raise InputError(f"--seeds {text!r} selects no seeds; expected START:STOP with STOP > START")
    if min(seeds) < 0:
        raise InputError(f"--seeds {text!r}: seeds must be non-negative")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds {text!r} repeats a seed")
    return seeds
