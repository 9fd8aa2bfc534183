"""One dataset's benches over several forget-set seeds, averaged: the own-method issue's protocol table.

    python benchmarks/protocol_table.py synthetic runs/proto/synthetic_f3 runs/proto/synthetic_f6 runs/proto/synthetic_f7

Each bench folder is one ``unlearnkit bench`` of the same dataset, method list and N with its own
forget-set seed (``--set forget.seed=K``). For every method the table gives the score, F, bounded F
and accuracies averaged over the seeds, the score's share of the ceiling's (the retrain ceiling row,
averaged the same way), the time and memory ratios, and the mean score's 95 % interval: each
bench's interval is F_N +- 1.96 SE (score.py's delete-d jackknife), so the mean of k independent
seeds has SE = sqrt(sum SE_i^2) / k. "Overlaps" says whether that interval meets the ceiling's.
Then it checks the issue's bar for the named method (``--method``, default scramble_relearn):
highest mean score and bounded F of the non-retrain rows, at least 95 % of the ceiling, an
interval overlapping the ceiling's, cost at most 10 % of a retrain's on every seed (compute, where
the benches counted it; else time) and peak memory at most 1.2x a retrain's. For a prepared method
(its rows carry a one-time cost) the bar adds a pool of at most 32 retrains, and ``--half-pool
DIR,DIR,...`` (benches of the method on half the pool, over the same forget sets) adds that half
the pool still leads every unprepared method.
``--variant LABEL=DIR,DIR,...`` adds, below the ranking, a method run with other settings into
benches of its own over the same forget sets (e.g. the method held to the time bar, or a shortened
retrain: ``--methods retrain --set method.retrain.fraction=0.1``), averaged the same way and named
LABEL; variants are shown against the ceiling but take no part in the bar.
Writes benchmarks/results/protocol_NAME.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from tuning_log import bench_choices
from unlearnkit.errors import InputError
from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.results.leaderboard import CEILING, Leaderboard, read_leaderboard

RESULTS = Path(__file__).parent / "results"
Z = 1.959963984540054


def refuse(message: str) -> None:
    """Bad input: say what and exit 2, before anything is written."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def load(folder: Path) -> tuple[Leaderboard, dict]:
    """A finished bench's leaderboard (recorded schema-1 ones too) and its bench.json."""
    missing = [name for name in ("leaderboard.json", "bench.json") if not (folder / name).is_file()]
    if missing:
        refuse(f"{folder}: no {' or '.join(missing)}; expected a finished `unlearnkit bench` folder")
    try:
        board = read_leaderboard(folder / "leaderboard.json", schema_1=True)
    except InputError as exc:  # truncated, edited by hand, or of another schema: the file and the field named
        refuse(str(exc))
    return board, json.loads((folder / "bench.json").read_text())


def keep_inputs(name: str, folders: Sequence[Path], under: str = "") -> list[str]:
    """Copy each bench's ``leaderboard.json`` and ``bench.json`` into ``results/benches/NAME/[UNDER/]BENCH/``,
    so the table can be made again from the repository alone (those copies are valid input folders);
    returns the copies' paths relative to ``results/``."""
    kept = []
    for folder in folders:
        dest = RESULTS / "benches" / name / under / folder.name
        if folder.resolve() != dest.resolve():
            for file in ("leaderboard.json", "bench.json"):
                write_bytes(dest / file, (folder / file).read_bytes())
        kept.append(str(dest.relative_to(RESULTS)))
    return kept


def _family(board: Leaderboard, bench: dict) -> str:
    """What the benches must share about their forget sets: the whole spec (``random:0.02``), or the
    kind alone where the spec names the set itself (``class:2``, ``class:5``: one class per bench)."""
    kind = bench.get("setting", {}).get("forget_kind")
    return kind if kind in ("class", "identities") else board.forget


def _which(board: Leaderboard, bench: dict) -> str:
    """One bench's forget set, as the table's header names it: its seed, or its spec where the spec names it."""
    seed = bench["setting"]["forget_config"].get("seed")
    return board.forget if seed is None else str(seed)


