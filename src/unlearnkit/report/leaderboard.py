"""Leaderboard tables: a rich table for the terminal and a Markdown report for the results folder."""

from __future__ import annotations

from rich.table import Table

COLUMNS = (
    ("method", "method", "{}"),
    ("score", "score", "{:.3f}"),
    ("F", "forget_quality", "{:.3f}"),
    ("F bounded", "forget_quality_bounded", "{:.3f}"),
    ("forget acc", ("accuracy", "forget"), "{:.3f}"),
    ("retain acc", ("accuracy", "retain"), "{:.3f}"),
    ("test acc", ("accuracy", "test"), "{:.3f}"),
    ("U-LiRA", "ulira", "{:.3f}"),
    ("loss MIA", "loss_mia", "{:.3f}"),
    ("SVC MIA", "svc_mia_efficacy", "{:.3f}"),
    ("s / seed", "seconds", "{:.2f}"),
    ("x retrain", "time_ratio", "{:.1%}"),
)


def _cell(row: dict, key, fmt: str) -> str:
    value = row[key[0]][key[1]] if isinstance(key, tuple) else row.get(key)
    if value is None:
        return "-"
    text = fmt.format(value)
    if key == "time_ratio" and row.get("over_time_limit"):
        text += " !"
    return text


def leaderboard_table(board: dict) -> Table:
    """The leaderboard as a rich Table."""
    table = Table(title=_title(board), caption=_caption(board))
    for header, _, _ in COLUMNS:
        table.add_column(header, justify="left" if header == "method" else "right")
    for row in board["rows"]:
        table.add_row(*(_cell(row, key, fmt) for _, key, fmt in COLUMNS))
    return table


def leaderboard_markdown(board: dict) -> str:
    """The leaderboard as a Markdown document."""
    lines = [f"# {_title(board)}", "", "| " + " | ".join(h for h, _, _ in COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for row in board["rows"]:
        lines.append("| " + " | ".join(_cell(row, key, fmt) for _, key, fmt in COLUMNS) + " |")
    lines += ["", _caption(board), ""]
    return "\n".join(lines)


def _title(board: dict) -> str:
    return (f"{board['dataset']} / {board['model']} / forget {board['forget']} ({board['forget_examples']} examples), "
            f"N = {board['seeds']} seeds per side")


def _caption(board: dict) -> str:
    return ("score = F x (retain acc / retrain's) x (test acc / retrain's), F = compat forgetting quality; "
            "'retrain (ceiling)' is a perfect unlearner (independent retrains); "
            "U-LiRA and loss MIA: 0.5 = chance; '!' = over the competition's 20% time limit.")
