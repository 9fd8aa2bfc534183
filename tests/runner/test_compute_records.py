"""Every stored model records its compute and the conditions its time was measured under; a bench whose
cached retrains were timed under other conditions re-times one retrain here and says why."""

from __future__ import annotations

import json

import pytest

from unlearnkit.cli import main
from unlearnkit.results.store import BenchStore, load_run, run_meta
from unlearnkit.runner.backends.plan import read_units
from unlearnkit.runner.jobs import bench_from_dict
from unlearnkit.runner.setting import resolve_setting
from unlearnkit.runner.units import setting_retrain_compute

TINY = [
    "--set", "dataset.people=40", "--set", "dataset.image_size=16", "--set", "dataset.min_images=3",
    "--set", "dataset.max_images=5", "--model", "test_small_cnn", "--set", "train.epochs=2",
    "--set", "train.precision=fp32", "--forget", "identity:0.1", "--workers", "1", "--no-ceiling",
    "--methods", "fisher", "--seeds", "8", "--budget", "0.2",
]


@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    root = tmp_path_factory.mktemp("compute")
    cache = str(root / "cache")
    printed = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sys.stdout", _Tee(printed))
        assert main(["bench", *TINY, "--out", str(root / "one"), "--cache-dir", cache, "--threads", "1"]) == 0
        first = "".join(printed)
        # The same setting and cache, under another thread count: the cached retrains' times do not compare.
        assert main(["bench", *TINY, "--out", str(root / "two"), "--cache-dir", cache, "--threads", "2"]) == 0
    return BenchStore.open(root / "one"), BenchStore.open(root / "two"), first, "".join(printed)[len(first):]


class _Tee:
    """A stdout that keeps what is printed."""

    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, text: str) -> int:
        self.into.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_every_model_records_its_compute_and_conditions(benches):
    store = benches[0]
    raw_job, _ = read_units(store)
    setting = resolve_setting(bench_from_dict(raw_job).setting)
    retrain = setting_retrain_compute(setting)
    original = run_meta(load_run(store.original_outputs))
    refs = [run_meta(load_run(store.reference(k))) for k in range(8)]
    runs = [run_meta(load_run(store.method_run("fisher", k))) for k in range(8)]
    conditions = {"host", "device", "threads", "precision"}
    for meta in (original, *refs, *runs):
        assert set(meta["conditions"]) == conditions and meta["conditions"]["threads"] == 1
    assert all(m["compute"] == retrain for m in refs)  # measured = predicted from the recipe
    assert original["compute"] > retrain  # trained on D, a superset of R
    for m in runs:
        assert m["budget_compute"] == pytest.approx(0.2 * retrain)
        assert 0 < m["compute"] <= 0.2 * retrain and not m["stopped_by_budget"]


def test_a_bench_under_other_conditions_retimes_one_retrain_and_says_why(benches):
    same, other, said_first, said_second = benches
    assert "re-timing" not in said_first and "re-timing one retrain here" in said_second
    assert not same.retimed_retrain.exists()
    assert "retime" not in [u.kind for u in read_units(same)[1]]
    assert "retime" in [u.kind for u in read_units(other)[1]]
    record = json.loads(other.retimed_retrain.read_text())
    assert set(record) == {"seconds", "compute", "steps", "conditions", "reason"}
    assert record["conditions"]["threads"] == 2 and record["seconds"] > 0 and record["steps"] > 0
    assert "1 threads" in record["reason"] and "2 threads" in record["reason"]
    ref = run_meta(load_run(same.reference(0)))
    assert record["compute"] == ref["compute"]  # compute does not depend on where it was measured
