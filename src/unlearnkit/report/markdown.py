"""report.md: the leaderboard plus, in tables, every section of report.html; and benches side by side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unlearnkit.report.bench_report import (
    MAX_PEOPLE,
    BenchReport,
    chosen_examples,
    compare_rows,
    compute_table,
    distribution_panels,
    example_label,
    people_table,
    setting_fields,
    sources,
)
from unlearnkit.report.figures import epsilon_bars
from unlearnkit.report.request_costs import RequestCost, request_cost_table
from unlearnkit.report.leaderboard import (COMPARED, fmt, guard_pairs_markdown, health_markdown, leaderboard_markdown,
                                          md_table, title)
from unlearnkit.results.leaderboard import CEILING

def report_markdown(report: BenchReport) -> str:
    """report.md: the leaderboard and, in tables, every section of report.html."""
    board, rows = report.board, report.rows
    lines = leaderboard_markdown(board).rstrip("\n").split("\n")
    ceiling = report.ceiling
    ref = rows[0].retrain_accuracy if rows else None
    lines += ["", (f"Ceiling (independent retrains): F = {fmt(ceiling and ceiling.forget_quality)}, "
                  f"F bounded = {fmt(ceiling and ceiling.forget_quality_bounded)}, "
                  f"feature F = {fmt(ceiling and ceiling.feature_quality)}. References' accuracy: "
                  f"retain {fmt(ref and ref.retain)}, test {fmt(ref and ref.test)}, forget {fmt(ref and ref.forget)}."), ""]
    lines += ["## Run health", ""] + health_markdown(board)
    prepared = [r for r in board.rows if r.one_time_ratio is not None]
    if prepared:
        ways = [RequestCost(r.method, r.compute_ratio, r.one_time_ratio or 0.0) for r in board.rows
                if r.method != CEILING and r.compute_ratio is not None]
        lines += ["", "## The cost of answering R requests (docs/prepared_models.md)", "",
                  "Compute in retrains: a prepared method pays its pool once (`unlearnkit prepare`), then its "
                  "per-request cost; the others pay per request.", "", request_cost_table(ways).rstrip("\n")]
    pairs = guard_pairs_markdown(board)
    if pairs:
        lines += ["", "## Guarded and unguarded (docs/guard.md)", ""] + pairs

    lines += ["", "## Forgetting vs utility", ""]
    by_f = sorted(rows, key=lambda r: -r.forget_quality)
    lines += md_table(["method", "F", "test acc", "compute x retrain", "time x retrain"],
                      [[r.method, fmt(r.forget_quality), fmt(r.accuracy.test), fmt(r.compute_ratio, "{:.1%}"),
                        fmt(r.time_ratio, "{:.1%}")] for r in by_f])

    n = board.seeds
    names = board.methods
    lines += ["", "## Per-example ε", "",
              "Forget examples per ε bin (compat; bin k earns 2^-k points, the last bin none)."
              + (f" `{CEILING}` is what a perfect unlearner gets at N = {n}." if ceiling else ""), ""]
    bars = {name: epsilon_bars(report.eps(name), n) for name in names}
    labels = bars[names[0]][0]
    lines += md_table(["ε", *names], [[lab, *(str(int(bars[m][1][i])) for m in names)] for i, lab in enumerate(labels)])

    lines += ["", "## Output distributions (best, median and worst forgotten examples)", "",
              ("Logit-scaled confidence of each example under the retrained references and the row's models: "
               "median [min, max] over the models."), ""]
    lines += md_table(["method", "which", "example", "ε", "retrained", "unlearned"], _distribution_rows(report, names))
    problems = [f"{name}: {'; '.join(report.runs[name].problems[:4])}" for name in names if report.runs[name].problems]
    if problems:
        lines += ["", "Models left out: " + " / ".join(problems)]

    people = people_table(report)
    if people:
        lines += ["", "## Who is still remembered", "",
                  "Per person in the forget set: mean per-example ε (compat) over their images, most remembered first.", ""]
        lines += md_table(["person", "images", *names],
                          [[str(p), str(c), *(f"{means[m]:.2f}" for m in names)] for p, c, means in people[:MAX_PEOPLE]])
        if len(people) > MAX_PEOPLE:
            lines += ["", f"... and {len(people) - MAX_PEOPLE} more people (all in per_example.npz)."]

    lines += ["", "## Setting", ""] + md_table(["field", "value"], [[k, f"`{v}`"] for k, v in setting_fields(report)])
    compute = compute_table(report)
    if compute:
        lines += ["", "## Compute", ""] + md_table(["stage", "models", "seconds", "where"],
                                                    [[s, str(m), f"{sec:.1f}", w] for s, m, sec, w in compute])
    lines += ["", "## Where each number came from", ""] + md_table(["what", "read from"], [[k, f"`{v}`"] for k, v in sources(report)])
    return "\n".join(lines) + "\n"


def _distribution_rows(report: BenchReport, names: list[str]) -> list[list[str]]:
    rows = []
    for name in names:
        eps = report.eps(name)
        panels = distribution_panels(report, name)
        if panels is None:
            rows += [[name, which, example_label(report, j), f"{eps[j]:.2f}", "not readable", "not readable"]
                     for which, j in chosen_examples(report, name)]
            continue
        for p in panels:
            r, u = p["retrained"], p["unlearned"]
            rows.append([name, p["which"], example_label(report, p["column"]), f"{eps[p['column']]:.2f}",
                         f"{float(np.median(r)):.2f} [{min(r):.2f}, {max(r):.2f}]",
                         f"{float(np.median(u)):.2f} [{min(u):.2f}, {max(u):.2f}]"])
    return rows


def compare_markdown(reports: Sequence[BenchReport], labels: list[str], shown: tuple[str, ...]) -> str:
    """Benches over one setting side by side: how each was run, then score, F, test acc and cost per method."""
    lines = [f"# Comparison: {title(reports[0].board)}", ""]
    lines += md_table(["bench", "folder", *shown, "unlearnkit / git"],
                      [[lab, str(r.out), *(str(r.bench.get(k)) for k in shown),
                        f"{r.board.provenance.get('unlearnkit', '?')} / {r.board.provenance.get('git') or '?'}"]
                       for lab, r in zip(labels, reports)])
    for column in COMPARED:
        lines += ["", f"## {column.header}", ""]
        table = []
        for name in compare_rows(reports):
            found = [r.board.row(name) for r in reports]
            table.append([name, *(column.text(row) if row else "-" for row in found)])
        lines += md_table(["method", *labels], table)
    return "\n".join(lines) + "\n"
