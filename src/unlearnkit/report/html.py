"""report.html: a finished bench as one self-contained page (figures embedded, inline CSS and
sorting script), and benches side by side. What each section shows comes from
:mod:`unlearnkit.report.bench_report`; the leaderboard's columns from :mod:`unlearnkit.report.leaderboard`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from unlearnkit.report import figures
from unlearnkit.report.bench_report import (
    MAX_PEOPLE,
    BenchReport,
    compare_rows,
    compute_table,
    distribution_panels,
    people_table,
    setting_fields,
    sources,
)
from unlearnkit.report.leaderboard import COLUMNS, COMPARED, COMPUTE, HEALTH, METHOD, TIME, Column, caption, number, title
from unlearnkit.results.leaderboard import CEILING

# -- HTML ---------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.35em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f4f4f4;white-space:normal;vertical-align:bottom}.wide{overflow-x:auto}td.l,th.l{text-align:left;white-space:normal}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:' \\2195';color:#aaa}
tr.ceiling td{background:#f2f0fa}.flag{color:#b00;font-weight:bold}.note{color:#555;font-size:.85em}
.method{border:1px solid #e4e4e4;border-radius:6px;padding:.5em 1em;margin:1em 0}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}img{max-width:100%}
code{font-size:.9em}
"""

# Sorts a table.sortable by the clicked column: numbers by data-v, text otherwise; a second click reverses.
_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),d=th.dataset.dir==='a'?-1:1;
      th.dataset.dir=d===1?'a':'d';
      function key(r){var c=r.cells[i],v=c.getAttribute('data-v');
        return v!==null&&v!==''?parseFloat(v):c.textContent;}
      rows.sort(function(x,y){var a=key(x),c=key(y);
        if(typeof a==='number'&&typeof c==='number'){if(isNaN(a))return 1;if(isNaN(c))return -1;return d*(a-c);}
        return d*String(a).localeCompare(String(c));});
      rows.forEach(function(r){b.appendChild(r);});
    });
  });
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def leaderboard_columns(report: BenchReport) -> tuple[Column, ...]:
    """The HTML leaderboard's columns: the scores (headed with the ceiling's and the retrains' values),
    the attacks, then each run's health and cost (:data:`~unlearnkit.report.leaderboard.HEALTH`)."""
    ceiling, rows = report.ceiling, report.rows
    ref = rows[0].retrain_accuracy if rows else None

    def vs(header: str, value: float | None, what: str) -> str:
        return header if value is None else f"{header} ({what} {value:.3f})"

    by_header = {c.header: c for c in COLUMNS}
    return (
        # The cost beside the score: what a row bought, and at what share of a retrain's work.
        METHOD, by_header["score"], COMPUTE, TIME,
        number(vs("F", ceiling and ceiling.forget_quality, "ceiling"), lambda r: r.forget_quality),
        number(vs("F bounded", ceiling and ceiling.forget_quality_bounded, "ceiling"), lambda r: r.forget_quality_bounded),
        number(vs("feature F", ceiling and ceiling.feature_quality, "ceiling"), lambda r: r.feature_quality),
        number(vs("retain acc", ref and ref.retain, "retrain"), lambda r: r.accuracy.retain),
        number(vs("test acc", ref and ref.test, "retrain"), lambda r: r.accuracy.test),
        number(vs("forget acc", ref and ref.forget, "retrain"), lambda r: r.accuracy.forget),
        *(by_header[h] for h in ("score 95% CI", "KLoM forget", "KLoM test", "U-LiRA", "loss MIA", "SVC MIA")),
        number("s / seed", lambda r: r.seconds, "{:.3g}"),
        *(c for c in HEALTH if c not in (COMPUTE, TIME)),
    )


def leaderboard_cells(report: BenchReport) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """The HTML leaderboard's headers and, per row, (text, sort value) cells."""
    columns = leaderboard_columns(report)
    return [c.header for c in columns], [[_cell(c, r) for c in columns] for r in report.rows]


def _cell(column: Column, row) -> tuple[str, str]:
    value = column.sort(row)
    finite = value is not None and np.isfinite(value)
    return column.text(row), repr(float(value)) if finite else ""


