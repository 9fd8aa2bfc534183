"""The typed leaderboard: JSON round trip, refusals that name the file, docs/results.md against the
dataclasses, and the layers (runner and report never import each other)."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from unlearnkit.errors import InputError
from unlearnkit.results.leaderboard import (
    CEILING,
    SCHEMA_VERSION,
    Accuracy,
    DivergedRun,
    Leaderboard,
    LeaderboardRow,
    OriginalModel,
    RetrainCost,
    RowGuard,
    read_leaderboard,
    write_leaderboard,
)
from unlearnkit.results.records import ModelMeta

ROOT = Path(__file__).parents[2]
PACKAGE = ROOT / "src" / "unlearnkit"


def _row(method: str, **fields) -> LeaderboardRow:
    base = dict(
        method=method, score=0.5, score_bounded=0.4, forget_quality=0.6, forget_quality_bounded=0.55,
        accuracy=Accuracy(retain=0.9, test=0.8, forget=0.7), retrain_accuracy=Accuracy(retain=0.91, test=0.81, forget=0.6),
        seconds=1.5, steps=10.0, compute=300.0, time_ratio=0.15, step_ratio=0.1, compute_ratio=0.12, over_limit=False,
        stopped_by_budget=0, peak_memory_bytes=2**30, memory_ratio=1.25, diverged=(), ulira=0.55, ulira_baseline=0.52,
        loss_mia=0.51, svc_mia_efficacy=0.3, forget_quality_interval=(0.5, 0.7), score_interval=(0.45, 0.55),
        klom_forget=1.5, klom_test=0.5, klom_retain_probe=None)
    return LeaderboardRow(**{**base, **fields})


def _board() -> Leaderboard:
    rows = (_row(CEILING, score=0.9, compute_ratio=1.0, time_ratio=1.0),
            _row("seif", diverged=(DivergedRun(seed_index=3, seed=1234, where="non-finite logits on forget"),),
                 over_limit=True, compute_ratio=0.35, stopped_by_budget=2),
            _row("finetune", score=0.1, compute=None, compute_ratio=None, time_ratio=None, peak_memory_bytes=None,
                 memory_ratio=None, loss_mia=None, forget_quality_interval=None, score_interval=None))
    return Leaderboard(
        rows=rows, seeds=16, forget_examples=124, dataset="synthetic", model="small_cnn", forget="identity:0.1",
        budget=0.2, retrain_cost=RetrainCost(seconds=None, steps=100.0, compute=2500.0, peak_memory_bytes=2**29,
                                             measured_on="16 retrains trained one at a time",
                                             conditions={"host": "a", "device": "cpu", "threads": 1, "precision": "fp32"},
                                             timing_note="no retrain was timed here"),
        original=OriginalModel(accuracy={"forget": 1.0, "retain": 0.99, "retain_probe": 0.99, "test": 0.8, "val": 0.8},
                               seed=7, seconds=12.0, compute=None),
        setting={"fingerprint": "abc"}, provenance={"unlearnkit": "0.1", "git": None})


def test_a_leaderboard_survives_json_and_a_file(tmp_path):
    board = _board()
    assert Leaderboard.from_json(json.loads(json.dumps(board.to_json()))) == board
    write_leaderboard(tmp_path / "leaderboard.json", board)
    again = read_leaderboard(tmp_path / "leaderboard.json")
    assert again == board and again.to_json()["schema_version"] == SCHEMA_VERSION
    assert again.row("seif").diverged[0].seed_index == 3 and again.ceiling.method == CEILING
    assert again.row("finetune").limit_judged_on is None and again.row("seif").limit_judged_on == "compute"


def _written(tmp_path: Path, record) -> Path:
    path = tmp_path / "out" / "leaderboard.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    return path


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("schema_version"), "schema 1 (unversioned)"),
    (lambda r: r.update(schema_version=1), "schema 1;"),
    (lambda r: r.update(schema_version=3), "schema 3"),
    (lambda r: r.pop("retrain_cost"), "lacks retrain_cost"),
    (lambda r: r["rows"][1].pop("over_limit"), "rows[1]: lacks over_limit"),
    (lambda r: r["rows"][0].update(over_time_limit=True), "rows[0]: has unknown over_time_limit"),
    (lambda r: r["rows"][2]["accuracy"].update(test="high"), "rows[2].accuracy.test: expected a number"),
    (lambda r: r["rows"][1]["diverged"][0].pop("seed"), "rows[1].diverged[0]: lacks seed"),
    (lambda r: r.update(rows={}), "rows: expected a list"),
])
def test_another_schema_or_a_hand_edit_is_refused_naming_the_file(tmp_path, edit, message):
    record = _board().to_json()
    record = json.loads(json.dumps(record))
    edit(record)
    path = _written(tmp_path, record)
    with pytest.raises(InputError) as err:
        read_leaderboard(path)
    text = str(err.value)
    assert str(path) in text and message in text and "\n" not in text


@pytest.mark.parametrize("text", ["", '{"schema_version": 2, "rows": [', "[1, 2]", "null"])
def test_a_truncated_or_foreign_file_is_one_clear_line(tmp_path, text):
    path = _written(tmp_path, text)
    with pytest.raises(InputError, match=re.escape(str(path))):
        read_leaderboard(path)


def test_a_recorded_schema_1_leaderboard_is_read_only_when_asked(tmp_path):
    """Recorded results (benchmarks/, forget's method choice) read schema 1 with what it lacked as null."""
    record = json.loads(json.dumps(_board().to_json()))
    del record["schema_version"], record["retrain_cost"]["compute"], record["retrain_cost"]["conditions"]
    del record["retrain_cost"]["timing_note"], record["original"]["compute"]
    for r in record["rows"]:
        r["over_time_limit"] = r.pop("over_limit")
        del r["compute"], r["compute_ratio"]
    path = _written(tmp_path, record)
    with pytest.raises(InputError, match="schema 1"):
        read_leaderboard(path)
    board = read_leaderboard(path, schema_1=True)
    assert [r.over_limit for r in board.rows] == [r.over_limit for r in _board().rows]
    assert board.retrain_cost.compute is None and all(r.compute_ratio is None for r in board.rows)
    assert board.row("seif").limit_judged_on == "time"


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "leaderboard.json"))):
        read_leaderboard(tmp_path / "leaderboard.json")


