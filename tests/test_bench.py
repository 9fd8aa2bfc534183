"""``unlearnkit bench`` end to end on tiny data: leaderboard, report, cache reuse, resume, refusals."""

from __future__ import annotations

import json

import pytest

from unlearnkit.cli import main

TINY = [
    "--set", "dataset.people=40", "--set", "dataset.image_size=16", "--set", "dataset.min_images=3",
    "--set", "dataset.max_images=5", "--model", "test_small_cnn", "--set", "train.epochs=1",
    "--set", "train.precision=fp32", "--forget", "identity:0.1",
]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    argv = ["bench", *TINY, "--methods", "finetune,ssd", "--seeds", "8", "--out", str(root / "out"),
            "--cache-dir", str(root / "cache"), "--set", "method.finetune.epochs=1"]
    assert main(argv) == 0
    return root, argv


def test_leaderboard_and_report(bench):
    root, _ = bench
    board = json.loads((root / "out" / "leaderboard.json").read_text())
    rows = {r["method"]: r for r in board["rows"]}
    assert set(rows) == {"finetune", "ssd", "retrain (ceiling)"}
    for r in rows.values():
        assert 0 <= r["forget_quality"] <= 1 and 0 <= r["forget_quality_bounded"] <= 1
        assert r["seconds"] > 0 and r["time_ratio"] > 0
        assert {"loss_mia", "svc_mia_efficacy", "ulira", "ulira_baseline"} <= set(r)
    assert [r["score"] for r in board["rows"]] == sorted((r["score"] for r in board["rows"]), reverse=True)
    report = (root / "out" / "report.md").read_text()
    assert "| finetune |" in report and "retrain (ceiling)" in report
    assert len(list((root / "cache" / "references").glob("*/seed_*.npz"))) == 16
    assert len(list((root / "out" / "methods" / "ssd").glob("seed_*.npz"))) == 8


def test_rerun_resumes_without_recomputing(bench, capsys):
    root, argv = bench
    stamps = {p: p.stat().st_mtime_ns for p in (root / "cache").rglob("*.npz")}
    stamps.update({p: p.stat().st_mtime_ns for p in (root / "out" / "methods").rglob("*.npz")})
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "retraining" not in out and "training the original" not in out
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_changed_method_settings_are_refused(bench, capsys):
    root, argv = bench
    changed = [a.replace("method.finetune.epochs=1", "method.finetune.epochs=2") for a in argv]
    assert main(changed) == 2
    assert "holds a different run" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seeds", "4"], "at least 8"),
        (["--seeds", "0:8"], "number of seeds"),
        (["--methods", "finetun"], "Did you mean 'finetune'"),
        (["--methods", "finetune", "--set", "method.scrub.epochs=1"], "not among --methods"),
        (["--methods", "finetune", "--set", "method.epochs=1"], "per method"),
    ],
)
def test_bad_bench_input_exits_2(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["bench", *TINY, *extra, "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 2
    assert message in capsys.readouterr().err
    assert not any(out.rglob("*.npz")) if out.exists() else True
