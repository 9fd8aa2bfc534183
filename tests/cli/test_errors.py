"""What the CLI prints when it refuses: one line on stderr naming the file or value, exit 2, no terminal codes."""

from __future__ import annotations

import json

import pytest

from unlearnkit import cli
from unlearnkit.errors import InputError
from unlearnkit.results.store import RESULTS_VERSION
from unlearnkit.runner.backends import UnitsFailed

# What a Ray task's error looks like: its text carries colour codes.
COLOURED = "\x1b[36mray::run_unit()\x1b[39m (pid=4242, ip=10.0.0.7) failed: \x1b[31mboom [x]\x1b[0m"


def _bench_folder(tmp_path, name: str, leaderboard: str | None) -> str:
    """A folder with a bench record (enough for report and compare to open it) and ``leaderboard`` as its leaderboard.json."""
    out = tmp_path / name
    out.mkdir()
    (out / "bench.json").write_text(json.dumps({"results_version": RESULTS_VERSION, "cache": str(tmp_path / "cache"),
                                                "original_key": "o", "reference_key": "r"}))
    if leaderboard is not None:
        (out / "leaderboard.json").write_text(leaderboard)
    return str(out)


@pytest.mark.parametrize("error", [InputError(COLOURED), UnitsFailed({"references[0:4]": COLOURED}, bad_input=True)],
                         ids=["InputError", "UnitsFailed"])
def test_piped_errors_carry_no_terminal_codes(monkeypatch, capfd, error):
    def fail(args, console):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "report", fail)
    assert cli.main(["report", "anywhere"]) == 2
    err = capfd.readouterr().err  # a pipe, not a terminal
    assert "\x1b" not in err
    assert err.startswith("error: ") and "ray::run_unit() (pid=4242, ip=10.0.0.7) failed: boom [x]" in err


@pytest.mark.parametrize("content", ["", '{"schema_version": 2, "rows": [{"meth', "[]", '{"schema_version": 2}'],
                         ids=["empty", "truncated", "a list", "no fields"])
@pytest.mark.parametrize("command", ["report", "compare"])
def test_report_and_compare_name_a_truncated_or_invalid_leaderboard(tmp_path, capfd, command, content):
    broken = _bench_folder(tmp_path, "broken", content)
    argv = ["report", broken] if command == "report" else ["compare", broken, _bench_folder(tmp_path, "other", "{}")]
    assert cli.main(argv) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and f"{broken}/leaderboard.json" in err


@pytest.mark.parametrize("content", ['{"results_version": 2, "ca', "[]", "null"], ids=["truncated", "a list", "null"])
def test_report_names_a_truncated_or_invalid_bench_record(tmp_path, capfd, content):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bench.json").write_text(content)
    assert cli.main(["report", str(out)]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and f"{out}/bench.json" in err