def _table(headers: list[str], rows: list[list[tuple[str, str]]], *, sortable: bool = False,
           row_class: list[str] | None = None, left: int = 1) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f'<th{_left(i < left)}>{_e(h)}</th>' for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        rc = f' class="{row_class[n]}"' if row_class and row_class[n] else ""
        cells = "".join(_td(t, v, i < left) for i, (t, v) in enumerate(row))
        body.append(f"<tr{rc}>{cells}</tr>")
    return f'<div class="wide"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _left(yes: bool) -> str:
    return ' class="l"' if yes else ""


def _td(text: str, sort_value: str, left: bool, style: str = "") -> str:
    """One cell; ``sort_value`` (a float's repr) is what the sorting script compares."""
    attrs = _left(left) + (f' data-v="{_e(sort_value)}"' if sort_value else "") + (f' style="{style}"' if style else "")
    return f"<td{attrs}>{_e(text)}</td>"


def _kv_table(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f'<tr><th class="l">{_e(k)}</th><td class="l"><code>{_e(v)}</code></td></tr>' for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


def _heat(value: float, top: float) -> str:
    share = min(max(value / top, 0.0), 1.0) if top > 0 else 0.0
    return f"background:rgba(217,95,2,{0.08 + 0.6 * share:.2f})"


def render_html(report: BenchReport) -> str:
    """report.html's text: one page, figures embedded as data: URIs, inline CSS and sorting script."""
    board, n = report.board, report.board.seeds
    parts = [f"<h1>{_e(title(board))}</h1>",
             (f'<p class="note">Bench folder <code>{_e(report.out)}</code>. Every number below is read from this folder '
             "and the cache it names; see <a href=\"#sources\">where each number came from</a>.</p>")]

    headers, cells = leaderboard_cells(report)
    parts += ["<h2 id=\"leaderboard\">Leaderboard</h2>", '<p class="note">Click a column header to sort.</p>',
              _table(headers, cells, sortable=True, row_class=["ceiling" if r.method == CEILING else "" for r in report.rows]),
              (f'<p class="note">{_e(caption(board))} Peak memory: the process\'s peak RSS on a CPU, peak allocated '
              "device memory on CUDA; a ratio to the retrains' where they recorded theirs, else the amount (– where "
              "none was measured).</p>")]

    # Forgetting vs utility
    ceiling = report.ceiling
    points = [{"name": r.method, "forget_quality": r.forget_quality, "test": r.accuracy.test,
               "cost_ratio": r.compute_ratio if r.compute_ratio is not None else r.time_ratio,
               "ceiling": r.method == CEILING} for r in report.rows]
    retrain_test = report.rows[0].retrain_accuracy.test if report.rows else None
    parts += ["<h2 id=\"utility\">Forgetting vs utility</h2>",
              f'<img alt="F against test accuracy" src="{figures.forgetting_vs_utility(points, retrain_test, ceiling.forget_quality if ceiling else None)}">',
              ('<p class="note">Up and right is better; the dashed lines are the references\' test accuracy and the '
              "ceiling's F (what a perfect unlearner scores at this N).</p>")]

    # Per method
    parts.append("<h2 id=\"methods\">Per method: which examples were forgotten</h2>")
    ceiling_eps = report.eps(CEILING) if ceiling else None
    if report.references.confidence is None:
        parts.append(f'<p class="flag">The retrained references are not readable ({_e("; ".join(report.references.problems[:3]))}): '
                     "the output-distribution figures are left out.</p>")
    for r in report.rows:
        name = r.method
        runs = report.runs[name]
        eps = report.eps(name)
        block = [f'<div class="method" id="m-{_e(name)}"><h3>{_e(name)}</h3>',
                 (f'<p class="note">F = {r.forget_quality:.3f}; per-example ε: median {np.median(eps):.2f}, '
                 f"{int((eps == 0).sum())} of {len(eps)} at 0, {int((eps >= 50).sum())} at the cap.</p>"),
                 '<div class="figs">',
                 f'<img alt="epsilon histogram of {_e(name)}" src="{figures.epsilon_histogram(name, eps, ceiling_eps if name != CEILING else None, n)}">']
        panels = distribution_panels(report, name)
        if panels:
            block.append(f'<img alt="output distributions of {_e(name)}" src="{figures.output_distributions(name, panels)}">')
        block.append("</div>")
        if panels:
            block.append('<p class="note">Logit-scaled confidence of the forget example under each of the '
                         f"{runs.confidence.shape[0]} {_e(name)} models and the {report.references.confidence.shape[0]} "
                         "retrained references (ticks: one per model); best, median and worst by this row's ε.</p>")
        if runs.problems:
            block.append(f'<p class="flag">Left out: {_e("; ".join(runs.problems[:8]))}'
                         f"{' …' if len(runs.problems) > 8 else ''}</p>")
        parts.append("".join(block) + "</div>")

    # People
    people = people_table(report)
    if people:
        names = board.methods
        top = max(max(v.values()) for _, _, v in people) or 1.0
        kind = report.bench.get("setting", {}).get("forget_kind", "")
        parts.append("<h2 id=\"people\">Who is still remembered</h2>")
        parts.append(f'<p class="note">Per person in the forget set: mean per-example ε (compat) over their images; '
                     f"most remembered first{'' if 'identit' in kind else f' (the forget set is {_e(kind)}: these people may keep other images in the retain set)'}. "
                     "The ceiling column is the level a retrained model reaches at this N.</p>")
        head = "".join(f"<th>{_e(h)}</th>" for h in ["person", "images", *names])
        body = []
        for p, count, means in people[:MAX_PEOPLE]:
            tds = "".join(_td(f"{means[m]:.2f}", repr(means[m]), False, _heat(means[m], top)) for m in names)
            body.append(f"<tr>{_td(str(p), str(p), False)}{_td(str(count), str(count), False)}{tds}</tr>")
        parts.append(f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
        if len(people) > MAX_PEOPLE:
            parts.append(f'<p class="note">… and {len(people) - MAX_PEOPLE} more people (all in per_example.npz).</p>')

    # Setting, compute, sources
    parts += ["<h2 id=\"setting\">Setting</h2>", _kv_table(setting_fields(report))]
    compute = compute_table(report)
    if compute:
        parts += ["<h2 id=\"compute\">Compute</h2>",
                  _table(["stage", "models", "seconds", "where"],
                         [[(s, ""), (str(m), str(m)), (f"{sec:.1f}", repr(sec)), (w, "")] for s, m, sec, w in compute], left=1)]
    parts += ["<h2 id=\"sources\">Where each number came from</h2>", _kv_table(sources(report))]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title(board))}</title><style>{_CSS}</style></head>\n<body>\n{body}\n"
            f"<script>{_JS}</script>\n</body></html>\n")