def averaged(boards: list[Leaderboard]) -> dict[str, dict]:
    """Each method's mean over the benches (only methods present in every bench), in the first bench's order."""
    common = set.intersection(*(set(b.methods) for b in boards))
    names = [name for name in boards[0].methods if name in common]
    out = {}
    for name in names:
        rows = [b.row(name) for b in boards]
        mean = lambda f, rows=rows: _mean([f(r) for r in rows])  # noqa: E731
        if any(r.score_interval is None for r in rows):
            refuse(f"{name}: a bench has no score interval (N below 16); the protocol needs N >= 16")
        se = math.sqrt(sum(((r.score_interval[1] - r.score_interval[0]) / (2 * Z)) ** 2 for r in rows)) / len(rows)
        score = mean(lambda r: r.score)
        out[name] = {
            "method": name, "score": score, "score_interval": [max(0.0, score - Z * se), score + Z * se],
            "per_seed_score": [r.score for r in rows], "forget_quality": mean(lambda r: r.forget_quality),
            "forget_quality_bounded": mean(lambda r: r.forget_quality_bounded),
            "forget": mean(lambda r: r.accuracy.forget), "retain": mean(lambda r: r.accuracy.retain),
            "test": mean(lambda r: r.accuracy.test), "time_ratio": mean(lambda r: r.time_ratio),
            "max_time_ratio": _max([r.time_ratio for r in rows]), "compute_ratio": mean(lambda r: r.compute_ratio),
            "max_compute_ratio": _max([r.compute_ratio for r in rows]),
            "per_seed_compute_ratio": [r.compute_ratio for r in rows], "memory_ratio": mean(lambda r: r.memory_ratio),
            "max_memory_ratio": _max([r.memory_ratio for r in rows]),
            "one_time_ratio": mean(lambda r: r.one_time_ratio),
        }
    return out


def _mean(values: list) -> float | None:
    """The mean of the values that were measured (a row may lack a ratio: None)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _max(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x:.1%}"


def verdict(rows: dict[str, dict], method: str, seen: Sequence[str] = (),
            half_pool: dict | None = None) -> list[tuple[str, bool, str]]:
    """The issue's bar, item by item: (what, met, the numbers); ``seen`` names the forget sets found in
    the tuning log (the bar asks for forget sets no choice was made on); ``half_pool`` is the prepared
    method's row on half its pool, which must lead every unprepared method."""
    me, ceiling = rows[method], rows[CEILING]
    others = [r for n, r in rows.items() if n not in (method, CEILING)]
    nobody = {"method": "no other method", "score": -math.inf, "forget_quality_bounded": -math.inf}
    best = max(others, key=lambda r: r["score"], default=nobody)
    best_f = max(others, key=lambda r: r["forget_quality_bounded"], default=nobody)
    share = me["score"] / ceiling["score"]
    # The cost a retrain is measured against: compute where every seed counted it, else wall time.
    cost = "compute" if None not in me["per_seed_compute_ratio"] else "time"
    prepared = [] if me["one_time_ratio"] is None else [
        ("pool <= 32 retrains", me["one_time_ratio"] <= 32, f"{me['one_time_ratio']:.1f} retrains")]
    if half_pool is not None:
        unprepared = max((r for r in others if r["one_time_ratio"] is None), key=lambda r: r["score"], default=nobody)
        prepared.append(("half the pool leads every unprepared method", half_pool["score"] > unprepared["score"],
                         f"{half_pool['score']:.3f} against {unprepared['method']} {unprepared['score']:.3f}"))
    return [
        ("highest score", me["score"] > best["score"], f"{me['score']:.3f} against {best['method']} {best['score']:.3f}"),
        ("highest bounded F", me["forget_quality_bounded"] > best_f["forget_quality_bounded"],
         f"{me['forget_quality_bounded']:.3f} against {best_f['method']} {best_f['forget_quality_bounded']:.3f}"),
        (">= 95 % of the ceiling", share >= 0.95, f"{share:.0%} ({me['score']:.3f} / {ceiling['score']:.3f})"),
        ("interval overlaps the ceiling's", me["score_interval"][1] >= ceiling["score_interval"][0],
         f"[{me['score_interval'][0]:.3f}, {me['score_interval'][1]:.3f}] against "
         f"[{ceiling['score_interval'][0]:.3f}, {ceiling['score_interval'][1]:.3f}]"),
        (f"{cost} <= 10 % of a retrain", me[f"max_{cost}_ratio"] is not None and me[f"max_{cost}_ratio"] <= 0.10,
         f"mean {_pct(me[f'{cost}_ratio'])}, worst seed {_pct(me[f'max_{cost}_ratio'])}"),
        *prepared,
        ("peak memory <= 1.2x", me["max_memory_ratio"] is not None and me["max_memory_ratio"] <= 1.2,
         f"mean {me['memory_ratio'] or 0:.2f}x, worst seed {me['max_memory_ratio'] or 0:.2f}x"),
        ("forget sets no choice was made on", not seen,
         "none is in the tuning log" if not seen else f"in the tuning log: {', '.join(seen)}"),
    ]


