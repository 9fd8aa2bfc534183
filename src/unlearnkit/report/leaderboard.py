"""Leaderboard tables: one for the terminal or a log (as many whole columns as fit), one in Markdown
(all), and report.md: the leaderboard plus the sections of report.html, in text.

A number or a method name is never cut: the terminal table drops whole columns, lowest priority
first, until the rest fits the width, and says which columns report.md has besides.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich import box
from rich.table import Table

# (header, how to read the cell, format), in priority order: the first columns are always shown.
COLUMNS = (
    ("method", "method", "{}"),
    ("score", "score", "{:.3f}"),
    ("F", "forget_quality", "{:.3f}"),
    ("forget acc", ("accuracy", "forget"), "{:.3f}"),
    ("x retrain", "time_ratio", "{:.1%}"),
    ("test acc", ("accuracy", "test"), "{:.3f}"),
    ("retain acc", ("accuracy", "retain"), "{:.3f}"),
    ("score 95% CI", "score_interval", "[{:.3f}, {:.3f}]"),
    ("F bounded", "forget_quality_bounded", "{:.3f}"),
    ("KLoM forget", "klom_forget", "{:.2f}"),
    ("KLoM test", "klom_test", "{:.2f}"),
    ("U-LiRA", "ulira", "{:.3f}"),
    ("loss MIA", "loss_mia", "{:.3f}"),
    ("SVC MIA", "svc_mia_efficacy", "{:.3f}"),
    ("s / seed", "seconds", "{:.2f}"),
)
# Each column costs its width plus a separator of this many characters in the terminal table.
_GAP = 2


def _cell(row: dict, key: Any, fmt: str) -> str:
    value = row[key[0]].get(key[1]) if isinstance(key, tuple) else row.get(key)
    if value is None:
        return "-"
    text = fmt.format(*value) if isinstance(value, (list, tuple)) else fmt.format(value)
    if key == "time_ratio" and row.get("over_time_limit"):
        text += " !"
    if key == "method" and row.get("diverged"):
        text += f" ({len(row['diverged'])} diverged)"
    return text


def _cells(board: dict) -> list[tuple[str, list[str]]]:
    return [(header, [_cell(r, key, fmt) for r in board["rows"]]) for header, key, fmt in COLUMNS]


def fitting_columns(board: dict, width: int) -> list[tuple[str, list[str]]]:
    """The leading columns whose full contents fit in ``width`` characters."""
    chosen, used = [], 0
    for header, cells in _cells(board):
        need = max(len(header), *(len(c) for c in cells)) + _GAP
        if chosen and used + need > width:
            break
        chosen.append((header, cells))
        used += need
    return chosen


def leaderboard_table(board: dict, width: int = 80) -> Table:
    """The leaderboard as a rich Table no wider than ``width`` (whole columns, full values)."""
    columns = fitting_columns(board, width)
    left_out = [h for h, _ in _cells(board)[len(columns):]]
    text = caption(board) + (f" Not shown at this width (see report.md): {', '.join(left_out)}." if left_out else "")
    table = Table(title=title(board), caption=text, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  title_justify="left", caption_justify="left", collapse_padding=True)
    for header, cells in columns:
        table.add_column(header, justify="left" if header == "method" else "right", no_wrap=True,
                         min_width=max(len(header), *(len(c) for c in cells)))
    for i in range(len(board["rows"])):
        table.add_row(*(cells[i] for _, cells in columns))
    return table


def leaderboard_markdown(board: dict) -> str:
    """The leaderboard as a Markdown document, every column."""
    cells = _cells(board)
    lines = [f"# {title(board)}", "", "| " + " | ".join(h for h, _ in cells) + " |", "|" + "---|" * len(cells)]
    for i in range(len(board["rows"])):
        lines.append("| " + " | ".join(c[i] for _, c in cells) + " |")
    lines += ["", caption(board), ""]
    return "\n".join(lines)


def title(board: dict) -> str:
    """The bench in one line: dataset, model, forget set, N and budget."""
    budget = f", budget {board['budget']:.0%} of a retrain's steps" if board.get("budget") else ""
    return (f"{board['dataset']} / {board['model']} / forget {board['forget']} ({board['forget_examples']} examples), "
            f"N = {board['seeds']} seeds per side{budget}")


def caption(board: dict) -> str:
    """How to read the leaderboard's columns."""
    return ("score = F x (retain acc / retrain's) x (test acc / retrain's); F = the competition's forgetting quality. "
            "'retrain (ceiling)' = independent retrains, a perfect unlearner. U-LiRA, loss MIA: 0.5 = chance. "
            "x retrain: time of one run / one retrain's, '!' = over the competition's 20% limit. "
            "score 95% CI: over new seeds of both sides (model subsampling; from N = 16). KLoM: 95th percentile of "
            "the per-example binned KL between unlearned and retrained margins (0 = indistinguishable).")


# -- report.md ----------------------------------------------------------------------------------------

def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows])


def _fmt(value, fmt: str = "{:.3f}") -> str:
    return "-" if value is None else fmt.format(value)


