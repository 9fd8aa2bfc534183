"""Reads the store: leaderboard tables, report.html and report.md, and benches side by side."""

from unlearnkit.report.html import (
    SCHEMA_VERSION,
    BenchReport,
    Comparison,
    compare_benches,
    read_bench_report,
    write_report,
)
from unlearnkit.report.leaderboard import leaderboard_markdown, leaderboard_table

__all__ = ["SCHEMA_VERSION", "BenchReport", "Comparison", "compare_benches", "leaderboard_markdown", "leaderboard_table",
           "read_bench_report", "write_report"]
