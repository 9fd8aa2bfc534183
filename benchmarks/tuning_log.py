"""The tuning log: every dataset and forget set a choice was made on, and the check that reads it.

    python benchmarks/tuning_log.py          # writes benchmarks/results/tuning_log.md from tuning_log.json

A default chosen on a forget set, or a design changed after its numbers were seen, makes that forget
set a tuning setting for good: results on it may be reported, never as unseen. The log is
``benchmarks/results/tuning_log.json``; the tables that average benches (protocol_table.py,
validation_table.py) name every bench found in it and never call it unseen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from unlearnkit.io import write_bytes

LOG = Path(__file__).parent / "results" / "tuning_log.json"


def entries(path: Path = LOG) -> list[dict[str, Any]]:
    """The log's entries (dataset, forget, forget_seed, optional dataset_options, choices)."""
    return json.loads(path.read_text())["entries"]


def choices_on(dataset: str, forget: str, forget_seed: int | None, dataset_config: dict[str, Any] | None = None,
               *, path: Path = LOG) -> list[dict[str, Any]]:
    """The choices made on this forget set (empty: nothing in the log; the set may be called unseen).

    Args:
        dataset: Dataset name, e.g. ``synthetic``.
        forget: The forget spec as a bench names it, e.g. ``identity_skewed:0.02`` or ``class:3``.
        forget_seed: The forget set's seed (None where the spec names the set itself).
        dataset_config: The bench's resolved dataset options; an entry that lists options matches only
            a bench with those values (fashion_mnist at 16x16 is not fashion_mnist at 28x28).
    """
    options = dataset_config or {}
    found = []
    for entry in entries(path):
        if (entry["dataset"], entry["forget"], entry["forget_seed"]) != (dataset, forget, forget_seed):
            continue
        if any(options.get(k) != v for k, v in entry.get("dataset_options", {}).items()):
            continue
        found += entry["choices"]
    return found


def bench_choices(board, bench: dict[str, Any], *, path: Path = LOG) -> list[dict[str, Any]]:
    """:func:`choices_on` for a bench folder's leaderboard (a :class:`~unlearnkit.results.leaderboard.Leaderboard`)
    and ``bench.json`` record."""
    setting = bench["setting"]
    return choices_on(board.dataset, board.forget, setting["forget_config"].get("seed"),
                      setting.get("dataset_config"), path=path)


def markdown(path: Path = LOG) -> str:
    lines = ["# Tuning log", "",
             "Every dataset and forget set that a default or a design choice was made on, or whose numbers were seen",
             "before a choice. None of them is ever called unseen. Generated from tuning_log.json by",
             "`python benchmarks/tuning_log.py`.", "",
             "| dataset | forget | forget seed | options | choice | methods | commits |", "|---|---|---|---|---|---|---|"]
    for e in entries(path):
        options = ", ".join(f"{k}={v}" for k, v in e.get("dataset_options", {}).items())
        for c in e["choices"]:
            lines.append(f"| {e['dataset']} | `{e['forget']}` | {'-' if e['forget_seed'] is None else e['forget_seed']} "
                         f"| {options} | {c['what']} | {c['methods']} | {', '.join(c['commits'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    out = LOG.with_suffix(".md")
    write_bytes(out, markdown().encode())
    print(out.read_text())


if __name__ == "__main__":
    main()