def report_markdown(report) -> str:
    """report.md: the leaderboard and, in tables, every section of report.html.

    Args:
        report: A :class:`~unlearnkit.report.html.BenchReport`.
    """
    from unlearnkit.report.figures import epsilon_bars
    from unlearnkit.report.html import (
        CEILING,
        chosen_examples,
        compute_table,
        distribution_panels,
        example_label,
        leaderboard_cells,
        people_table,
        setting_fields,
        sources,
    )

    board, rows = report.board, report.rows
    lines = leaderboard_markdown(board).rstrip("\n").split("\n")
    ceiling = report.ceiling
    ref = rows[0].get("retrain_accuracy", {})
    lines += ["", (f"Ceiling (independent retrains): F = {_fmt(ceiling and ceiling['forget_quality'])}, "
                  f"F bounded = {_fmt(ceiling and ceiling['forget_quality_bounded'])}. References' accuracy: "
                  f"retain {_fmt(ref.get('retain'))}, test {_fmt(ref.get('test'))}, forget {_fmt(ref.get('forget'))}."), ""]
    headers, cells = leaderboard_cells(report)
    keep = [0, 12, 13, 14, 15]  # method, peak memory (x retrain), over 20 %, diverged seeds, stopped by budget
    lines += ["## Run health", ""] + _md_table([headers[i] for i in keep], [[row[i][0] for i in keep] for row in cells])

    lines += ["", "## Forgetting vs utility", ""]
    by_f = sorted(rows, key=lambda r: -r["forget_quality"])
    lines += _md_table(["method", "F", "test acc", "time x retrain"],
                       [[r["method"], _fmt(r["forget_quality"]), _fmt(r["accuracy"]["test"]), _fmt(r.get("time_ratio"), "{:.1%}")]
                        for r in by_f])

    n = int(board["seeds"])
    names = [r["method"] for r in rows]
    lines += ["", "## Per-example ε", "",
              "Forget examples per ε bin (compat; bin k earns 2^-k points, the last bin none)."
              + (f" `{CEILING}` is what a perfect unlearner gets at N = {n}." if ceiling else ""), ""]
    bars = {name: epsilon_bars(report.eps(name), n) for name in names}
    labels = bars[names[0]][0]
    lines += _md_table(["ε", *names], [[lab, *(str(int(bars[m][1][i])) for m in names)] for i, lab in enumerate(labels)])

    lines += ["", "## Output distributions (best, median and worst forgotten examples)", "",
              ("Logit-scaled confidence of each example under the retrained references and the row's models: "
              "median [min, max] over the models."), ""]
    dist_rows = []
    for name in names:
        panels = distribution_panels(report, name)
        if panels is None:
            eps = report.eps(name)
            for which, j in chosen_examples(report, name):
                dist_rows.append([name, which, example_label(report, j), f"{eps[j]:.2f}", "not readable", "not readable"])
            continue
        for p in panels:
            r, u = p["retrained"], p["unlearned"]
            dist_rows.append([name, p["which"], example_label(report, p["column"]), f"{report.eps(name)[p['column']]:.2f}",
                              f"{_np_median(r):.2f} [{min(r):.2f}, {max(r):.2f}]", f"{_np_median(u):.2f} [{min(u):.2f}, {max(u):.2f}]"])
    lines += _md_table(["method", "which", "example", "ε", "retrained", "unlearned"], dist_rows)
    problems = [f"{name}: {'; '.join(report.runs[name].problems[:4])}" for name in names if report.runs[name].problems]
    if problems:
        lines += ["", "Models left out: " + " / ".join(problems)]

    people = people_table(report)
    if people:
        from unlearnkit.report.html import MAX_PEOPLE

        lines += ["", "## Who is still remembered", "",
                  "Per person in the forget set: mean per-example ε (compat) over their images, most remembered first.", ""]
        lines += _md_table(["person", "images", *names],
                           [[str(p), str(c), *(f"{means[m]:.2f}" for m in names)] for p, c, means in people[:MAX_PEOPLE]])
        if len(people) > MAX_PEOPLE:
            lines += ["", f"... and {len(people) - MAX_PEOPLE} more people (all in per_example.npz)."]

    lines += ["", "## Setting", ""] + _md_table(["field", "value"], [[k, f"`{v}`"] for k, v in setting_fields(report)])
    compute = compute_table(report)
    if compute:
        lines += ["", "## Compute", ""] + _md_table(["stage", "models", "seconds", "where"],
                                                     [[s, str(m), f"{sec:.1f}", w] for s, m, sec, w in compute])
    lines += ["", "## Where each number came from", ""] + _md_table(["what", "read from"], [[k, f"`{v}`"] for k, v in sources(report)])
    return "\n".join(lines) + "\n"


def _np_median(values) -> float:
    return float(np.median(values))


def compare_markdown(reports, labels: list[str], shown: tuple[str, ...]) -> str:
    """Benches over one setting side by side: how each was run, then score, F, test acc and time per method."""
    from unlearnkit.report.html import compare_rows

    lines = [f"# Comparison: {title(reports[0].board)}", ""]
    lines += _md_table(["bench", "folder", *shown, "unlearnkit / git"],
                       [[lab, str(r.out), *(str(r.bench.get(k)) for k in shown),
                         f"{(r.board.get('provenance') or {}).get('unlearnkit', '?')} / {(r.board.get('provenance') or {}).get('git') or '?'}"]
                        for lab, r in zip(labels, reports)])
    metrics = (("score", lambda row: _fmt(row["score"])), ("F", lambda row: _fmt(row["forget_quality"])),
               ("test acc", lambda row: _fmt(row["accuracy"]["test"])),
               ("time x retrain", lambda row: _fmt(row.get("time_ratio"), "{:.1%}")))
    for metric, get in metrics:
        lines += ["", f"## {metric}", ""]
        table = []
        for name in compare_rows(reports):
            found = [next((x for x in r.rows if x["method"] == name), None) for r in reports]
            table.append([name, *(get(row) if row else "-" for row in found)])
        lines += _md_table(["method", *labels], table)
    return "\n".join(lines) + "\n"
