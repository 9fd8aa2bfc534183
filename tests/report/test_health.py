"""report.md's "Run health" and report.html's leaderboard, rendered from a leaderboard of known values:
every value is found under its own header (the columns are read by field name, not by position)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from unlearnkit.report.bench_report import BenchReport, RowRuns
from unlearnkit.report.html import render_html
from unlearnkit.report.leaderboard import COLUMNS, leaderboard_markdown
from unlearnkit.report.markdown import report_markdown
from unlearnkit.results.leaderboard import (
    CEILING,
    Accuracy,
    DivergedRun,
    Leaderboard,
    LeaderboardRow,
    OriginalModel,
    RetrainCost,
)


def _row(method: str, **fields) -> LeaderboardRow:
    base = dict(
        method=method, score=0.5, score_bounded=0.4, forget_quality=0.6, forget_quality_bounded=0.55,
        accuracy=Accuracy(retain=0.9, test=0.8, forget=0.7), retrain_accuracy=Accuracy(retain=0.91, test=0.81, forget=0.6),
        seconds=1.5, steps=10.0, compute=300.0, time_ratio=1.0, step_ratio=1.0, compute_ratio=1.0, over_limit=False,
        stopped_by_budget=0, peak_memory_bytes=2**30, memory_ratio=1.0, diverged=(), ulira=0.55, ulira_baseline=0.52,
        loss_mia=0.51, svc_mia_efficacy=0.3, forget_quality_interval=None, score_interval=None,
        klom_forget=1.5, klom_test=0.5, klom_retain_probe=0.25)
    return LeaderboardRow(**{**base, **fields})


# Per row, what each health column must show.
EXPECTED = {
    CEILING: {"peak memory (x retrain)": "-", "over 20 %": "no", "diverged seeds": "none", "stopped by budget": "0",
              "compute x retrain": "100.0%", "time x retrain": "100.0%"},
    "seif": {"peak memory (x retrain)": "1.25x", "over 20 %": "yes", "diverged seeds": "3, 5", "stopped by budget": "2",
             "compute x retrain": "35.0% !", "time x retrain": "50.0%"},
    "finetune": {"peak memory (x retrain)": "3 MiB", "over 20 %": "yes", "diverged seeds": "none", "stopped by budget": "7",
                 "compute x retrain": "-", "time x retrain": "24.0% !"},
    "ssd": {"peak memory (x retrain)": "0.50x", "over 20 %": "no", "diverged seeds": "none", "stopped by budget": "4",
            "compute x retrain": "4.0%", "time x retrain": "-"},
}


def known_board() -> Leaderboard:
    diverged = tuple(DivergedRun(seed_index=k, seed=100 + k, where="non-finite logits on forget") for k in (3, 5))
    rows = (
        _row(CEILING, score=0.9, peak_memory_bytes=None, memory_ratio=None),
        _row("seif", score=0.6, memory_ratio=1.25, over_limit=True, diverged=diverged, stopped_by_budget=2,
             compute_ratio=0.35, time_ratio=0.5),
        _row("finetune", score=0.3, peak_memory_bytes=3 * 2**20, memory_ratio=None, over_limit=True, stopped_by_budget=7,
             compute=None, compute_ratio=None, time_ratio=0.24),
        _row("ssd", score=0.1, memory_ratio=0.5, compute_ratio=0.04, time_ratio=None, stopped_by_budget=4),
    )
    cost = RetrainCost(seconds=10.0, steps=100.0, compute=3000.0, peak_memory_bytes=2**30, measured_on="16 retrains",
                       conditions={"host": "h", "device": "cpu", "threads": 1, "precision": "fp32"}, timing_note=None)
    return Leaderboard(rows=rows, seeds=16, forget_examples=6, dataset="synthetic", model="small_cnn",
                       forget="identity:0.1", budget=None, retrain_cost=cost,
                       original=OriginalModel(accuracy={"test": 0.8}, seed=1, seconds=10.0, compute=3000.0),
                       setting={}, provenance={"unlearnkit": "test"})


def known_report(board: Leaderboard) -> BenchReport:
    """The report of ``board`` without a bench folder: per-example ε made up, no stored models."""
    names, e = board.methods, 6
    rng = np.random.default_rng(0)
    per_example = {"methods": np.array(names), "eps_compat": rng.uniform(0, 5, (len(names), e)).astype(np.float32),
                   "eps_bounded": rng.uniform(0, 5, (len(names), e)).astype(np.float32),
                   "forget_index": np.arange(e), "forget_label": np.zeros(e, np.int64),
                   "forget_group": np.full(e, -1), "forget_images": np.zeros((e, 4, 4, 1), np.uint8)}
    none = RowRuns(None, [], "nowhere", ["not stored"])
    return BenchReport(Path("/nowhere"), {}, board, per_example, {}, [], none, {n: none for n in names})


def _table_after(text: str, heading: str) -> list[dict[str, str]]:
    """The Markdown table under ``heading`` as one {header: cell} per row."""
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    table = lines[start: next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))]
    headers = [c.strip() for c in table[0].strip("|").split("|")]
    return [dict(zip(headers, (c.strip() for c in ln.strip("|").split("|")))) for ln in table[2:]]


def _by_method(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {r["method"].split(" (")[0] if not r["method"].startswith(CEILING) else CEILING: r for r in rows}


def test_run_health_shows_each_value_under_its_header():
    text = report_markdown(known_report(known_board()))
    rows = _by_method(_table_after(text, "## Run health"))
    assert set(rows) == set(EXPECTED)
    for method, expected in EXPECTED.items():
        assert {h: rows[method][h] for h in expected} == expected, method
    assert rows["seif"]["method"] == "seif (2 diverged)"


def test_the_markdown_leaderboard_puts_cost_under_compute_and_time():
    rows = _by_method(_table_after(leaderboard_markdown(known_board()), "# synthetic"))
    for method, expected in EXPECTED.items():
        assert rows[method]["compute x retrain"] == expected["compute x retrain"]
        assert rows[method]["time x retrain"] == expected["time x retrain"]
    assert [h for h in rows["seif"]][:6] == [c.header for c in COLUMNS[:6]]


class _Cells(HTMLParser):
    """The first table's header texts and rows of cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self._text: list[str] | None = None
        self._tables = 0

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._tables += 1
        if tag == "tr" and self._tables == 1:
            self.rows.append([])
        if tag in ("td", "th") and self._tables == 1:
            self._text = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._text is not None:
            (self.headers if tag == "th" else self.rows[-1]).append("".join(self._text).strip())
            self._text = None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)


def test_report_html_leaderboard_shows_each_health_value_under_its_header():
    parser = _Cells()
    parser.feed(render_html(known_report(known_board())))
    table = [dict(zip(parser.headers, r)) for r in parser.rows if r]
    rows = _by_method(table)
    for method, expected in EXPECTED.items():
        assert {h: rows[method][h] for h in expected} == expected, method
    assert rows["seif"]["F (ceiling 0.600)"] == "0.600"
