"""``unlearnkit bench`` end to end on tiny data: leaderboard, report, terminal table, budget, divergence, refusals."""

from __future__ import annotations

import builtins
import dataclasses
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from rich.console import Console

from unlearnkit.cli import main
from unlearnkit.io import read_npz, write_npz
from unlearnkit.metrics.forgetting import forgetting_quality, logit_scaled_confidence
from unlearnkit.report.leaderboard import COLUMNS, leaderboard_table
from unlearnkit.results.leaderboard import CEILING, read_leaderboard
from unlearnkit.results.store import BenchStore, load_run
from unlearnkit.runner.backends.plan import Lock, read_units
from unlearnkit.runner.bench import finish_bench
from unlearnkit.runner.jobs import bench_from_dict
from unlearnkit.runner.setting import resolve_setting

TINY = [
    "--set", "dataset.people=40", "--set", "dataset.image_size=16", "--set", "dataset.min_images=3",
    "--set", "dataset.max_images=5", "--model", "test_small_cnn", "--set", "train.epochs=1",
    "--set", "train.precision=fp32", "--forget", "identity:0.1", "--workers", "1",
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
    board = read_leaderboard(root / "out" / "leaderboard.json")
    rows = {r.method: r for r in board.rows}
    assert set(rows) == {"finetune", "ssd", "retrain (ceiling)"}
    for r in rows.values():
        assert 0 <= r.forget_quality <= 1 and 0 <= r.forget_quality_bounded <= 1
        assert r.seconds > 0 and r.time_ratio > 0 and r.diverged == ()
        assert r.compute > 0 and r.compute_ratio > 0
        assert 0 <= r.loss_mia <= 1 and 0 <= r.svc_mia_efficacy <= 1 and 0 <= r.ulira <= 1 and 0 <= r.ulira_baseline <= 1
        assert r.klom_forget >= 0 and r.klom_test >= 0 and r.klom_retain_probe >= 0
        assert r.score_interval is None  # N = 8 is below the N the interval's coverage was measured at
    assert [r.score for r in board.rows] == sorted((r.score for r in board.rows), reverse=True)
    assert "one at a time" in board.retrain_cost.measured_on and board.retrain_cost.compute > 0
    # Both sets of references (N = 8 and the ceiling's 8) were timed alone and count.
    assert board.retrain_cost.measured_on.startswith("steps and compute: 16 retrains trained one at a time;")
    assert board.retrain_cost.conditions is not None and board.retrain_cost.timing_note is None
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
    assert "0 models to compute" in capsys.readouterr().out
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


@pytest.mark.parametrize("width", [80, 120])
def test_terminal_table_fits_and_never_cuts_a_value(bench, width):
    root, _ = bench
    board = read_leaderboard(root / "out" / "leaderboard.json")
    board = dataclasses.replace(board, rows=(dataclasses.replace(board.rows[0], method="a_rather_long_method_name"),
                                             *board.rows[1:]))
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False).print(leaderboard_table(board, width=width))
    text = out.getvalue()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= width
    assert "a_rather_long_method_name" in text and "ssd" in text
    assert f"{board.rows[1].score:.3f}" in text
    if width == 80:
        assert "Not shown at this width" in " ".join(text.split())  # the caption wraps anywhere
    else:
        assert all(column.header in text for column in COLUMNS[:8])


def test_piped_output_prints_one_line_per_unit_and_a_readable_leaderboard(tmp_path, capfd):
    argv = ["bench", *TINY, "--methods", "finetune", "--seeds", "8", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--set", "method.finetune.epochs=1"]
    assert main(argv) == 0
    out = capfd.readouterr().out
    assert "done references[0:4]: 4 models" in out and "done finetune[4:8]" in out
    assert "where the time went" in out and "…" not in out
    assert "| finetune" not in out and "finetune " in out


def test_budget_caps_every_run_and_is_part_of_the_run(tmp_path, capsys):
    argv = ["bench", *TINY, "--methods", "finetune", "--seeds", "8", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--set", "method.finetune.epochs=5", "--set", "train.batch_size=16",
            "--budget", "0.5"]
    assert main(argv) == 0
    board = read_leaderboard(tmp_path / "out" / "leaderboard.json")
    row = board.row("finetune")
    ref = board.retrain_cost.steps
    assert ref >= 6 and row.steps <= 0.5 * ref and row.stopped_by_budget == 8
    assert "budget 50%" in (tmp_path / "out" / "report.md").read_text()
    assert main([a if a != "0.5" else "0.4" for a in argv]) == 2
    assert "budget differ" in capsys.readouterr().err


def test_a_diverging_method_is_scored_as_the_worst_case(tmp_path):
    argv = ["bench", *TINY, "--methods", "neggrad,finetune", "--seeds", "8", "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--set", "method.neggrad.lr=1e30", "--set", "method.finetune.epochs=1"]
    assert main(argv) == 0
    row = read_leaderboard(tmp_path / "out" / "leaderboard.json").row("neggrad")
    assert len(row.diverged) == 8 and all("non-finite" in d.where for d in row.diverged)
    assert row.accuracy.retain == 0.0 and row.score == 0.0
    assert "(8 diverged)" in (tmp_path / "out" / "report.md").read_text()


def _without_ray(monkeypatch):
    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)


