"""benchmarks/forget_gap.py: telling a wrong forget-set level from a wrong per-example placement."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import benchmark_script
from test_protocol_table import board, row


@pytest.fixture(scope="module")
def gap_script():
    return benchmark_script("forget_gap")


def draws(means: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``[n, E]`` confidences: each example's draws around its own mean, spread 1."""
    return means + np.random.default_rng(seed).normal(size=(n, len(means)))


def test_a_shifted_level_and_a_scrambled_placement_are_told_apart(gap_script):
    means = np.random.default_rng(0).normal(0.0, 3.0, size=200)
    refs = draws(means, 32, seed=1)
    # The right placement at the wrong level: matching the level recovers F, placement is intact.
    shifted = gap_script.gap(draws(means, 32, seed=2) + 2.0, refs)
    assert shifted["level"] - shifted["retrain_level"] == pytest.approx(2.0, abs=0.1)
    assert shifted["placement_corr"] > 0.95
    assert shifted["f"] < 0.05 and shifted["f_level_matched"] > 0.1
    # The right level with every example in another's place: only matching the placement recovers F.
    scrambled = gap_script.gap(draws(np.random.default_rng(3).permutation(means), 32, seed=4), refs)
    assert abs(scrambled["placement_corr"]) < 0.3
    assert scrambled["f_level_matched"] < 0.05 and scrambled["f_placement_matched"] > 0.1
    assert scrambled["spread"] == pytest.approx(1.0, abs=0.1)


def test_refuses_a_folder_that_is_not_a_finished_bench(gap_script, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gap_script, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["forget_gap.py", "demo", str(tmp_path / "nothing")])
    with pytest.raises(SystemExit) as stop:
        gap_script.main()
    assert stop.value.code == 2 and "nothing: no leaderboard.json" in capsys.readouterr().err
    assert not list(tmp_path.glob("forget_gap_*"))


def test_refuses_a_bench_whose_stored_outputs_are_gone(gap_script, tmp_path, monkeypatch, capsys):
    # A finished bench's two files, but no model outputs beside them and no references in its cache.
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "leaderboard.json").write_text(json.dumps(
        {**board([row("scramble_relearn", 0.1, 0.02, 0.8, 0.1)]), "seeds": 2}))
    (tmp_path / "bench" / "bench.json").write_text(json.dumps(
        {"results_version": 2, "cache": str(tmp_path / "cache"), "original_key": "o", "reference_key": "r",
         "setting": {"forget_config": {"seed": 3}}}))
    monkeypatch.setattr(gap_script, "RESULTS", tmp_path)
    monkeypatch.setattr(sys, "argv", ["forget_gap.py", "demo", str(tmp_path / "bench")])
    with pytest.raises(SystemExit) as stop:
        gap_script.main()
    assert stop.value.code == 2 and "scramble_relearn/seed_0000.npz is missing" in capsys.readouterr().err
    assert not list(tmp_path.glob("forget_gap_*"))
    # A bench.json of another results version: the store's own message, exit 2.
    (tmp_path / "bench" / "bench.json").write_text(json.dumps({"results_version": 1, "setting": {"forget_config": {}}}))
    with pytest.raises(SystemExit) as stop:
        gap_script.main()
    assert stop.value.code == 2 and "results version 1" in capsys.readouterr().err


def test_refuses_a_truncated_leaderboard_naming_the_file(gap_script, tmp_path, monkeypatch, capsys):
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "leaderboard.json").write_text(json.dumps(board([row("scramble_relearn", 0.1, 0.02, 0.8, 0.1)]))[:200])
    (tmp_path / "bench" / "bench.json").write_text(json.dumps({"results_version": 2}))
    monkeypatch.setattr(sys, "argv", ["forget_gap.py", "demo", str(tmp_path / "bench")])
    with pytest.raises(SystemExit) as stop:
        gap_script.main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"{tmp_path / 'bench' / 'leaderboard.json'} is not readable JSON" in err
    assert len(err.strip().splitlines()) == 1
