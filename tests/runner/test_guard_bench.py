"""The utility guard in the bench and in ``unlearnkit forget``: guarded rows beside unguarded ones,
the guard's cost in the row's compute, its outcome in the record, the leaderboard and the audit."""

from __future__ import annotations

import json

import pytest

from unlearnkit.cli import main
from unlearnkit.methods.guard import GuardConfig
from unlearnkit.report.audit import statements, write_audit
from unlearnkit.report.leaderboard import leaderboard_markdown
from unlearnkit.results.leaderboard import LeaderboardRow, read_leaderboard
from unlearnkit.results.records import model_meta
from unlearnkit.results.store import load_run
from unlearnkit.runner.forget import make_forget_job, run_forget
from unlearnkit.runner.jobs import TrainJob, bench_from_dict, bench_to_dict, make_bench_job, plan_units, run_train
from unlearnkit.runner.setting import make_setting_config
from unlearnkit.runner.units import run_labels, split_label

TINY = [
    "--set", "dataset.people=40", "--set", "dataset.image_size=16", "--set", "dataset.min_images=3",
    "--set", "dataset.max_images=5", "--model", "test_small_cnn", "--set", "train.epochs=1",
    "--set", "train.precision=fp32", "--forget", "identity:0.1", "--workers", "1",
]
DATA = {"people": 40, "min_images": 3, "max_images": 5}
# Kernels transposed and hardly fine-tuned: the model loses most of its retain accuracy.
DAMAGING = {"epochs": 1, "lr": 1e-6}


@pytest.fixture(scope="module")
def guarded_bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("guard")
    argv = ["bench", *TINY, "--methods", "transposed", "--seeds", "8", "--out", str(root / "out"),
            "--cache-dir", str(root / "cache"), "--set", "method.transposed.epochs=1",
            "--set", "method.transposed.lr=0.000001", "--set", "train.epochs=15", "--no-ceiling", "--guard", "0.05"]
    assert main(argv) == 0
    return root / "out"


def test_a_guarded_bench_has_both_rows_and_the_guard_cost_is_in_compute(guarded_bench):
    board = read_leaderboard(guarded_bench / "leaderboard.json")
    plain, guarded = board.row("transposed"), board.row("transposed+guard")
    assert plain.guard is None and guarded.guard is not None
    g = guarded.guard
    assert g.runs == 8 and g.tolerance == 0.05 and 0 <= g.passed <= 8 and g.compute > 0
    # The same seeds: each guarded run is its unguarded twin plus the guard's probe evaluations.
    assert guarded.compute == pytest.approx(plain.compute + g.compute)
    for k in range(8):
        meta = model_meta(load_run(guarded_bench / "methods" / "transposed+guard" / f"seed_{k:04d}.npz"))
        twin = model_meta(load_run(guarded_bench / "methods" / "transposed" / f"seed_{k:04d}.npz"))
        assert meta.seed == twin.seed and meta.guard["tolerance"] == 0.05 and twin.guard is None
        if meta.guard["passed"]:
            # The whole (tiny) retain set is the probe: a passing run kept its accuracy on all of R.
            assert meta.accuracy["retain"] >= meta.guard["original_retain"] - 0.05 - 1e-6
    # The method alone loses more than the guard allows; the guarded row keeps more of it.
    assert plain.accuracy.retain < g.original_retain - 0.05 < guarded.accuracy.retain
    md = leaderboard_markdown(board)
    assert "transposed+guard" in md and f"{g.passed}/8 within 5 pts" in md
    report = (guarded_bench / "report.md").read_text()
    assert "## Guarded and unguarded" in report and "| transposed | " in report
    assert LeaderboardRow.from_json(json.loads(json.dumps(guarded.to_json()))) == guarded


def test_a_bench_job_carries_its_guard_and_plans_the_guarded_runs():
    setting = make_setting_config(dataset_options=DATA, forget="identity:0.1", model="test_small_cnn")
    job = make_bench_job(setting, methods=("finetune",), seeds=8, guard=GuardConfig(tolerance=0.03))
    assert run_labels(job) == ["finetune", "finetune+guard"]
    assert split_label("finetune+guard") == ("finetune", True) and split_label("finetune") == ("finetune", False)
    assert [u.method for u in plan_units(job) if u.kind == "method"] == ["finetune", "finetune"] + ["finetune+guard"] * 2
    again = bench_from_dict(json.loads(json.dumps(bench_to_dict(job))))
    assert again.guard == job.guard
    plain = make_bench_job(setting, methods=("finetune",), seeds=8)
    assert plain.guard is None and run_labels(plain) == ["finetune"]
    assert bench_from_dict(json.loads(json.dumps(bench_to_dict(plain)))).guard is None