def test_ray_backend_without_ray_says_how_to_install(tmp_path, capsys, monkeypatch):
    _without_ray(monkeypatch)
    argv = ["bench", *[a for a in TINY if a not in ("--workers", "1")], "--methods", "finetune", "--seeds", "8",
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "--backend", "ray"]
    assert main(argv) == 2
    assert "pip install 'unlearnkit[ray]'" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.npz"))


def test_ray_address_that_does_not_answer_fails_fast(tmp_path, capsys):
    pytest.importorskip("ray")
    argv = ["bench", *[a for a in TINY if a not in ("--workers", "1")], "--methods", "finetune", "--seeds", "8",
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c"), "--backend", "ray", "--address", "127.0.0.1:9"]
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 30
    assert "no Ray cluster answers" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.npz"))


def test_work_rejects_a_unit_out_of_range_and_a_folder_without_a_bench(bench, tmp_path, capsys):
    root, argv = bench
    jobs = tmp_path / "jobs.txt"
    planned = tmp_path / "planned"
    assert main([*[a if a != str(root / "out") else str(planned) for a in argv], "--plan", str(jobs)]) == 0
    assert main(["work", str(planned), "--unit", "99"]) == 2
    assert "units 0.." in capsys.readouterr().err
    assert main(["work", str(tmp_path / "nothing"), "--next"]) == 2
    assert "holds no bench" in capsys.readouterr().err


def test_a_folder_from_another_results_version_is_refused(bench, tmp_path, capsys):
    root, argv = bench
    other = tmp_path / "old"
    other.mkdir()
    record = json.loads((root / "out" / "bench.json").read_text())
    (other / "bench.json").write_text(json.dumps({**record, "results_version": 1}))
    assert main([a if a != str(root / "out") else str(other) for a in argv]) == 2
    assert "results_version" in capsys.readouterr().err
    assert main(["work", str(other), "--next"]) == 2
    assert "results version 1" in capsys.readouterr().err


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
        (["--methods", "finetune", "--set", "method.finetune.epoch=1"], "did you mean 'epochs'"),
        (["--methods", "finetune", "--set", "train.lrr=0.1"], "did you mean 'lr'"),
        (["--methods", "finetune", "--set", "trian.lr=0.1"], "Did you mean 'train'"),
        (["--methods", "finetune", "--budget", "0"], "--budget 0"),
        (["--methods", "finetune", "--threads", "0"], "--threads 0"),
        (["--methods", "finetune", "--address", "127.0.0.1:9"], "apply to --backend ray"),
    ],
)
def test_bad_bench_input_exits_2(tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    assert main(["bench", *TINY, *extra, "--out", str(out), "--cache-dir", str(tmp_path / "c")]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.npz"))


def test_a_folder_resumed_with_another_cache_fills_that_cache(tmp_path):
    base = ["bench", *[a for a in TINY if a not in ("--workers", "1")], "--methods", "finetune", "--seeds", "8",
            "--out", str(tmp_path / "out"), "--set", "method.finetune.epochs=1", "--workers", "2"]
    assert main([*base, "--cache-dir", str(tmp_path / "a")]) == 0
    assert main([*base, "--cache-dir", str(tmp_path / "b")]) == 0
    assert len(list((tmp_path / "b" / "references").glob("*/seed_*.npz"))) == 16
    assert json.loads((tmp_path / "out" / "bench.json").read_text())["cache"] == str(tmp_path / "b")


# -- what the score reads ----------------------------------------------------------------------------


def _bench_parts(out):
    """(job, store, forget labels) of the bench in folder ``out``, as the score unit sees them."""
    store = BenchStore.open(out)
    raw, _ = read_units(store)
    job = bench_from_dict({**raw, "out": str(out)})
    return job, store, resolve_setting(job.setting).sets.forget.y.numpy()


def _confidences(paths, forget_y):
    return np.stack([logit_scaled_confidence(load_run(p)["forget_logits"], forget_y) for p in paths])


def test_the_ceiling_is_scored_from_references_n_to_2n_and_every_other_row_against_0_to_n(bench):
    root, _ = bench
    job, store, forget_y = _bench_parts(root / "out")
    n = job.seeds
    refs = _confidences([store.reference(k) for k in range(2 * n)], forget_y)
    board = read_leaderboard(root / "out" / "leaderboard.json")
    assert board.row(CEILING).forget_quality == forgetting_quality(refs[n:], refs[:n]).forget_quality
    for method in ("finetune", "ssd"):
        runs = _confidences([store.method_run(method, k) for k in range(n)], forget_y)
        assert board.row(method).forget_quality == forgetting_quality(runs, refs[:n]).forget_quality
    # The two sets differ, so scoring the ceiling against its own references would show.
    assert forgetting_quality(refs[n:], refs[n:]).forget_quality == 1.0 != board.row(CEILING).forget_quality


def _rescored_with_diverged_seeds(root, out, method, diverged):
    """A copy of the bench in ``root`` at ``out`` whose ``method`` seeds ``diverged`` have non-finite
    logits (as a unit records such a model), scored again: (job, store, forget labels, leaderboard)."""
    shutil.copytree(root / "out", out)
    job, store, forget_y = _bench_parts(out)
    for k in diverged:
        record = load_run(store.method_run(method, k))
        meta = {**json.loads(str(record["meta"])), "diverged": "non-finite logits on forget"}
        record["forget_logits"] = np.full_like(record["forget_logits"], np.nan)
        write_npz(store.method_run(method, k), **{**record, "meta": np.array(json.dumps(meta))})
    return job, store, forget_y, finish_bench(job, store)


def test_a_diverged_seed_takes_the_worst_placement_on_every_example(bench, tmp_path):
    root, _ = bench
    diverged = (2, 5)
    job, store, forget_y, board = _rescored_with_diverged_seeds(root, tmp_path / "out", "finetune", diverged)
    n = job.seeds
    row = board.row("finetune")
    assert [d.seed_index for d in row.diverged] == list(diverged)
    healthy = [k for k in range(n) if k not in diverged]
    runs = _confidences([store.method_run("finetune", k) for k in healthy], forget_y)
    refs = _confidences([store.reference(k) for k in range(n)], forget_y)
    eps = read_npz(store.per_example)
    mine = eps["eps_compat"][list(eps["methods"]).index("finetune")]
    # Each example's ε is at least what any of the four placements gives it: beyond every finite
    # output above or below, or at the row's highest or lowest healthy output there.
    finite = np.concatenate([runs.ravel(), refs.ravel()])
    for fill in (finite.max() + 1.0, finite.min() - 1.0, runs.max(axis=0), runs.min(axis=0)):
        placed = np.empty((n, len(forget_y)))
        placed[healthy], placed[list(diverged)] = runs, fill
        assert (mine >= forgetting_quality(placed, refs).epsilons.astype(np.float32)).all()
    retain = [load_run(store.method_run("finetune", k)) for k in healthy]
    assert row.accuracy.retain == pytest.approx(sum(json.loads(str(r["meta"]))["accuracy"]["retain"] for r in retain) / n)


def test_a_diverged_seed_never_scores_better_than_the_healthy_model_it_replaces(bench, tmp_path):
    root, _ = bench
    healthy = read_leaderboard(root / "out" / "leaderboard.json").row("finetune")
    *_, board = _rescored_with_diverged_seeds(root, tmp_path / "out", "finetune", (2, 5))
    assert board.row("finetune").forget_quality <= healthy.forget_quality


# -- refused before any work ---------------------------------------------------------------------------


def test_a_bad_method_value_is_refused_before_anything_is_written(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    base = ["bench", *TINY, "--methods", "seif", "--seeds", "8", "--out", str(out), "--cache-dir", str(cache)]
    assert main([*base, "--set", "method.seif.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "method.seif.lr" in err and "-1" in err
    assert not out.exists() and not cache.exists()
    # The same folder then takes a valid run (planned here: it writes the records, computes nothing).
    assert main([*base, "--set", "method.seif.lr=0.01", "--plan", str(tmp_path / "jobs.txt")]) == 0
    assert json.loads((out / "methods" / "seif" / "config.json").read_text())["config"]["lr"] == 0.01


def test_bench_out_naming_a_file_exits_2_in_one_line(tmp_path, capsys):
    (tmp_path / "out").write_text("not a folder")
    assert main(["bench", *TINY, "--methods", "finetune", "--seeds", "8", "--out", str(tmp_path / "out"),
                 "--cache-dir", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "out") in err and "a file is there" in err
    assert (tmp_path / "out").read_text() == "not a folder" and not (tmp_path / "cache").exists()


def test_a_second_bench_on_a_folder_in_use_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["bench", *TINY, "--methods", "finetune", "--seeds", "8", "--out", str(out), "--cache-dir", str(cache),
            "--plan", str(tmp_path / "jobs.txt")]
    running = Lock(BenchStore.bench_lock(out))  # a bench of this process, still running
    assert running.acquire()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in use" in err and f"pid {os.getpid()}" in err
    assert sorted(p.name for p in out.rglob("*")) == ["bench.lock", "locks"] and not cache.exists()
    running.release()
    # A lock left by a process that died on this host is stale: the next bench takes it over.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    BenchStore.bench_lock(out).write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "since": 0}))
    assert main(argv) == 0
    assert (out / "bench.json").is_file() and not BenchStore.bench_lock(out).exists()