def test_a_model_record_without_a_required_field_is_named():
    meta = {"kind": "unlearn", "k": 0, "seed": 1, "seconds": 0.5, "accuracy": {"forget": 0.5}}
    assert ModelMeta.from_json(meta).compute is None  # an older record: not measured
    with pytest.raises(InputError, match="seed_0003.npz: the model record's meta lacks seconds"):
        ModelMeta.from_json({k: v for k, v in meta.items() if k != "seconds"}, "seed_0003.npz")


# -- docs/results.md, field by field -------------------------------------------------------------------

# The heading of each dataclass's table in docs/results.md.
DOCUMENTED = (Leaderboard, RetrainCost, OriginalModel, LeaderboardRow, RowGuard, Accuracy, DivergedRun, ModelMeta)


def documented_fields(doc: str, cls: type) -> set[str]:
    """The backticked names in the first column of the table under ``### `cls` ...``."""
    match = re.search(rf"^### `{cls.__name__}`.*?\n((?:\|[^\n]*\n)+)", doc, flags=re.S | re.M)
    assert match, f"docs/results.md has no ### `{cls.__name__}` section with a table"
    rows = [line for line in match.group(1).splitlines() if line.startswith("| `")]
    return {name for line in rows for name in re.findall(r"`([^`]+)`", line.split("|")[1])}


@pytest.mark.parametrize("cls", DOCUMENTED, ids=lambda c: c.__name__)
def test_docs_results_md_documents_exactly_the_dataclass_fields(cls):
    doc = (ROOT / "docs" / "results.md").read_text()
    fields = {f.name for f in dataclasses.fields(cls)} | ({"schema_version"} if cls is Leaderboard else set())
    documented = documented_fields(doc, cls)
    assert documented - fields == set(), f"docs/results.md documents fields {cls.__name__} does not have"
    assert fields - documented == set(), f"docs/results.md does not document these {cls.__name__} fields"
    assert f"schema\nversion {SCHEMA_VERSION}" in doc or f"schema version {SCHEMA_VERSION}" in doc


# -- the layers ----------------------------------------------------------------------------------------

def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top or inside a function."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
            modules |= {f"{node.module}.{a.name}" for a in node.names}
    return modules


@pytest.mark.parametrize("package, forbidden", [("runner", "unlearnkit.report"), ("report", "unlearnkit.runner"),
                                                ("results", "unlearnkit.runner"), ("results", "unlearnkit.report")])
def test_the_layers_point_one_way(package, forbidden):
    """runner writes results and report reads them; neither imports the other (the cli composes them)."""
    offenders = {str(p.relative_to(PACKAGE)): sorted(m for m in imported_modules(p) if m == forbidden
                                                     or m.startswith(forbidden + "."))
                 for p in sorted((PACKAGE / package).rglob("*.py"))}
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("package", ["results", "report"])
def test_no_file_of_the_results_layers_is_over_500_lines(package):
    long = {str(p.relative_to(PACKAGE)): n for p in (PACKAGE / package).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}
