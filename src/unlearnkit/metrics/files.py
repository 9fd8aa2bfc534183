"""Score statistics saved elsewhere: ``.npy`` / ``.npz`` loading and the ``unlearnkit metric`` command.

The official evaluation code saves the retrained models' confidences as ``retrain_confs.npz`` with
key ``retrained_confs``; any ``[N models, E examples]`` array in a ``.npy`` file, or under a key of
an ``.npz`` file, works the same way.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from unlearnkit.errors import InputError
from unlearnkit.metrics.forgetting import (
    MODES,
    ForgettingQualityResult,
    bootstrap_intervals,
    forgetting_quality,
)
from unlearnkit.store import fingerprint, provenance, read_npz, write_json


def load_statistics(path: str | Path, key: str | None = None) -> np.ndarray:
    """Read one array from a ``.npy`` file, or from an ``.npz`` file by key.

    An ``.npz`` holding a single array needs no key. Pickled (object) arrays are refused: loading
    them would run code from the file.

    Raises:
        InputError: a missing or unreadable file, another suffix, a key for a ``.npy`` file, an
            ``.npz`` with several arrays and no key, or a key it does not hold (the error lists the
            keys it does hold).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InputError(f"{p}: expected a .npy or .npz file")
    if not p.is_file():
        raise InputError(f"{p}: no such file")
    try:
        if suffix == ".npy":
            if key is not None:
                raise InputError(f"{p}: a key ({key!r}) only applies to .npz files")
            return np.load(p, allow_pickle=False)
        arrays = read_npz(p)
    except InputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InputError(f"{p}: cannot read it as a numpy file ({exc})") from None
    if key is None:
        if len(arrays) != 1:
            listing = ", ".join(arrays) if arrays else "none"
            raise InputError(f"{p} holds {len(arrays)} arrays ({listing}); choose one with a key")
        key = next(iter(arrays))
    elif key not in arrays:
        raise InputError(f"{p} has no array {key!r}; it holds: {', '.join(arrays) or 'none'}")
    return arrays[key]


def _describe(path: str, key: str | None, a: np.ndarray) -> dict:
    return {"path": str(path), "key": key, "shape": list(a.shape), "fingerprint": fingerprint(a)}


def run_metric_command(
    unlearned: str,
    retrained: str,
    *,
    mode: str,
    delta: float,
    json_out: str | None,
    unlearned_key: str | None,
    retrained_key: str | None,
    bootstrap: int,
    seed: int,
    console: Console,
) -> ForgettingQualityResult:
    """Load two statistics files, score them, print a report, and optionally write JSON.

    The report gives F, the ε histogram by bin with the points each bin earns, which rule won how
    many examples, a bootstrap interval when ``bootstrap > 0`` (that many replicates, seeded by
    ``seed``), and the time taken. ``json_out`` receives the same and the per-example ε, written
    atomically, with provenance.

    Raises:
        InputError: bad files, keys, shapes or values, as :func:`load_statistics` and
            :func:`~unlearnkit.metrics.forgetting.forgetting_quality` raise them.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise InputError(f"bootstrap must be a non-negative integer; got {bootstrap!r}")
    t0 = time.perf_counter()
    u = load_statistics(unlearned, unlearned_key)
    r = load_statistics(retrained, retrained_key)
    t1 = time.perf_counter()
    result = forgetting_quality(u, r, mode=mode, delta=delta)
    t2 = time.perf_counter()
    intervals = None
    if bootstrap > 0:
        intervals = bootstrap_intervals(u, r, mode=mode, delta=delta, n_boot=bootstrap, seed=seed)
    t3 = time.perf_counter()
    timing = {"load_s": t1 - t0, "score_s": t2 - t1, "bootstrap_s": t3 - t2}

    console.print(
        f"[bold]forgetting quality F = {result.forget_quality:.4f}[/bold]  (mode {mode}, "
        f"N = {result.n_models} models per side, E = {result.n_examples} examples, δ = {delta:g})"
    )
    if intervals is not None:
        fq = intervals.forget_quality
        console.print(
            f"bootstrap {100 * intervals.confidence:g} % interval for F: [{fq.low:.4f}, {fq.high:.4f}]"
            f"  ({intervals.n_boot} replicates, seed {seed}; replicate mean {fq.replicate_mean:.4f})"
        )
        if not fq.low <= fq.estimate <= fq.high:
            console.print(
                "note: the interval excludes the estimate. Resampling models duplicates them, which "
                "raises ε, so the replicates run low: read the interval as the estimator's spread."
            )
    table = Table(title="ε by bin")
    table.add_column("ε bin", justify="left")
    table.add_column("points", justify="right")
    table.add_column("examples", justify="right")
    table.add_column("share", justify="right")
    for bar in result.histogram():
        closing = "]" if bar.points == 0 else ")"
        table.add_row(
            f"[{bar.lower:g}, {bar.upper:g}{closing}",
            f"{bar.points:g}",
            str(bar.count),
            f"{100 * bar.count / result.n_examples:.1f} %",
        )
    console.print(table)
    wins = ", ".join(f"{name} {count}" for name, count in result.winner_counts().items() if count)
    console.print(f"examples won by: {wins}")
    console.print(
        f"loaded in {timing['load_s']:.2f} s, scored in {timing['score_s']:.2f} s"
        + (f", bootstrap in {timing['bootstrap_s']:.2f} s" if intervals is not None else "")
    )

    if json_out is not None:
        record = {
            "metric": "forgetting_quality",
            "result": result.to_dict(),
            "bootstrap": None
            if intervals is None
            else {
                "n_boot": intervals.n_boot,
                "seed": intervals.seed,
                "confidence": intervals.confidence,
                "forget_quality": vars(intervals.forget_quality),
            },
            "inputs": {
                "unlearned": _describe(unlearned, unlearned_key, u),
                "retrained": _describe(retrained, retrained_key, r),
            },
            "timing": timing,
            "provenance": provenance(),
        }
        write_json(json_out, record)
        console.print(f"wrote {json_out}")
    return result