def compare_html(reports: Sequence[BenchReport], labels: list[str], shown: tuple[str, ...]) -> str:
    """Benches over one setting side by side as one page: how each was run, then per method and bench
    the columns of :data:`~unlearnkit.report.leaderboard.COMPARED`.

    Args:
        reports: The benches.
        labels: A short name for each.
        shown: The bench.json fields that say how each was run.
    """
    names = compare_rows(reports)
    headers = ["method"] + [f"{c.header} · {lab}" for c in COMPARED for lab in labels]
    rows = []
    for name in names:
        found = [r.board.row(name) for r in reports]
        rows.append([(name, "")] + [_cell(c, row) if row else ("–", "") for c in COMPARED for row in found])
    scores = np.array([[row.score if (row := r.board.row(n)) else np.nan for r in reports] for n in names])
    how = [[lab] + [str(r.bench.get(k)) for k in shown] + [
        f"{r.board.provenance.get('unlearnkit', '?')} / {r.board.provenance.get('git') or '?'}",
        "-" if r.board.retrain_cost.seconds is None else f"{r.board.retrain_cost.seconds:.3g} s"]
        for r, lab in zip(reports, labels)]
    body = [f"<h1>Comparison: {_e(title(reports[0].board))}</h1>",
            "<p class=\"note\">" + ", ".join(f"<code>{_e(lab)}</code> = <code>{_e(r.out)}</code>"
                                            for lab, r in zip(labels, reports)) + "</p>",
            "<h2>Runs</h2>",
            _table(["bench", *shown, "unlearnkit / git", "one retrain"], [[(c, "") for c in h] for h in how]),
            "<h2>Leaderboards</h2>", '<p class="note">Click a column header to sort.</p>',
            _table(headers, rows, sortable=True),
            f'<img alt="score per method and bench" src="{figures.compare_scores(labels, names, scores)}">',
            "<h2>Setting (the same in every bench)</h2>", _kv_table(setting_fields(reports[0])[:6])]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Comparison</title>"
            f"<style>{_CSS}</style></head>\n<body>\n{''.join(body)}\n<script>{_JS}</script>\n</body></html>\n")
