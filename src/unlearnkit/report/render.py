"""The report's entry points: write a bench's report.html and report.md, and compare benches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnkit.errors import InputError
from unlearnkit.io import write_bytes
from unlearnkit.report.bench_report import BenchReport, bench_report, read_bench_report
from unlearnkit.report.html import compare_html, render_html
from unlearnkit.report.markdown import compare_markdown, report_markdown
from unlearnkit.results.leaderboard import Leaderboard


def write_report(out_dir: str | Path, board: Leaderboard | None = None) -> list[Path]:
    """Write ``report.html`` and ``report.md`` of the bench in ``out_dir``; returns their paths.

    Args:
        out_dir: The bench folder.
        board: Its leaderboard, when the caller has it (the command that just scored the bench);
            None reads ``leaderboard.json``.

    Raises:
        InputError: ``out_dir`` holds no finished bench.
    """
    out = Path(out_dir)
    report = read_bench_report(out) if board is None else bench_report(out, board)
    # Both rendered before either is written: a failure leaves the old report, not half a new one.
    page, text = render_html(report), report_markdown(report)
    paths = [out / "report.html", out / "report.md"]
    write_bytes(paths[0], page.encode())
    write_bytes(paths[1], text.encode())
    return paths


# Fields of bench.json that must agree for two benches to be compared (their setting), and those
# shown when they differ (how each was run).
_SAME = ("results_version", "dataset_fingerprint", "forget_fingerprint")
_SHOWN = ("seeds", "budget", "ceiling", "threads")


@dataclass(frozen=True)
class Comparison:
    """Several benches over one setting, side by side (:func:`compare_benches`)."""

    markdown: str
    html: str


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def setting_differences(benches: list[dict[str, Any]]) -> list[str]:
    """The bench.json fields (dotted) on which ``benches`` disagree: the setting and the fingerprints."""
    flats = [{**_flat(b.get("setting", {}), "setting"), **{k: b.get(k) for k in _SAME}} for b in benches]
    keys = sorted(set().union(*flats))
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


def compare_benches(dirs: Sequence[str | Path]) -> Comparison:
    """Several finished benches over the same setting, side by side (Markdown and HTML).

    Raises:
        InputError: fewer than two folders, a folder without a finished bench, or benches whose
            settings differ (each differing field is named, with its value in every bench).
    """
    if len(dirs) < 2:
        raise InputError(f"compare needs at least two bench folders; got {len(dirs)}")
    reports = [read_bench_report(d) for d in dirs]
    differs = setting_differences([r.bench for r in reports])
    if differs:
        def value(r: BenchReport, key: str) -> str:
            flat = {**_flat(r.bench.get("setting", {}), "setting"), **{k: r.bench.get(k) for k in _SAME}}
            return json.dumps(flat.get(key))

        lines = [f"  {k}: " + ", ".join(f"{value(r, k)} in {r.out}" for r in reports) for k in differs]
        raise InputError("these benches are over different settings and cannot be compared; "
                         f"{len(differs)} field(s) differ:\n" + "\n".join(lines))
    labels = _labels([r.out for r in reports])
    return Comparison(compare_markdown(reports, labels, _SHOWN), compare_html(reports, labels, _SHOWN))


def _labels(paths: list[Path]) -> list[str]:
    """Short distinct names for the benches: their folder names, or more of the path where those clash."""
    for depth in range(1, 8):
        labels = ["/".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]