def variant_row(label: str, spec: str, forget_sets: list[str]) -> dict:
    """The ``--variant LABEL=DIR,DIR,...`` row: its benches' one method, averaged over the same forget sets."""
    folders = [Path(f) for f in spec.split(",") if f]
    loaded = [load(f) for f in folders]
    mine = sorted(j["forget_fingerprint"] for _, j in loaded)
    if mine != sorted(forget_sets):
        refuse(f"variant {label}: its benches ({spec}) do not cover the same forget sets as the main benches, one each")
    methods = {name for b, _ in loaded for name in b.methods} - {CEILING}
    if len(methods) != 1:
        refuse(f"variant {label}: its benches must hold one method besides the ceiling, found {sorted(methods) or 'none'}")
    row = averaged([b for b, _ in loaded])[methods.pop()]
    return {**row, "method": label, "from": [str(f) for f in folders]}


HEADER = ("| method | score [95 % CI] | % of ceiling | per seed | F | F bounded | forget | retain | test | compute | × retrain "
          "| memory |", "|---|---|---|---|---|---|---|---|---|---|---|---|")


def _ratio(r: dict, kind: str) -> str:
    """A cost ratio's mean over the seeds and, in brackets, its worst seed; blank where not measured."""
    mean = r[f"{kind}_ratio"]
    return "" if mean is None else f"{mean:.1%} ({_pct(r[f'max_{kind}_ratio'])})"


def _line(r: dict, ceiling: dict) -> str:
    lo, hi = r["score_interval"]
    return (f"| {r['method']} | {r['score']:.3f} [{lo:.3f}, {hi:.3f}] | {r['score'] / ceiling['score']:.0%} "
            f"| {' / '.join(f'{s:.3f}' for s in r['per_seed_score'])} | {r['forget_quality']:.3f} "
            f"| {r['forget_quality_bounded']:.3f} | {r['forget']:.3f} | {r['retain']:.3f} | {r['test']:.3f} "
            f"| {_ratio(r, 'compute')} | {_ratio(r, 'time')} "
            f"| {'' if r['memory_ratio'] is None else format(r['memory_ratio'], '.2f') + 'x'} |")


def seen_sets(boards: list[Leaderboard], benches: list[dict]) -> list[str]:
    """The benches' forget sets that the tuning log lists (a choice was made on them, or after seeing them)."""
    return [_which(board, bench) for board, bench in zip(boards, benches) if bench_choices(board, bench)]


