"""Loading statistics from .npy/.npz files, and the ``unlearnkit metric`` command."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

from unlearnkit.errors import InputError
from unlearnkit.metrics import forgetting_quality, load_statistics, run_metric_command


@pytest.fixture()
def stats_files(tmp_path):
    """Unlearned statistics as .npy and retrained ones in the official evaluation's .npz format."""
    rng = np.random.default_rng(0)
    u = rng.normal(size=(16, 30))
    r = rng.normal(size=(16, 30)) + 0.4
    np.save(tmp_path / "unlearned.npy", u)
    np.savez(tmp_path / "retrain_confs.npz", retrained_confs=r)
    np.savez(tmp_path / "both.npz", unlearned=u, retrained=r)
    return tmp_path, u, r


def run(u, r, *, console=None, **overrides):
    args = dict(mode="compat", delta=1e-5, json_out=None, unlearned_key=None, retrained_key=None,
                bootstrap=0, seed=0)
    args.update(overrides)
    console = console or Console(file=io.StringIO(), width=120)
    return run_metric_command(str(u), str(r), console=console, **args)


# --------------------------------------------------------------------------------------------------
# load_statistics


def test_load_npy_and_single_array_npz(stats_files):
    path, u, r = stats_files
    np.testing.assert_array_equal(load_statistics(path / "unlearned.npy"), u)
    np.testing.assert_array_equal(load_statistics(path / "retrain_confs.npz"), r)  # one array: no key
    np.testing.assert_array_equal(load_statistics(path / "retrain_confs.npz", "retrained_confs"), r)
    np.testing.assert_array_equal(load_statistics(path / "both.npz", "unlearned"), u)


def test_several_arrays_and_no_key_lists_them(stats_files):
    path, _, _ = stats_files
    with pytest.raises(InputError, match="holds 2 arrays \\(unlearned, retrained\\)"):
        load_statistics(path / "both.npz")


def test_missing_key_lists_the_keys_present(stats_files):
    path, _, _ = stats_files
    with pytest.raises(InputError, match="no array 'confs'; it holds: retrained_confs"):
        load_statistics(path / "retrain_confs.npz", "confs")


def test_unreadable_or_unsupported_files(tmp_path):
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="cannot read"):
        load_statistics(tmp_path / "objects.npy")  # pickles are never loaded
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read"):
        load_statistics(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="no such file"):
        load_statistics(tmp_path / "missing.npy")
    with pytest.raises(InputError, match=".npy or .npz"):
        load_statistics(tmp_path / "stats.csv")
    np.save(tmp_path / "plain.npy", np.zeros((8, 2)))
    with pytest.raises(InputError, match="only applies to .npz"):
        load_statistics(tmp_path / "plain.npy", "x")


# --------------------------------------------------------------------------------------------------
# run_metric_command


def test_run_metric_command_prints_and_writes_json(stats_files):
    path, u, r = stats_files
    console = Console(file=io.StringIO(), width=120)
    out = path / "out" / "fq.json"
    result = run(path / "unlearned.npy", path / "retrain_confs.npz", console=console,
                 json_out=str(out), mode="exact", bootstrap=3, seed=1)
    expected = forgetting_quality(u, r, mode="exact")
    assert result.forget_quality == expected.forget_quality
    text = console.file.getvalue()
    assert f"F = {expected.forget_quality:.4f}" in text
    assert "ε by bin" in text and "[0, 0.5)" in text and "[3, 50]" in text  # N = 16: bins end at 3
    assert "bootstrap 95 % interval" in text and "scored in" in text
    record = json.loads(out.read_text())
    assert record["result"]["forget_quality"] == expected.forget_quality
    assert record["result"]["epsilons"] == expected.epsilons.tolist()
    assert record["bootstrap"]["n_boot"] == 3
    assert record["inputs"]["retrained"]["shape"] == [16, 30]
    assert {"load_s", "score_s"} <= set(record["timing"]) and "numpy" in record["provenance"]
    assert not list(out.parent.glob("*.tmp"))  # atomic write left nothing behind


def test_run_metric_command_keys(stats_files):
    path, u, r = stats_files
    result = run(path / "both.npz", path / "both.npz", unlearned_key="unlearned", retrained_key="retrained")
    assert result.forget_quality == forgetting_quality(u, r).forget_quality


@pytest.mark.parametrize("bad", [{"mode": "fast"}, {"bootstrap": -1}])
def test_run_metric_command_rejects_bad_options(stats_files, bad):
    path, _, _ = stats_files
    with pytest.raises(InputError):
        run(path / "unlearned.npy", path / "retrain_confs.npz", **bad)


# --------------------------------------------------------------------------------------------------
# The CLI (cli.main returns the exit code)


def test_cli_metric_scores_official_npz(stats_files, capsys):
    from unlearnkit.cli import main

    path, _, _ = stats_files
    code = main(["metric", "--unlearned", str(path / "unlearned.npy"), "--retrained",
                 str(path / "retrain_confs.npz"), "--retrained-key", "retrained_confs", "--mode",
                 "bounded", "--json", str(path / "b.json")])
    assert code == 0
    assert json.loads((path / "b.json").read_text())["result"]["mode"] == "bounded"


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: ["--unlearned", str(p / "unlearned.npy"), "--retrained", str(p / "short.npy")], "same N"),
        (lambda p: ["--unlearned", str(p / "few.npy"), "--retrained", str(p / "few.npy")], "at least 8"),
        (lambda p: ["--unlearned", str(p / "unlearned.npy"), "--retrained", str(p / "both.npz")], "holds 2 arrays"),
        (lambda p: ["--unlearned", str(p / "unlearned.npy"), "--retrained", str(p / "retrain_confs.npz"),
                    "--retrained-key", "confs"], "retrained_confs"),
        (lambda p: ["--unlearned", str(p / "nan.npy"), "--retrained", str(p / "unlearned.npy")], "NaN"),
        (lambda p: ["--unlearned", str(p / "flat.npy"), "--retrained", str(p / "flat.npy")], "2-D"),
        (lambda p: ["--unlearned", str(p / "nothing.npy"), "--retrained", str(p / "unlearned.npy")], "no such file"),
    ],
)
def test_cli_metric_bad_input_exits_2(stats_files, capsys, make, words):
    from unlearnkit.cli import main

    path, u, _ = stats_files
    np.save(path / "short.npy", u[:, :5])
    np.save(path / "few.npy", u[:4])
    np.save(path / "flat.npy", u[0])
    nan = u.copy()
    nan[3, 4] = np.nan
    np.save(path / "nan.npy", nan)
    assert main(["metric", *make(path)]) == 2
    assert words in " ".join(capsys.readouterr().err.split())
