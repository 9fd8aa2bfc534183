"""The method ``unlearnkit forget`` runs when none is given: the best recorded one within the budget.

The recorded leaderboards ship inside the package (``unlearnkit/results/recorded/*.json``), each one
a finished bench's ``leaderboard.json`` with where it came from (the bench command, its commit and
date). ``benchmarks/ship_default_leaderboard.py`` writes them; nothing else does.

Which leaderboard applies: one of the same dataset and the same kind of forget set. Kinds that ask
the same thing of a method are one kind (:data:`FORGET_FAMILIES`): forgetting people
(``identity``, ``identity_skewed``, ``identities``: every image of some people, the rest of whose
class stays), forgetting whole classes (``class``: the class's accuracy should drop to 0), and
forgetting scattered images (``random``, ``examples``). Where no leaderboard of that dataset and
kind exists, the nearest one is used (same dataset, then same kind, then any) and the choice says
so.

Which row: the highest ``score`` among registered methods whose compute (example passes, x one
retrain's) fits the budget (20 % of a retrain, the competition's limit, when none is given). A row
without a measured compute ratio cannot be chosen: its cost would be a guess.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from unlearnkit.errors import InputError
from unlearnkit.methods import METHODS
from unlearnkit.metrics.efficiency import COMPETITION_TIME_LIMIT
from unlearnkit.results.leaderboard import CEILING, Leaderboard

# Forget-set kinds that are one kind for choosing a method (see the module docstring).
FORGET_FAMILIES = {"identity": "people", "identity_skewed": "people", "identities": "people",
                   "class": "classes", "random": "images", "examples": "images"}
RECORDED_SCHEMA = 1


def recorded_dir() -> Path:
    """The folder of the recorded leaderboards shipped with the package."""
    return Path(str(resources.files("unlearnkit.results") / "recorded"))


@dataclass(frozen=True)
class RecordedBoard:
    """A shipped leaderboard and where it came from.

    Attributes:
        path: The file.
        board: The leaderboard.
        forget_kind: Its forget-set selector (``identity_skewed``, ``class``, ...).
        recorded: How it was made: ``command``, ``commit``, ``date`` of the bench, ``shipped`` date.
    """

    path: Path
    board: Leaderboard
    forget_kind: str
    recorded: dict

    @property
    def family(self) -> str:
        return FORGET_FAMILIES.get(self.forget_kind, self.forget_kind)

    def describe(self) -> str:
        b = self.board
        return (f"{self.path.name} ({b.dataset}, forget {b.forget}, {b.model}, N = {b.seeds}; bench of "
                f"{self.recorded.get('date', '?')}, commit {str(self.recorded.get('commit') or '?')[:10]})")


@dataclass(frozen=True)
class MethodChoice:
    """The default method and why: ``reason`` is what the audit and the log say."""

    method: str
    reason: str
    leaderboard: str
    same_setting: bool


def read_recorded(path: str | Path) -> RecordedBoard:
    """One recorded leaderboard file.

    Raises:
        InputError: not JSON, another recorded schema, or a leaderboard of another schema (named).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"recorded leaderboard {path} is not readable JSON ({exc})") from None
    if not isinstance(raw, dict) or raw.get("recorded_schema") != RECORDED_SCHEMA:
        raise InputError(f"recorded leaderboard {path}: expected recorded_schema {RECORDED_SCHEMA}; "
                         "regenerate it with benchmarks/ship_default_leaderboard.py")
    board = Leaderboard.from_json(raw.get("leaderboard"), where=str(path))
    kind = ((board.setting.get("config") or {}).get("forget_kind")) or board.forget.partition(":")[0]
    return RecordedBoard(path, board, str(kind), dict(raw.get("recorded") or {}))


def forget_family(kind: str) -> str:
    """The kind of erasure a forget-set selector asks for (``people``, ``classes``, ``images``)."""
    return FORGET_FAMILIES.get(kind, kind)


def default_method(budget: float | None, *, dataset: str, forget_kind: str,
                   results_dir: str | Path | None = None, refused: frozenset[str] = frozenset()) -> MethodChoice:
    """The best recorded method whose compute fits ``budget`` (None: 20 % of one retrain's).

    Args:
        budget: A fraction of one retrain's compute.
        dataset: The job's dataset.
        forget_kind: The job's forget-set kind (a selector name, or ``examples``).
        results_dir: Where the recorded leaderboards are (default: the ones shipped in the package).
        refused: Methods that do not apply to the model (``methods.requirements``); never chosen.

    Raises:
        InputError: no recorded leaderboard, or none of its methods fits the budget; says to pass
            ``--method`` (and the cheapest recorded method's cost).
    """
    folder = Path(results_dir) if results_dir is not None else recorded_dir()
    boards = [read_recorded(p) for p in sorted(folder.glob("*.json"))]
    if not boards:
        raise InputError(f"no recorded leaderboard in {folder} to choose a method from; pass --method NAME "
                         "(see `unlearnkit methods`)")
    family = forget_family(forget_kind)
    tiers = [("same", [b for b in boards if b.board.dataset == dataset and b.family == family]),
             (f"none of {dataset} with a forget set of {family}; used one of the same dataset",
              [b for b in boards if b.board.dataset == dataset]),
             (f"none of {dataset}; used one of another dataset with a forget set of {family}",
              [b for b in boards if b.family == family]),
             (f"none of {dataset} or of a forget set of {family}; used another", boards)]
    why_other, chosen = next((why, found) for why, found in tiers if found)
    limit = budget if budget is not None else COMPETITION_TIME_LIMIT
    fits, cheapest = [], None
    for rec in chosen:
        for row in rec.board.rows:
            ratio = row.compute_ratio
            if (row.method == CEILING or row.method not in METHODS or row.method in refused or row.diverged
                    or ratio is None or not math.isfinite(ratio)):
                continue
            cheapest = min(cheapest or (ratio, row.method), (ratio, row.method))
            if ratio <= limit:
                fits.append((row.score, row.method, ratio, rec))
    if not fits:
        cheap = f" (the cheapest, {cheapest[1]}, costs {cheapest[0]:.0%} of a retrain's compute)" if cheapest else ""
        raise InputError(f"no recorded method with a measured compute fits within {limit:.0%} of a retrain{cheap}; "
                         "pass --method NAME or a larger --budget")
    score, name, ratio, rec = max(fits, key=lambda f: (f[0], f[1]))
    within = f"--budget {budget}" if budget is not None else f"the competition's {COMPETITION_TIME_LIMIT:.0%} limit"
    same = why_other == "same"
    where = "" if same else f" (no recorded leaderboard matches this job: {why_other})"
    reason = (f"the best score ({score:.3f}, at {ratio:.0%} of a retrain's compute) among methods within {within} "
              f"on the recorded leaderboard {rec.describe()}{where}")
    return MethodChoice(name, reason, rec.path.name, same)
