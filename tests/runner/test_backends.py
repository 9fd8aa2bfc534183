"""One bench, every backend: local (1 and 2 workers), Ray, and plan + work in shuffled order, unit for unit equal.

Also: a bench killed mid-unit resumes to the same result, adding a method trains no reference, and
no two models of a bench share a seed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from unlearnkit.cli import main
from unlearnkit.results.leaderboard import read_leaderboard

TINY = [
    "--set", "dataset.people=40", "--set", "dataset.image_size=16", "--set", "dataset.min_images=3",
    "--set", "dataset.max_images=5", "--model", "test_small_cnn", "--set", "train.epochs=2",
    "--set", "train.precision=fp32", "--forget", "identity:0.1", "--methods", "finetune,neggrad",
    "--set", "method.finetune.epochs=1", "--seeds", "8", "--block", "4",
]
# What differs between two runs of the same bench: wall times and what follows from them, and where it ran.
TIMING = {"seconds", "time_ratio", "peak_memory_bytes", "memory_ratio", "provenance", "retrain_cost", "runtime"}


def comparable(board):
    """The leaderboard without timings and provenance (everything else must be bit-identical)."""
    if isinstance(board, dict):
        return {k: comparable(v) for k, v in board.items() if k not in TIMING}
    if isinstance(board, list):
        return [comparable(v) for v in board]
    return board


def bench(root: Path, *extra: str) -> list[str]:
    return ["bench", *TINY, "--out", str(root / "out"), "--cache-dir", str(root / "cache"), *extra]


def board_of(root: Path) -> dict:
    return json.loads((root / "out" / "leaderboard.json").read_text())


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from unlearnkit.cli import main; sys.exit(main(sys.argv[1:]))", *args]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The bench run in this process, one unit after another."""
    root = tmp_path_factory.mktemp("local1")
    assert main(bench(root, "--workers", "1")) == 0
    return root


def test_two_local_workers_give_the_same_leaderboard(reference, tmp_path):
    assert main(bench(tmp_path, "--workers", "2")) == 0
    assert comparable(board_of(tmp_path)) == comparable(board_of(reference))


@pytest.mark.ray
def test_ray_gives_the_same_leaderboard(reference, tmp_path):
    pytest.importorskip("ray")
    # Blocks group models into units; each model's bits do not depend on its block.
    assert main(bench(tmp_path, "--backend", "ray", "--cpus-per-unit", "1", "--block", "8")) == 0
    assert comparable(board_of(tmp_path)) == comparable(board_of(reference))
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "units").glob("*.json")]
    assert records and {r["backend"] for r in records} == {"ray"}


def test_plan_and_work_in_shuffled_order_give_the_same_leaderboard(reference, tmp_path):
    jobs = tmp_path / "jobs.txt"
    assert main(bench(tmp_path, "--plan", str(jobs), "--block", "8")) == 0
    lines = jobs.read_text().splitlines()
    units = json.loads((tmp_path / "out" / "units.json").read_text())["units"]
    assert len(lines) == len(units) and units[-1]["kind"] == "score" and not (tmp_path / "out" / "leaderboard.json").exists()
    order = list(range(len(units)))
    random.Random(3).shuffle(order)
    # Two workers at a time, each a separate process, in an order that puts dependants first.
    for pair in (order[i : i + 2] for i in range(0, len(order), 2)):
        procs = [subprocess.Popen(cli("work", str(tmp_path / "out"), "--unit", str(i)), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for i in pair]
        for p in procs:
            out, _ = p.communicate(timeout=300)
            assert p.returncode == 0, out
    assert comparable(board_of(tmp_path)) == comparable(board_of(reference))
    assert not list((tmp_path / "out" / "locks").glob("*.lock"))
    # The worker that ran the score unit wrote the reports after it (the command composes the two).
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "report.md").is_file()


def test_work_next_claims_one_unit_and_drain_the_rest(reference, tmp_path, capsys):
    jobs = tmp_path / "jobs.txt"
    assert main(bench(tmp_path, "--plan", str(jobs))) == 0
    assert main(["work", str(tmp_path / "out"), "--next"]) == 0
    assert "running original" in capsys.readouterr().out
    assert main(["work", str(tmp_path / "out"), "--drain"]) == 0
    out = capsys.readouterr().out
    assert "running score" in out and "every unit" in out
    assert comparable(board_of(tmp_path)) == comparable(board_of(reference))


def test_killed_bench_resumes_computing_only_what_is_missing(reference, tmp_path):
    proc = subprocess.Popen(cli(*bench(tmp_path, "--workers", "1")), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    methods = tmp_path / "out" / "methods"
    deadline = time.monotonic() + 300
    while not list(methods.glob("*/seed_*.npz")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")}
    assert before and len([p for p in before if "methods" in p.parts]) < 16, "the kill came too late to test a resume"
    assert main(bench(tmp_path, "--workers", "1")) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert comparable(board_of(tmp_path)) == comparable(board_of(reference))


def test_adding_a_method_trains_no_reference(reference, tmp_path, capsys):
    root = tmp_path
    base = [a for a in bench(root, "--workers", "1")]
    assert main(base) == 0
    stamps = {p: p.stat().st_mtime_ns for p in (root / "cache").rglob("*") if p.is_file()}
    capsys.readouterr()
    more = [a if a != "finetune,neggrad" else "finetune,neggrad,random_label" for a in base]
    assert main(more) == 0
    out = capsys.readouterr().out
    assert "8 models to compute (random_label 8)" in out
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert set(read_leaderboard(root / "out" / "leaderboard.json").methods) == {"finetune", "neggrad", "random_label",
                                                                                "retrain (ceiling)"}


def test_no_two_models_share_a_seed(reference):
    from unlearnkit.results.store import load_run, run_meta

    files = list((reference / "cache").rglob("*.npz")) + list((reference / "out" / "methods").rglob("*.npz"))
    seeds = [run_meta(load_run(p))["seed"] for p in files]
    roles = {run_meta(load_run(p))["kind"] for p in files}
    assert roles == {"original", "retrain", "unlearn"} and len(files) == 1 + 16 + 16
    assert len(set(seeds)) == len(seeds)


def test_every_model_record_is_complete(reference):
    from unlearnkit.results.store import load_run, run_meta

    for path in (reference / "out" / "methods").rglob("*.npz"):
        record = load_run(path)
        assert {"forget_logits", "test_logits", "retain_probe_logits", "meta"} <= set(record)
        assert np.isfinite(record["forget_logits"]).all()
        assert {"forget", "retain", "test", "val", "retain_probe"} <= set(run_meta(record)["accuracy"])


def test_a_unit_refused_as_bad_input_exits_2_and_keeps_the_rest(tmp_path, capsys):
    # No validation split: scramble_relearn refuses at run time, inside its units.
    setting = TINY[:TINY.index("--methods")] + TINY[TINY.index("--seeds"):]  # TINY less its methods
    args = ["bench", *setting, "--methods", "scramble_relearn", "--no-ceiling", "--workers", "1",
            "--set", "dataset.val_fraction=0", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "scramble_relearn" in err and "validation split has none" in err
    assert not (tmp_path / "out" / "leaderboard.json").exists()
    assert list((tmp_path / "cache").rglob("seed_*.npz"))  # the references it trained are kept for a rerun
