"""One method's row from each of several finished benches, as one table (a tuning round's record).

    python benchmarks/collect_rows.py --name shadow_matching_lr_scale --method shadow_matching \\
        --what "lr_scale on three tuning settings" "digits class:3, lr 1=runs/d3b" "digits class:3, lr 0.5=runs/d3_lr05"

Each LABEL=FOLDER names a finished ``unlearnkit bench`` folder (LABEL=FOLDER#METHOD: another method's
row of it); its leaderboard gives the method's
score (with its interval), F, retain and test accuracy and compute, beside the bench's own ceiling
(score and F), and the share of the ceiling's score. The method's config and the bench's argv and
commit are kept in the JSON. Writes benchmarks/results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unlearnkit.io import provenance, write_bytes, write_json
from unlearnkit.results.leaderboard import read_leaderboard

RESULTS = Path(__file__).parent / "results"


def collect(label: str, folder: Path, method: str) -> dict:
    board = read_leaderboard(folder / "leaderboard.json")
    rows = {r.method: r for r in board.rows}
    if method not in rows:
        raise SystemExit(f"{folder}: no {method} row (rows: {', '.join(rows)})")
    row, ceiling = rows[method], rows.get("retrain (ceiling)")
    config_path = folder / "methods" / method / "config.json"
    return {"label": label, "method": method, "folder": str(folder), "setting": f"{board.dataset} `{board.forget}`", "seeds": board.seeds,
            "score": row.score, "score_interval": list(row.score_interval) if row.score_interval else None,
            "F": row.forget_quality, "retain": row.accuracy.retain, "test": row.accuracy.test,
            "compute_ratio": row.compute_ratio,
            "ceiling_score": ceiling.score if ceiling else None, "ceiling_F": ceiling.forget_quality if ceiling else None,
            "config": json.loads(config_path.read_text()) if config_path.is_file() else None,
            "bench_provenance": board.provenance}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rows", nargs="+", help="LABEL=FOLDER, a finished bench folder per row")
    ap.add_argument("--method", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--what", required=True, help="one line saying what the rows compare")
    args = ap.parse_args()
    rows = []
    for item in args.rows:
        label, sep, folder = item.rpartition("=")
        if not sep:
            raise SystemExit(f"{item!r}: expected LABEL=FOLDER")
        folder, _, method = folder.partition("#")
        rows.append(collect(label, Path(folder), method or args.method))
    write_json((RESULTS / args.name).with_suffix(".json"), {"what": args.what, "method": args.method, "rows": rows,
                                                           "provenance": provenance()})
    lines = [f"# {args.what}", "", f"`{args.method}`: one `unlearnkit bench` per row (argv, commit and method config in the JSON).", "",
             "| setting | row | method | N | score [95 % CI] | of ceiling | F | retain acc | test acc | compute x retrain | ceiling score |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f" [{r['score_interval'][0]:.3f}, {r['score_interval'][1]:.3f}]" if r["score_interval"] else ""
        share = f"{r['score'] / r['ceiling_score']:.0%}" if r["ceiling_score"] else "-"
        ceil = f"{r['ceiling_score']:.3f}" if r["ceiling_score"] is not None else "-"
        lines.append(f"| {r['setting']} | {r['label']} | {r['method']} | {r['seeds']} | {r['score']:.3f}{ci} | {share} | {r['F']:.3f} | "
                     f"{r['retain']:.3f} | {r['test']:.3f} | {r['compute_ratio']:.1%} | {ceil} |")
    write_bytes((RESULTS / args.name).with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))


if __name__ == "__main__":
    main()
