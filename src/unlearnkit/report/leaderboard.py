"""Leaderboard tables: one for the terminal or a log (as many whole columns as fit), one in Markdown
(all), and the columns report.md and report.html show. Every column names the field it reads.

A number or a method name is never cut: the terminal table drops whole columns, lowest priority
first, until the rest fits the width, and says which columns report.md has besides.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.table import Table

from unlearnkit.results.leaderboard import CEILING, GUARDED, Leaderboard, LeaderboardRow


@dataclass(frozen=True)
class Column:
    """One column of a leaderboard table.

    Attributes:
        header: Its heading.
        text: The cell's text for a row ("-" where the value is missing).
        sort: The value an HTML table sorts the cell by (None: by its text).
    """

    header: str
    text: Callable[[LeaderboardRow], str]
    sort: Callable[[LeaderboardRow], float | None] = lambda row: None


def fmt(value: Any, spec: str = "{:.3f}") -> str:
    """``value`` through ``spec``, or "-" for a missing value."""
    return "-" if value is None else spec.format(value)


def number(header: str, get: Callable[[LeaderboardRow], float | None], spec: str = "{:.3f}") -> Column:
    """A column showing (and sorting by) the number ``get`` reads from a row."""
    return Column(header, lambda row: fmt(get(row), spec), get)


def _method(row: LeaderboardRow) -> str:
    return row.method + (f" ({len(row.diverged)} diverged)" if row.diverged else "")


def _ratio(get: Callable[[LeaderboardRow], float | None], judged: str) -> Callable[[LeaderboardRow], str]:
    """A cost ratio's text; " !" where the row is over the 20 % limit and this ratio judged it."""
    def text(row: LeaderboardRow) -> str:
        flag = " !" if row.over_limit and row.limit_judged_on == judged else ""
        return fmt(get(row), "{:.1%}") + flag

    return text


def _memory(row: LeaderboardRow) -> str:
    if row.memory_ratio is not None:
        return f"{row.memory_ratio:.2f}x"
    return f"{row.peak_memory_bytes / 2**20:.0f} MiB" if row.peak_memory_bytes else "-"


def _interval(row: LeaderboardRow) -> str:
    return "-" if row.score_interval is None else "[{:.3f}, {:.3f}]".format(*row.score_interval)


def _guard(row: LeaderboardRow) -> str:
    """A guarded row's verdict: runs within the tolerance of the original ("8/8 within 2 pts"), or "-"."""
    g = row.guard
    if g is None:
        return "-"
    verdict = "" if g.passed == g.runs else "FAIL: "
    return f"{verdict}{g.passed}/{g.runs} within {100 * g.tolerance:g} pts"


METHOD = Column("method", _method)
GUARD = Column("guard", _guard, lambda r: r.guard and r.guard.passed / max(r.guard.runs, 1))
COMPUTE = Column("compute x retrain", _ratio(lambda r: r.compute_ratio, "compute"), lambda r: r.compute_ratio)
TIME = Column("time x retrain", _ratio(lambda r: r.time_ratio, "time"), lambda r: r.time_ratio)

# The terminal and Markdown leaderboard, in priority order: the first columns are always shown.
COLUMNS: tuple[Column, ...] = (
    METHOD,
    number("score", lambda r: r.score),
    number("F", lambda r: r.forget_quality),
    number("forget acc", lambda r: r.accuracy.forget),
    COMPUTE,
    TIME,
    number("test acc", lambda r: r.accuracy.test),
    number("retain acc", lambda r: r.accuracy.retain),
    GUARD,
    Column("score 95% CI", _interval, lambda r: r.score_interval and r.score_interval[0]),
    number("F bounded", lambda r: r.forget_quality_bounded),
    number("feature F", lambda r: r.feature_quality),
    number("KLoM forget", lambda r: r.klom_forget, "{:.2f}"),
    number("KLoM test", lambda r: r.klom_test, "{:.2f}"),
    number("U-LiRA", lambda r: r.ulira),
    number("loss MIA", lambda r: r.loss_mia),
    number("SVC MIA", lambda r: r.svc_mia_efficacy),
    number("s / seed", lambda r: r.seconds, "{:.2f}"),
)

# How each run went: what report.md's "Run health" shows and report.html's leaderboard ends with.
HEALTH: tuple[Column, ...] = (
    Column("peak memory (x retrain)", _memory, lambda r: r.memory_ratio or r.peak_memory_bytes),
    Column("over 20 %", lambda r: "yes" if r.over_limit else "no", lambda r: float(r.over_limit)),
    Column("diverged seeds", lambda r: ", ".join(str(d.seed_index) for d in r.diverged) or "none",
           lambda r: float(len(r.diverged))),
    Column("stopped by budget", lambda r: str(r.stopped_by_budget), lambda r: float(r.stopped_by_budget)),
    GUARD,
    COMPUTE,
    TIME,
    number("one-time x retrain", lambda r: r.one_time_ratio, "{:.1f}"),
)

# What ``compare`` sets side by side, per method and bench.
COMPARED: tuple[Column, ...] = (
    number("score", lambda r: r.score),
    number("F", lambda r: r.forget_quality),
    number("test acc", lambda r: r.accuracy.test),
    COMPUTE,
    TIME,
)

# Each column costs its width plus a separator of this many characters in the terminal table.
_GAP = 2


