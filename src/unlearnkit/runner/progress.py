"""What a running bench shows: progress bars on a terminal, one line per unit in a log, and where the time went."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from unlearnkit.results.store import BenchStore
from unlearnkit.runner.units import Unit, unit_todo


class BenchProgress:
    """Follows :func:`~unlearnkit.runner.backends.run_units` events for one bench.

    On a terminal: one bar per stage (original, references, each method) with counts and an ETA.
    Elsewhere (a log file, CI): one line per finished unit. Either way it keeps each unit's time,
    for :meth:`summary`.
    """

    def __init__(self, console: Console, store: BenchStore, units: list[Unit]):
        self.console = console
        self.start = time.perf_counter()
        self.seconds: dict[str, float] = defaultdict(float)
        self.models: dict[str, int] = defaultdict(int)
        self.cached: dict[str, int] = defaultdict(int)
        totals: dict[str, int] = {}
        for unit in units:
            if unit.kind == "score":
                continue
            totals[unit.stage] = totals.get(unit.stage, 0) + unit.models
            self.cached[unit.stage] += unit.models - len(unit_todo(store, unit))
        self.totals = totals
        self.bars: Progress | None = None
        if console.is_terminal:
            self.bars = Progress(TextColumn("{task.description:<14}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("models"), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
            self.tasks = {stage: self.bars.add_task(stage, total=total, completed=self.cached[stage])
                          for stage, total in totals.items()}
        else:
            todo = {s: t - self.cached[s] for s, t in totals.items()}
            console.print(f"{sum(todo.values())} models to compute ({', '.join(f'{s} {n}' for s, n in todo.items() if n)}), "
                          f"{sum(self.cached.values())} already stored", highlight=False, soft_wrap=True)

    def __enter__(self) -> "BenchProgress":
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bars is not None:
            self.bars.stop()

    def event(self, kind: str, unit: Unit, payload: Any) -> None:
        if kind == "done":
            self.seconds[unit.stage] += payload.get("seconds", 0.0)
            self.models[unit.stage] += payload.get("models", 0)
            if self.bars is not None:
                self.bars.advance(self.tasks[unit.stage], payload.get("models", 0))
            else:
                self.console.print(f"done {unit.name}: {payload.get('models', 0)} models in {payload.get('seconds', 0.0):.1f}s "
                                   f"[{time.perf_counter() - self.start:.0f}s elapsed]", highlight=False, soft_wrap=True)
        elif kind == "failed":
            # The payload is an error's text, which may carry ANSI codes (Ray's): styles, not raw bytes in a log.
            self.console.print(Text.assemble(("failed", "red"), f" {unit.name}: ", Text.from_ansi(str(payload))),
                               highlight=False, soft_wrap=True)

    def summary(self) -> Table:
        """Where the time went: compute seconds per stage (summed over units), and the wall time."""
        wall = time.perf_counter() - self.start
        table = Table(title="where the time went", caption=f"wall time {wall:.0f}s; compute = the units' own time, "
                      "summed over parallel workers", caption_justify="left")
        for col in ("stage", "models", "cached", "compute s", "s / model"):
            table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
        for stage, total in self.totals.items():
            n, s = self.models[stage], self.seconds[stage]
            table.add_row(stage, str(n), str(self.cached[stage]), f"{s:.0f}", f"{s / n:.1f}" if n else "-")
        return table
