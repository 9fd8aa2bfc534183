"""Leaderboard tables: one for the terminal or a log (as many whole columns as fit), one in Markdown (all).

A number or a method name is never cut: the terminal table drops whole columns, lowest priority
first, until the rest fits the width, and says which columns report.md has besides.
"""

from __future__ import annotations

from typing import Any

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
    ("F bounded", "forget_quality_bounded", "{:.3f}"),
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
    text = fmt.format(value)
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
    caption = _caption(board) + (f" Not shown at this width (see report.md): {', '.join(left_out)}." if left_out else "")
    table = Table(title=_title(board), caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
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
    lines = [f"# {_title(board)}", "", "| " + " | ".join(h for h, _ in cells) + " |", "|" + "---|" * len(cells)]
    for i in range(len(board["rows"])):
        lines.append("| " + " | ".join(c[i] for _, c in cells) + " |")
    lines += ["", _caption(board), ""]
    return "\n".join(lines)


def _title(board: dict) -> str:
    budget = f", budget {board['budget']:.0%} of a retrain's steps" if board.get("budget") else ""
    return (f"{board['dataset']} / {board['model']} / forget {board['forget']} ({board['forget_examples']} examples), "
            f"N = {board['seeds']} seeds per side{budget}")


def _caption(board: dict) -> str:
    return ("score = F x (retain acc / retrain's) x (test acc / retrain's); F = the competition's forgetting quality. "
            "'retrain (ceiling)' = independent retrains, a perfect unlearner. U-LiRA, loss MIA: 0.5 = chance. "
            "x retrain: time of one run / one retrain's, '!' = over the competition's 20% limit.")
