"""Loading statistics from .npy/.npz files, and the ``unlearnkit metric`` command."""

from __future__ import annotations

import io
import json
import zipfile

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
                intervals=0, seed=0)
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
    with pytest.raises(InputError, match="holds Python objects"):
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


def test_forged_header_is_refused_before_allocating(tmp_path):
    # A valid .npy header claiming 10^13 float64 values, followed by 16 bytes of data.
    forged = tmp_path / "forged.npy"
    with open(forged, "wb") as fp:
        np.lib.format.write_array_header_1_0(
            fp, {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000_000)}
        )
        fp.write(b"\0" * 16)
    with pytest.raises(InputError) as err:
        load_statistics(forged)
    message = str(err.value)
    assert "forged.npy" in message and "(100000, 100000000)" in message and "16 bytes" in message
    # The same inside an .npz.
    with zipfile.ZipFile(tmp_path / "forged.npz", "w") as archive:
        archive.write(forged, "confs.npy")
    with pytest.raises(InputError, match="array 'confs'.*\\(100000, 100000000\\)"):
        load_statistics(tmp_path / "forged.npz")


def test_truncated_file_is_refused(tmp_path):
    np.save(tmp_path / "full.npy", np.zeros((16, 30)))
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) - 8])
    with pytest.raises(InputError, match="cut.npy.*\\(16, 30\\)"):
        load_statistics(tmp_path / "cut.npy")


def test_text_renamed_npy_is_not_called_pickled(tmp_path):
    (tmp_path / "stats.npy").write_text("0.1,0.2,0.3\n0.4,0.5,0.6\n")
    with pytest.raises(InputError, match="stats.npy: not a .npy file") as err:
        load_statistics(tmp_path / "stats.npy")
    assert "pickle" not in str(err.value)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64])
def test_complex_arrays_are_refused(tmp_path, dtype):
    x = (np.random.default_rng(0).normal(size=(16, 4)) + 1j).astype(dtype)
    np.save(tmp_path / "c.npy", x)
    np.savez(tmp_path / "c.npz", confs=x)
    for name in ("c.npy", "c.npz"):
        with pytest.raises(InputError, match=f"{np.dtype(dtype)}.*imaginary"):
            load_statistics(tmp_path / name)
    with pytest.raises(InputError, match="complex"):
        forgetting_quality(x, x)  # the library refuses too, rather than dropping the imaginary part


def test_string_arrays_are_refused(tmp_path):
    np.save(tmp_path / "s.npy", np.array([["a", "b"]] * 8))
    with pytest.raises(InputError, match="dtype <U1"):
        load_statistics(tmp_path / "s.npy")


# --------------------------------------------------------------------------------------------------
# run_metric_command


def test_run_metric_command_prints_and_writes_json(stats_files):
    path, u, r = stats_files
    console = Console(file=io.StringIO(), width=120)
    out = path / "out" / "fq.json"
    result = run(path / "unlearned.npy", path / "retrain_confs.npz", console=console,
                 json_out=str(out), mode="exact", intervals=3, seed=1)
    expected = forgetting_quality(u, r, mode="exact")
    assert result.forget_quality == expected.forget_quality
    text = console.file.getvalue()
    assert f"F = {expected.forget_quality:.4f}" in text
    assert "ε by bin" in text and "[0, 0.5)" in text and "[3, 50]" in text  # N = 16: bins end at 3
    assert "95 % interval for E[F] at N = 16" in text and "scored in" in text
    record = json.loads(out.read_text())
    assert record["result"]["forget_quality"] == expected.forget_quality
    assert record["result"]["epsilons"] == expected.epsilons.tolist()
    assert record["intervals"]["n_subsamples"] == 3 and record["intervals"]["subsample_size"] == 10
    fq = record["intervals"]["forget_quality"]
    assert fq["low"] <= fq["estimate"] == expected.forget_quality <= fq["high"]
    assert record["inputs"]["retrained"]["shape"] == [16, 30]
    assert {"load_s", "score_s"} <= set(record["timing"]) and "numpy" in record["provenance"]
    assert not list(out.parent.glob("*.tmp"))  # atomic write left nothing behind


def test_run_metric_command_keys(stats_files):
    path, u, r = stats_files
    result = run(path / "both.npz", path / "both.npz", unlearned_key="unlearned", retrained_key="retrained")
    assert result.forget_quality == forgetting_quality(u, r).forget_quality


def test_metric_command_prints_an_interval(stats_files, capsys):
    path, _, _ = stats_files
    from unlearnkit.cli import main

    assert main(["metric", "--unlearned", str(path / "unlearned.npy"), "--retrained", str(path / "retrain_confs.npz"),
                 "--retrained-key", "retrained_confs", "--intervals", "20"]) == 0
    assert "interval for E[F]" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [{"mode": "fast"}, {"intervals": -1}, {"intervals": 1}])
def test_run_metric_command_rejects_bad_options(stats_files, bad):
    path, _, _ = stats_files
    with pytest.raises(InputError):
        run(path / "unlearned.npy", path / "retrain_confs.npz", **bad)


# --------------------------------------------------------------------------------------------------
# The CLI (cli.main returns the exit code)


@pytest.mark.parametrize("where", ["directory", "under_a_file"])
def test_json_output_path_is_checked_before_any_work(stats_files, monkeypatch, where):
    path, _, _ = stats_files
    target = path if where == "directory" else path / "unlearned.npy" / "out.json"
    called = []
    monkeypatch.setattr("unlearnkit.metrics.files.forgetting_quality", lambda *a, **k: called.append(1))
    console = Console(file=io.StringIO(), width=120)
    with pytest.raises(InputError, match="directory" if where == "directory" else "is a file"):
        run(path / "unlearned.npy", path / "retrain_confs.npz", console=console, json_out=str(target))
    assert not called and console.file.getvalue() == ""  # nothing computed, nothing printed


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
        (lambda p: ["--unlearned", str(p / "forged.npy"), "--retrained", str(p / "unlearned.npy")],
         "forged.npy: its header claims shape (100000, 100000000)"),
        (lambda p: ["--unlearned", str(p / "text.npy"), "--retrained", str(p / "unlearned.npy")],
         "text.npy: not a .npy file"),
        (lambda p: ["--unlearned", str(p / "complex.npy"), "--retrained", str(p / "unlearned.npy")],
         "complex128"),
        (lambda p: ["--unlearned", str(p / "unlearned.npy"), "--retrained", str(p / "retrain_confs.npz"),
                    "--json", str(p)], "is a directory"),
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
    with open(path / "forged.npy", "wb") as fp:
        np.lib.format.write_array_header_1_0(
            fp, {"descr": "<f8", "fortran_order": False, "shape": (100_000, 100_000_000)}
        )
    (path / "text.npy").write_text("1 2 3\n")
    np.save(path / "complex.npy", u + 1j)
    assert main(["metric", *make(path)]) == 2
    captured = capsys.readouterr()
    assert words in " ".join(captured.err.split())
    assert "F =" not in captured.out  # refused before scoring or printing a report