def test_bench_guard_tolerance_out_of_range_exits_2(tmp_path, capsys):
    argv = ["bench", *TINY, "--methods", "finetune", "--seeds", "8", "--out", str(tmp_path / "out"), "--guard", "3"]
    assert main(argv) == 2
    assert "guard tolerance 3.0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def underfit(tmp_path_factory):
    """A model that underfits its training set (15 epochs: retain accuracy about 0.6, not memorised)."""
    root = tmp_path_factory.mktemp("underfit")
    setting = make_setting_config(dataset_options=DATA, forget=None, model="test_small_cnn",
                                  train_options={"epochs": 15, "batch_size": 32, "keep_best": False, "precision": "fp32"})
    (path,) = run_train(TrainJob(setting, (0,), out=str(root / "orig")), log=lambda _: None)
    return path


def _forget(ckpt, out, **options) -> dict:
    job = make_forget_job(str(ckpt), out=str(out), dataset_options=DATA, identities="0,5,6", method="transposed",
                          method_options=DAMAGING, train_options={"precision": "fp32"}, cache_dir=str(out / "cache"),
                          **options)
    return write_audit(job.out, run_forget(job, log=lambda _: None).audit)


def test_forget_guards_by_default_and_says_so_in_the_audit(underfit, tmp_path):
    audit = _forget(underfit, tmp_path / "on")
    guard = audit["guard"]
    assert guard is not None and guard["tolerance"] == 0.02
    check = next(c for c in audit["checks"] if c["check"] == "utility_guard")
    retain = audit["measures"]["retain_accuracy"]
    assert check["passed"] is guard["passed"]
    if guard["passed"]:  # the probe is all of R here: the delivered model keeps its retain accuracy
        assert retain["after"] >= retain["before"] - 0.02 - 1e-6
    verified, failed, _ = statements(audit)
    said = verified if guard["passed"] else failed
    assert any("utility guard" in line and "2 points" in line for line in said)
    assert "Utility guard" in (tmp_path / "on" / "audit.html").read_text()


def test_forget_without_the_guard_loses_what_the_guard_keeps(underfit, tmp_path):
    guarded = _forget(underfit, tmp_path / "on")
    plain = _forget(underfit, tmp_path / "off", guard=None)
    assert plain["guard"] is None and not any(c["check"] == "utility_guard" for c in plain["checks"])
    assert guarded["guard"]["passed"]
    before = plain["measures"]["retain_accuracy"]["before"]
    assert plain["measures"]["retain_accuracy"]["after"] < before - 0.02  # the method alone loses it
    assert guarded["measures"]["retain_accuracy"]["after"] >= before - 0.02 - 1e-6


def test_forget_on_an_underfit_model_strikes_less_hard_and_says_so(underfit, tmp_path, monkeypatch):
    from unlearnkit.methods.regime import UNDERFIT_SCALE

    monkeypatch.setitem(UNDERFIT_SCALE, "oleszko", 0.5)
    job = make_forget_job(str(underfit), out=str(tmp_path / "f"), dataset_options=DATA, identities="0,5,6", method="oleszko",
                          method_options={"epochs": 1.0}, train_options={"precision": "fp32"}, cache_dir=str(tmp_path / "c"))
    assert job.regime == ("prune_fraction",)
    audit = write_audit(job.out, run_forget(job, log=lambda _: None).audit)
    regime = audit["method"]["regime"]
    default = make_forget_job(str(underfit), out=str(tmp_path / "g"), dataset_options=DATA, identities="0,5,6",
                              method="oleszko").method_config.prune_fraction
    assert regime["memorises"] is False and regime["retain"] < 0.9
    assert audit["method"]["config"]["prune_fraction"] == pytest.approx(default * 0.5) == regime["scaled"]["prune_fraction"]
    assert "does not memorise" in (tmp_path / "f" / "audit.html").read_text()
    # Set by the user: left alone.
    mine = make_forget_job(str(underfit), out=str(tmp_path / "h"), dataset_options=DATA, identities="0,5,6",
                           method="oleszko", method_options={"prune_fraction": 0.9})
    assert mine.regime is None


def test_a_bench_job_carries_the_fields_the_regime_rule_may_scale():
    setting = make_setting_config(dataset_options=DATA, forget="identity:0.1", model="test_small_cnn")
    job = make_bench_job(setting, methods=("oleszko", "finetune", "seif"), seeds=8,
                         method_options={"seif": {"first_noise_std": 0.1}})
    assert job.method_regime == {"oleszko": ("prune_fraction",), "finetune": None, "seif": ("last_noise_std",)}
    assert bench_from_dict(json.loads(json.dumps(bench_to_dict(job)))).method_regime == job.method_regime
    published = make_bench_job(setting, methods=("oleszko",), seeds=8, preset=None)
    assert published.method_regime == {"oleszko": None}
