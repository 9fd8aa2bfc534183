"""Merge the leaderboards of several benches of one setting into one table.

    python benchmarks/validation_table.py validation_synthetic runs/val/synthetic runs/val/synthetic_b ...
    python benchmarks/validation_table.py validation_fashion runs/val/fashion runs/val/fashion_b ...
    python benchmarks/validation_table.py digits_class runs/val/digits_class ... --title "Bench: digits, class:3"

When the sweep (benchmarks/sweep_methods.py) changes a method's ``auto`` defaults, only that method
is benched again, into a new folder over the same cached original and references. Benches are read
in the order given and a later bench's row replaces an earlier one's, so the table holds every
method at its current defaults. Every bench must share the original (its cache key): rows scored
against different originals are not comparable. Writes benchmarks/results/bench_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from protocol_table import keep_inputs, load
from tuning_log import bench_choices
from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.results.leaderboard import CEILING, Leaderboard, LeaderboardRow

RESULTS = Path(__file__).parent / "results"


def merged(folders: list[Path]) -> tuple[Leaderboard, dict, list[LeaderboardRow]]:
    """The first bench's leaderboard and bench.json, and every method's row from the last bench that has it."""
    boards, benches = zip(*(load(f) for f in folders))
    keys = {b["original_key"] for b in benches}
    if len(keys) != 1:
        raise SystemExit(f"the benches do not share an original: keys {sorted(keys)} in {', '.join(map(str, folders))}")
    rows: dict[str, LeaderboardRow] = {}
    for board in boards:
        rows.update({r.method: r for r in board.rows})
    ceiling = [rows.pop(CEILING)] if CEILING in rows else []
    return boards[0], benches[0], ceiling + sorted(rows.values(), key=lambda r: -r.score)


def _ratio(r: LeaderboardRow) -> str:
    """Compute x retrain where counted, else time x retrain; '!' over the 20 % limit."""
    value = r.compute_ratio if r.compute_ratio is not None else r.time_ratio
    return ("-" if value is None else f"{value:.1%}") + (" !" if r.over_limit else "")


def markdown(title: str, folders: list[Path], board: Leaderboard, rows: list[LeaderboardRow], seen: list[dict] = ()) -> str:
    acc = board.original.accuracy
    out = [
        f"# {title} (N = {board.seeds}, `--preset auto`)", "",
        f"Setting: `{board.dataset}`, forget set `{board.forget}`, {board.forget_examples} forget examples; "
        f"original accuracy: retain {acc['retain']:.3f}, test {acc['test']:.3f}, forget {acc['forget']:.3f}. "
        f"Rows from the benches {', '.join(f.name for f in folders)} (a later bench adds a method or replaces its row "
        "when its defaults changed).", "",
        ("This forget set is in the tuning log (benchmarks/results/tuning_log.md), so it is not unseen: "
         + "; ".join(f"{c['what']} ({c['methods']})" for c in seen) + "." if seen else
         "This forget set is not in the tuning log (benchmarks/results/tuning_log.md)."), "",
        "| method | score [95 % CI] | F | F bounded | KLoM forget | forget acc | retain acc | Δ retain vs original "
        "| test acc | × retrain (compute, else time) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        a = r.accuracy
        ci = "" if r.score_interval is None else " [{:.3f}, {:.3f}]".format(*r.score_interval)
        klom = "-" if r.klom_forget is None else f"{r.klom_forget:.2f}"
        out.append(
            f"| {r.method} | {r.score:.3f}{ci} | {r.forget_quality:.3f} "
            f"| {r.forget_quality_bounded:.3f} | {klom} | {a.forget:.3f} | {a.retain:.3f} "
            f"| {a.retain - acc['retain']:+.3f} | {a.test:.3f} | {_ratio(r)} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="the table's name: results/bench_NAME.{md,json}")
    ap.add_argument("benches", nargs="+", type=Path, help="bench folders, earliest first")
    ap.add_argument("--title", help="the table's heading (default: Validation bench: NAME without its prefix)")
    args = ap.parse_args()
    board, bench, rows = merged(args.benches)
    title = args.title or f"Validation bench: {args.name.removeprefix('validation_')}"
    out = RESULTS / f"bench_{args.name}"
    seen = bench_choices(board, bench)
    write_bytes(out.with_suffix(".md"), markdown(title, args.benches, board, rows, seen).encode())
    write_json(out.with_suffix(".json"), {"benchmark": title, "setting": bench["summary"],
                                          "original": dataclasses.asdict(board.original), "from": [f.name for f in args.benches],
                                          "inputs_kept": keep_inputs(f"bench_{args.name}", args.benches),
                                          "in_tuning_log": seen, "rows": [r.to_json() for r in rows],
                                          "provenance": provenance()})
    print(f"wrote {out}.md and .json ({len(rows)} rows)")


if __name__ == "__main__":
    main()
