"""The cost of answering R erasure requests: by retraining, by a method, by preparing once and a prepared method.

A prepared method (``shadow_matching``) pays a one-time cost (its pool of shadows) and then a small
per-request cost; an unprepared method pays only per request; retraining pays one retrain per
request. All in retrains' compute (example passes, engine.compute), so the rows compare on any host.
"""

from __future__ import annotations

from dataclasses import dataclass

REQUESTS = (1, 10, 100)


@dataclass(frozen=True)
class RequestCost:
    """One way of answering requests.

    Attributes:
        name: A method's name, or ``retrain``.
        per_request: Compute of one request, as a multiple of one retrain's.
        one_time: Compute paid once before the first request (a pool), as a multiple of one retrain's.
    """

    name: str
    per_request: float
    one_time: float = 0.0

    def __post_init__(self) -> None:
        if self.per_request < 0 or self.one_time < 0:
            raise ValueError(f"{self.name}: costs must be non-negative, got per request {self.per_request}, "
                             f"one-time {self.one_time}")

    def total(self, requests: int) -> float:
        """Retrains' worth of compute for ``requests`` requests."""
        return self.one_time + requests * self.per_request


def request_cost_table(rows: list[RequestCost], requests: tuple[int, ...] = REQUESTS) -> str:
    """A Markdown table: each way's one-time and per-request cost, and its total for each R in ``requests``."""
    lines = ["| way | one-time (x retrain) | per request (x retrain) | "
             + " | ".join(f"R = {r}" for r in requests) + " |",
             "|---|---|---|" + "---|" * len(requests)]
    for row in [RequestCost("retrain", 1.0), *rows]:
        lines.append(f"| {row.name} | {row.one_time:.2f} | {row.per_request:.3f} | "
                     + " | ".join(f"{row.total(r):.1f}" for r in requests) + " |")
    return "\n".join(lines) + "\n"