def cells(board: Leaderboard, columns: Sequence[Column] = COLUMNS) -> list[tuple[str, list[str]]]:
    """(header, the cell of every row) for each column."""
    return [(c.header, [c.text(r) for r in board.rows]) for c in columns]


def fitting_columns(board: Leaderboard, width: int) -> list[tuple[str, list[str]]]:
    """The leading columns whose full contents fit in ``width`` characters."""
    chosen, used = [], 0
    for header, column in cells(board):
        need = max(len(header), *(len(c) for c in column)) + _GAP
        if chosen and used + need > width:
            break
        chosen.append((header, column))
        used += need
    return chosen


def leaderboard_table(board: Leaderboard, width: int = 80) -> Table:
    """The leaderboard as a rich Table no wider than ``width`` (whole columns, full values)."""
    columns = fitting_columns(board, width)
    left_out = [c.header for c in COLUMNS[len(columns):]]
    text = caption(board) + (f" Not shown at this width (see report.md): {', '.join(left_out)}." if left_out else "")
    table = Table(title=title(board), caption=text, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  title_justify="left", caption_justify="left", collapse_padding=True)
    for header, column in columns:
        table.add_column(header, justify="left" if header == "method" else "right", no_wrap=True,
                         min_width=max(len(header), *(len(c) for c in column)))
    for i in range(len(board.rows)):
        table.add_row(*(column[i] for _, column in columns))
    return table


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table's lines (``|`` in a cell escaped)."""
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    return (["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows])


def columns_markdown(board: Leaderboard, columns: Sequence[Column]) -> list[str]:
    """``columns`` of every row as Markdown table lines."""
    shown = cells(board, columns)
    return md_table([h for h, _ in shown], [[column[i] for _, column in shown] for i in range(len(board.rows))])


def leaderboard_markdown(board: Leaderboard) -> str:
    """The leaderboard as a Markdown document, every column."""
    return "\n".join([f"# {title(board)}", "", *columns_markdown(board, COLUMNS), "", caption(board), ""])


def health_markdown(board: Leaderboard) -> list[str]:
    """report.md's "Run health" table: per row, memory, the 20 % flag, diverged seeds, budget stops and cost."""
    return columns_markdown(board, (METHOD, *HEALTH))


def guard_pairs_markdown(board: Leaderboard) -> list[str]:
    """Each method run both ways (``bench --guard``) on one line: its unguarded and guarded score, F,
    retain and test accuracy, compute x retrain and the guard's verdict; empty where none was guarded."""
    pairs = [(board.row(r.method.removesuffix(GUARDED)), r) for r in board.rows if r.method.endswith(GUARDED)]
    pairs = [(plain, guarded) for plain, guarded in pairs if plain is not None]
    if not pairs:
        return []

    def both(get, spec: str = "{:.3f}") -> Callable[[tuple[LeaderboardRow, LeaderboardRow]], str]:
        return lambda pair: f"{fmt(get(pair[0]), spec)} / {fmt(get(pair[1]), spec)}"

    shown = (("score", both(lambda r: r.score)), ("F", both(lambda r: r.forget_quality)),
             ("retain acc", both(lambda r: r.accuracy.retain)), ("test acc", both(lambda r: r.accuracy.test)),
             ("compute x retrain", both(lambda r: r.compute_ratio, "{:.1%}")))
    return md_table(["method", *(f"{h} (unguarded / guarded)" for h, _ in shown), "guard"],
                    [[plain.method, *(text((plain, guarded)) for _, text in shown), _guard(guarded)]
                     for plain, guarded in pairs])


def title(board: Leaderboard) -> str:
    """The bench in one line: dataset, model, forget set, N and budget."""
    budget = f", budget {board.budget:.0%} of a retrain's compute" if board.budget else ""
    return (f"{board.dataset} / {board.model} / forget {board.forget} ({board.forget_examples} examples), "
            f"N = {board.seeds} seeds per side{budget}")


def caption(board: Leaderboard) -> str:
    """How to read the leaderboard's columns."""
    timing = f" time x retrain is left out: {board.retrain_cost.timing_note}." if board.retrain_cost.timing_note else ""
    return ("score = F x (retain acc / retrain's) x (test acc / retrain's); F = the competition's forgetting quality. "
            f"'{CEILING}' = independent retrains, a perfect unlearner. U-LiRA, loss MIA: 0.5 = chance. "
            "compute x retrain: example passes (forward 1, backward 2) of one run / one retrain's; time x retrain: "
            "wall time of one run / one retrain's timed on the same host, device, threads and precision; "
            "'!' = over the competition's 20% limit (judged on compute where counted, else on time)." + timing +
            " score 95% CI: over new seeds of both sides (model subsampling; from N = 16). KLoM: 95th percentile of "
            "the per-example binned KL between unlearned and retrained margins (0 = indistinguishable). feature F: F on the "
            "outputs of a fresh linear head fitted on each model's penultimate features of the retain probe "
            "(docs/feature_forgetting.md; the ceiling's is the ideal)."
            + (" NAME+guard: NAME's runs (same seeds) under the utility guard; guard: runs whose model stayed within "
               "the tolerance of the original's retain and validation accuracy on the guard's probes, its cost "
               "counted in compute (docs/guard.md)." if any(r.guard is not None for r in board.rows) else ""))
