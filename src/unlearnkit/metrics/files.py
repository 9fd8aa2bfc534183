"""Score statistics saved elsewhere: ``.npy`` / ``.npz`` loading and the ``unlearnkit metric`` command.

The official evaluation code saves the retrained models' confidences as ``retrain_confs.npz`` with
key ``retrained_confs``; any ``[N models, E examples]`` array in a ``.npy`` file, or under a key of
an ``.npz`` file, works the same way.
"""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path
from typing import IO

import numpy as np
from rich.console import Console
from rich.table import Table

from unlearnkit.errors import InputError
from unlearnkit.metrics.forgetting import MODES, ForgettingQualityResult, forgetting_quality
from unlearnkit.metrics.intervals import score_intervals
from unlearnkit.io import fingerprint, provenance, read_npz, write_json

_NPY_MAGIC = b"\x93NUMPY"


def _check_npy_header(fp: IO[bytes], size: int, where: str) -> None:
    """Check a ``.npy`` stream's magic and header before anything is allocated.

    ``size`` is the stream's length in bytes. Refuses a file that does not start with the ``.npy``
    magic, a header numpy cannot parse, object arrays (they would need unpickling), complex,
    string or structured dtypes, and a header whose shape needs more bytes than the file holds
    (a forged or truncated header would otherwise end in a MemoryError or a short read).
    """
    start = fp.read(len(_NPY_MAGIC))
    if start != _NPY_MAGIC:
        raise InputError(
            f"{where}: not a .npy file (it does not start with numpy's magic bytes; starts with "
            f"{start[:16]!r})"
        )
    fp.seek(0)
    try:
        version = np.lib.format.read_magic(fp)
        # Versions 2.0 and 3.0 share the header layout (3.0 only allows UTF-8 field names).
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        else:
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    except ValueError as exc:
        raise InputError(f"{where}: not a readable .npy header ({exc})") from None
    if dtype.hasobject:
        raise InputError(
            f"{where}: holds Python objects (dtype {dtype}); loading it would run code from the file"
        )
    if dtype.kind not in "biuf":
        raise InputError(
            f"{where}: has dtype {dtype}; the statistics must be real numbers (integer or float)"
            + (" - the imaginary part would be silently dropped" if dtype.kind == "c" else "")
        )
    claimed = dtype.itemsize * int(np.prod(shape, dtype=object))
    available = size - fp.tell()
    if claimed > available:
        raise InputError(
            f"{where}: its header claims shape {shape} of {dtype} ({claimed:,} bytes), but the file "
            f"holds only {available:,} bytes of data: a corrupt, truncated or forged file"
        )


def _check_npz(p: Path) -> None:
    """Check every ``.npy`` member of an ``.npz`` archive, as :func:`_check_npy_header`."""
    try:
        with zipfile.ZipFile(p) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as fp:
                        _check_npy_header(fp, info.file_size, f"{p}, array {info.filename[:-4]!r}")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InputError(f"{p}: cannot read it as an .npz (zip) file ({exc})") from None


def load_statistics(path: str | Path, key: str | None = None) -> np.ndarray:
    """Read one array from a ``.npy`` file, or from an ``.npz`` file by key.

    An ``.npz`` holding a single array needs no key. The header is checked before anything is
    read: pickled (object) arrays are refused (loading them would run code from the file), as are
    complex, string and structured dtypes, and headers that claim more data than the file holds.

    Raises:
        InputError: a missing or unreadable file, another suffix, a file without numpy's magic
            bytes, a bad dtype, a header whose shape the file cannot hold, a key for a ``.npy``
            file, an ``.npz`` with several arrays and no key, or a key it does not hold (the error
            lists the keys it does hold).
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
            with open(p, "rb") as fp:
                _check_npy_header(fp, os.fstat(fp.fileno()).st_size, str(p))
            return np.load(p, allow_pickle=False)
        _check_npz(p)
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


def _check_output_path(path: str | Path) -> Path:
    """Refuse an output file path that cannot be written, before any work is done.

    Missing parent folders are fine (they are created when writing); a path that is a directory,
    or whose nearest existing ancestor is not a writable directory, is not.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(
            f"{p} is a directory; give a file path for the JSON output, e.g. {p / 'metric.json'}"
        )
    ancestor = p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"cannot write {p}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {p}: the directory {ancestor} is not writable")
    return p


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
    seed: int,
    console: Console,
    intervals: int = 0,
) -> ForgettingQualityResult:
    """Load two statistics files, score them, print a report, and optionally write JSON.

    The report gives F, the ε histogram by bin with the points each bin earns, which rule won how
    many examples, a 95 % confidence interval for E[F] when ``intervals > 0`` (from that many
    subsamples of the models, seeded by ``seed``; see
    :func:`~unlearnkit.metrics.intervals.score_intervals`), and the time taken. ``json_out``
    receives the same and the per-example ε, written atomically, with provenance; it is checked
    before anything is loaded or computed.

    Raises:
        InputError: bad options, an output path that cannot be written, bad files, keys, shapes
            or values, as :func:`load_statistics` and
            :func:`~unlearnkit.metrics.forgetting.forgetting_quality` raise them.
    """
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if isinstance(intervals, bool) or int(intervals) != intervals or intervals < 0 or intervals == 1:
        raise InputError(f"intervals must be 0 (none) or a number of subsamples >= 2; got {intervals!r}")
    if json_out is not None:
        _check_output_path(json_out)
    t0 = time.perf_counter()
    u = load_statistics(unlearned, unlearned_key)
    r = load_statistics(retrained, retrained_key)
    t1 = time.perf_counter()
    result = forgetting_quality(u, r, mode=mode, delta=delta)
    t2 = time.perf_counter()
    spread = None
    if intervals > 0:
        spread = score_intervals(u, r, mode=mode, delta=delta, n_subsamples=int(intervals), seed=seed)
    t3 = time.perf_counter()
    timing = {"load_s": t1 - t0, "score_s": t2 - t1, "intervals_s": t3 - t2}

    console.print(
        f"[bold]forgetting quality F = {result.forget_quality:.4f}[/bold]  (mode {mode}, "
        f"N = {result.n_models} models per side, E = {result.n_examples} examples, δ = {delta:g})"
    )
    if spread is not None:
        fq = spread.forget_quality
        console.print(
            f"{100 * spread.confidence:g} % interval for E[F] at N = {spread.n_models}: "
            f"[{fq.low:.4f}, {fq.high:.4f}]  (standard error {fq.standard_error:.4f}, from "
            f"{spread.n_subsamples} subsamples of {spread.subsample_size} models per side, seed {seed})"
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
        + (f", intervals in {timing['intervals_s']:.2f} s" if spread is not None else "")
    )

    if json_out is not None:
        record = {
            "metric": "forgetting_quality",
            "result": result.to_dict(),
            "intervals": None if spread is None else spread.to_dict(),
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
