"""Ship a finished bench's leaderboard inside the package, as a default ``unlearnkit forget`` chooses from.

    python benchmarks/ship_default_leaderboard.py runs/bench

Reads ``BENCH/leaderboard.json`` and ``BENCH/bench.json`` and writes
``src/unlearnkit/results/recorded/DATASET-FORGETKIND-MODEL.json``: the leaderboard as it is, and
where it came from (the command and arguments that made the bench, its commit, the date it was
scored, the date it was shipped). This script is the only way those files are made; regenerate one
by running it again on a newer bench of the same setting (the file is replaced).

Refused (exit 2, naming the file): a bench that is not finished, a leaderboard of another schema,
or one no row of which has a measured compute ratio (``forget`` chooses by compute; such a file
could never be chosen from).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
from pathlib import Path

from unlearnkit.errors import InputError
from unlearnkit.io import write_json
from unlearnkit.results.leaderboard import CEILING, read_leaderboard
from unlearnkit.runner.default_method import RECORDED_SCHEMA, recorded_dir


def _utc(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def recorded_record(bench: str | Path) -> tuple[str, dict]:
    """(file name, record) of the shipped leaderboard for the finished bench folder ``bench``.

    Raises:
        InputError: the bench is unfinished, its leaderboard unreadable or of another schema, or no
            method row carries a compute ratio.
    """
    bench = Path(bench)
    board_path, bench_path = bench / "leaderboard.json", bench / "bench.json"
    for path in (bench_path, board_path):
        if not path.is_file():
            raise InputError(f"{path}: no such file; is {bench} a finished bench (`unlearnkit bench --out {bench}`)?")
    board = read_leaderboard(board_path)
    try:
        info = json.loads(bench_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{bench_path} is not readable JSON ({exc})") from None
    rows = [r for r in board.rows if r.method != CEILING]
    if not any(r.compute_ratio is not None for r in rows):
        raise InputError(f"{board_path}: no method row has a measured compute_ratio; `unlearnkit forget` chooses by "
                         "compute, so re-run the bench with this version")
    prov = info.get("provenance") or {}
    argv = prov.get("argv") or []
    # The bench's own command line where it was recorded (the cli's argv[0] is a path to the script).
    command = shlex.join(["unlearnkit", *argv[1:]]) if argv else None
    units = bench / "units.json"
    job = json.loads(units.read_text()).get("job") if units.is_file() else None
    kind = (board.setting.get("config") or {}).get("forget_kind") or board.forget.partition(":")[0]
    name = f"{board.dataset}-{kind}-{board.model}.json"
    record = {
        "recorded_schema": RECORDED_SCHEMA,
        "recorded": {
            "command": command,
            "arguments": job,
            "commit": prov.get("git"),
            "date": _utc(board_path.stat().st_mtime),
            "shipped": _utc(dt.datetime.now(dt.timezone.utc).timestamp()),
            "shipped_by": "benchmarks/ship_default_leaderboard.py",
            "bench_provenance": prov,
        },
        "leaderboard": board.to_json(),
    }
    return name, record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bench", help="a finished bench folder (holds leaderboard.json and bench.json)")
    parser.add_argument("--into", default=None, help="where to write (default: the package's results/recorded/)")
    args = parser.parse_args(argv)
    try:
        name, record = recorded_record(args.bench)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(args.into) if args.into else recorded_dir()
    write_json(folder / name, record)
    print(f"wrote {folder / name} ({len(record['leaderboard']['rows'])} rows, bench of {record['recorded']['date']}, "
          f"commit {record['recorded']['commit']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