def markdown(name: str, folders: list[Path], boards: list[Leaderboard], benches: list[dict], rows: dict[str, dict],
             method: str, variants: Sequence[dict] = (), checks: Sequence[tuple[str, bool, str]] = ()) -> str:
    b = boards[0]
    which = [_which(board, bench) for board, bench in zip(boards, benches)]
    seen = seen_sets(boards, benches)
    family = _family(b, benches[0])
    ceiling = rows[CEILING]
    ordered = [ceiling] + sorted((r for n, r in rows.items() if n != CEILING), key=lambda r: -r["score"])
    out = [
        f"# Protocol: {name}, forget set `{family}`, N = {b.seeds}, "
        f"forget {'sets' if family != b.forget else 'seeds'} {', '.join(which)}", "",
        f"Dataset `{b.dataset}`; benches {', '.join(f.name for f in folders)}, `--preset auto`. Means over the "
        "forget seeds; the interval is the mean's (each bench's jackknife SE combined); \"compute\" is one run's "
        "examples passed forward and backward over one retrain's, \"× retrain\" its time over one retrain's, each "
        "the mean over seeds (worst seed in brackets).", "",
        ("Forget sets in the tuning log (benchmarks/results/tuning_log.md: a choice was made on them, or after "
         f"their numbers were seen), so not unseen: {', '.join(seen)}." if seen else
         "None of these forget sets is in the tuning log (benchmarks/results/tuning_log.md)."), "",
        *HEADER,
    ]
    out += [_line(r, ceiling) for r in ordered]
    if variants:
        out += ["", "Variants, each from benches of its own over the same forget sets (not in the ranking or the bar):", "",
                *HEADER]
        out += [_line(r, ceiling) for r in variants]
    if checks:
        out += ["", f"The bar for `{method}`:", ""]
        out += [f"- {'met' if ok else '**not met**'}: {what}: {numbers}" for what, ok, numbers in checks]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", help="the table's name: results/protocol_NAME.{md,json}")
    ap.add_argument("benches", nargs="+", type=Path, help="bench folders, one per forget seed")
    ap.add_argument("--method", default="scramble_relearn", help="the method whose bar is checked")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=DIR,DIR,...",
                    help="a row from benches of one method run with other settings over the same forget sets")
    ap.add_argument("--half-pool", metavar="DIR,DIR,...",
                    help="benches of the (prepared) method on half its pool, over the same forget sets: shown as a "
                         "variant, and the bar asks that it lead every unprepared method")
    args = ap.parse_args()
    loaded = [load(f) for f in args.benches]
    boards, benches = [b for b, _ in loaded], [j for _, j in loaded]
    if len({(b.dataset, _family(b, j), b.seeds) for b, j in loaded}) != 1:
        refuse("the benches differ in dataset, forget kind or N: " + ", ".join(map(str, args.benches)))
    if len({j["forget_fingerprint"] for j in benches}) != len(benches):
        refuse("two benches share a forget set: give one bench per forget seed")
    rows = averaged(boards)
    if CEILING not in rows:
        refuse("every bench needs its ceiling row (run the benches without --no-ceiling)")
    forget_sets = [j["forget_fingerprint"] for j in benches]
    for spec in args.variant:
        if "=" not in spec or not spec.split("=", 1)[0]:
            refuse(f"--variant {spec!r}: expected LABEL=DIR,DIR,...")
    variants = [variant_row(*spec.split("=", 1), forget_sets) for spec in args.variant]
    half = variant_row(f"{args.method} half pool", args.half_pool, forget_sets) if args.half_pool else None
    if half is not None:
        variants.append(half)
    seen = seen_sets(boards, benches)
    checks = verdict(rows, args.method, seen, half) if args.method in rows else []
    out = RESULTS / f"protocol_{args.name}"
    write_bytes(out.with_suffix(".md"),
                markdown(args.name, args.benches, boards, benches, rows, args.method, variants, checks).encode())
    kept = keep_inputs(f"protocol_{args.name}", args.benches)
    for i, v in enumerate(variants):  # a variant's benches are kept under variant1/, variant2/, ... (names may repeat)
        v["inputs_kept"] = keep_inputs(f"protocol_{args.name}", [Path(f) for f in v["from"]], f"variant{i + 1}")
    write_json(out.with_suffix(".json"), {
        "benchmark": f"protocol_{args.name}", "from": [str(f) for f in args.benches], "inputs_kept": kept,
        "bench_commands": [(j.get("provenance") or {}).get("argv") for j in benches],
        "settings": [j["summary"] for j in benches], "in_tuning_log": seen, "rows": list(rows.values()), "variants": variants,
        "bar": [{"what": w, "met": ok, "numbers": n} for w, ok, n in checks], "provenance": provenance()})
    print((out.with_suffix(".md")).read_text())


if __name__ == "__main__":
    main()
