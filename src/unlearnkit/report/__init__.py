"""Reads the store: leaderboard tables, report.html and report.md, and benches side by side."""

from unlearnkit.report.bench_report import BenchReport, read_bench_report
from unlearnkit.report.leaderboard import leaderboard_markdown, leaderboard_table
from unlearnkit.report.render import Comparison, compare_benches, write_report

__all__ = ["BenchReport", "Comparison", "compare_benches", "leaderboard_markdown", "leaderboard_table",
           "read_bench_report", "write_report"]
