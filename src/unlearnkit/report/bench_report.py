"""A finished bench as the report reads it: the leaderboard, the per-example ε, the stored models.

Everything is read from the store (see :mod:`unlearnkit.results.store`): ``leaderboard.json``,
``per_example.npz``, ``bench.json``, the methods' configs, the unit records and each model's stored
forget-set logits. Nothing is scored or trained again; the one value derived here is the
logit-scaled confidence of each stored model on each forget example (the statistic the score
attacked), for the output-distribution figure. The functions after :func:`read_bench_report` are
the data of the report's sections, shared by report.html and report.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.errors import InputError
from unlearnkit.io import read_json, read_npz
from unlearnkit.metrics.forgetting import logit_scaled_confidence
from unlearnkit.results.leaderboard import CEILING, SCHEMA_VERSION, Leaderboard, LeaderboardRow, read_leaderboard
from unlearnkit.results.records import model_meta
from unlearnkit.results.store import BenchStore, read_bench_record

# The people listed in "who is still remembered" (every one is in per_example.npz).
MAX_PEOPLE = 50


@dataclass(frozen=True)
class RowRuns:
    """The stored models behind one leaderboard row (or the references).

    Attributes:
        confidence: ``[n, E]`` logit-scaled confidence of each readable, finite model on each
            forget example; None when no model could be read.
        seeds: The seed of each model in ``confidence``'s order.
        files: Where the models' records are (a pattern, for "where each number came from").
        problems: Models left out and why (missing file, diverged).
    """

    confidence: np.ndarray | None
    seeds: list[int]
    files: str
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BenchReport:
    """What a report shows of one finished bench, as read from its folder (:func:`read_bench_report`)."""

    out: Path
    bench: dict[str, Any]
    board: Leaderboard
    per_example: dict[str, np.ndarray]
    method_configs: dict[str, dict[str, Any]]
    units: list[dict[str, Any]]
    references: RowRuns
    runs: dict[str, RowRuns]

    @property
    def rows(self) -> tuple[LeaderboardRow, ...]:
        return self.board.rows

    @property
    def ceiling(self) -> LeaderboardRow | None:
        return self.board.ceiling

    def eps(self, name: str, mode: str = "compat") -> np.ndarray:
        """Per-example ε of row ``name`` (``per_example.npz``)."""
        names = [str(n) for n in self.per_example["methods"]]
        return self.per_example[f"eps_{mode}"][names.index(name)].astype(np.float64)


def read_bench_report(out: str | Path) -> BenchReport:
    """Read a finished bench's folder for its report.

    Raises:
        InputError: ``out`` holds no bench, a bench whose score unit has not finished, or a
            leaderboard of another schema (or truncated).
    """
    out = Path(out)
    read_bench_record(out)
    store = BenchStore.open(out)
    if not store.leaderboard.is_file():
        raise InputError(f"{out} holds no finished bench (no leaderboard.json: its score unit has not run); "
                         f"finish it with `unlearnkit work {out} --drain` or rerun `unlearnkit bench --out {out}`")
    return bench_report(out, read_leaderboard(store.leaderboard))


def bench_report(out: str | Path, board: Leaderboard) -> BenchReport:
    """The report's view of the bench in ``out`` scored as ``board`` (e.g. just returned by the score unit).

    Raises:
        InputError: ``out`` holds no bench, or no ``per_example.npz``.
    """
    bench = read_bench_record(out)
    store = BenchStore.open(out)
    if not store.per_example.is_file():
        raise InputError(f"{store.out} holds no per_example.npz beside its leaderboard; rerun the score unit "
                         f"(`unlearnkit work {store.out} --drain` after deleting leaderboard.json)")
    per_example = read_npz(store.per_example)
    labels = per_example["forget_label"]
    n = board.seeds
    configs = {}
    for name in board.methods:
        path = store.method_dir(name) / "config.json"
        if name != CEILING and path.is_file():
            configs[name] = read_json(path)
    units = [read_json(p) for p in sorted((store.out / "units").glob("*.json"))] if (store.out / "units").is_dir() else []
    refs = _row_runs([store.reference(k) for k in range(n)], labels,
                     str(store.cache / "references" / store.reference_key / f"seed_0000..{n - 1:04d}.npz"))
    runs = {}
    for name in board.methods:
        if name == CEILING:
            runs[name] = _row_runs([store.reference(k) for k in range(n, 2 * n)], labels,
                                   str(store.cache / "references" / store.reference_key / f"seed_{n:04d}..{2 * n - 1:04d}.npz"))
        else:
            runs[name] = _row_runs([store.method_run(name, k) for k in range(n)], labels,
                                   str(store.method_dir(name) / f"seed_0000..{n - 1:04d}.npz"))
    return BenchReport(store.out, bench, board, per_example, configs, units, refs, runs)


def _row_runs(paths: list[Path], labels: np.ndarray, files: str) -> RowRuns:
    conf, seeds, problems = [], [], []
    for path in paths:
        if not path.is_file():
            problems.append(f"{path.name}: not found")
            continue
        # Lazy: only the forget logits and the metadata are read, not the test or probe logits.
        with np.load(path, allow_pickle=False) as record:
            meta = model_meta({"meta": record["meta"]}, str(path))
            if not meta.healthy:
                problems.append(f"{path.name}: diverged ({meta.diverged})")
                continue
            conf.append(logit_scaled_confidence(record["forget_logits"], labels))
            seeds.append(meta.seed)
    return RowRuns(np.stack(conf) if conf else None, seeds, files, problems)


# -- what the sections show ---------------------------------------------------------------------------

def chosen_examples(report: BenchReport, name: str) -> list[tuple[str, int]]:
    """The best-, median- and worst-forgotten forget examples of row ``name`` (column indices).

    Ranked by compat ε, then bounded ε, then the distance between the two sides' medians (in
    pooled spreads), so that ties in the coarse compat bins still order the examples.
    """
    eps, bounded = report.eps(name), report.eps(name, "bounded")
    shift = np.zeros_like(eps)
    u, r = report.runs[name].confidence, report.references.confidence
    if u is not None and r is not None:
        spread = np.std(np.concatenate([u, r]), axis=0) + 1e-12
        shift = np.abs(np.median(u, axis=0) - np.median(r, axis=0)) / spread
    order = np.lexsort((shift, bounded, eps))
    return [("best", int(order[0])), ("median", int(order[len(order) // 2])), ("worst", int(order[-1]))]


def example_label(report: BenchReport, j: int) -> str:
    pe = report.per_example
    person = int(pe["forget_group"][j])
    who = f", person {person}" if person >= 0 else ""
    return f"example {int(pe['forget_index'][j])} (class {int(pe['forget_label'][j])}{who})"


def people_table(report: BenchReport) -> list[tuple[int, int, dict[str, float]]]:
    """Per person in the forget set: (person, images, mean compat ε per row), most remembered first.

    Sorted by the mean over the method rows (the ceiling excluded), highest first. Empty when the
    dataset has no people.
    """
    groups = report.per_example["forget_group"]
    people = np.unique(groups[groups >= 0])
    names = report.board.methods
    eps = {n: report.eps(n) for n in names}
    table = []
    for p in people:
        mask = groups == p
        table.append((int(p), int(mask.sum()), {n: float(eps[n][mask].mean()) for n in names}))
    methods = [n for n in names if n != CEILING] or names
    table.sort(key=lambda t: (-np.mean([t[2][n] for n in methods]), t[0]))
    return table


def setting_fields(report: BenchReport) -> list[tuple[str, str]]:
    """(field, value) pairs that say what was run: dataset, forget set, model, recipe, N, versions, fingerprints."""
    b, board = report.bench, report.board
    summary = b.get("summary", {})
    ds, model = summary.get("dataset", {}), summary.get("model", {})
    setting = b.get("setting", {})
    prov = board.provenance or b.get("provenance") or {}
    cost = board.retrain_cost

    def j(value: Any) -> str:
        return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)

    fields = [
        ("dataset", (f"{ds.get('name', board.dataset)} ({ds.get('source', '?')}): {ds.get('examples', '?')} images, "
                    f"{ds.get('train_examples', '?')} train / {ds.get('val_examples', '?')} val / {ds.get('test_examples', '?')} test, "
                    f"{ds.get('classes', '?')} classes, {ds.get('groups', '?')} people, image shape {ds.get('image_shape', '?')}")),
        ("dataset options", j(setting.get("dataset_config", {}))),
        ("forget set", f"{board.forget}: {board.forget_examples} examples ({j(setting.get('forget_config', {}))})"),
        ("model", (f"{model.get('name', board.model)} {j(model.get('config', {}))}, {model.get('num_classes', '?')} classes, "
                  f"{model.get('image_size', '?')} px")),
        ("recipe (train)", j(setting.get("train", {}))),
        ("runtime", j(summary.get("runtime", {}))),
        ("N (models per side)", f"{board.seeds} unlearned per method, {board.seeds} retrained references"
                                + (f", {board.seeds} more retrains for the ceiling" if report.ceiling else "")),
        ("seeds", (f"run seed {setting.get('run_seed', '?')}; each model's seed derives from (run seed, role, index); "
                  f"the original's is {board.original.seed}")),
        ("budget", "none" if board.budget is None else f"{board.budget:.0%} of a retrain's compute"),
        ("one retrain", (f"{_fmt(cost.seconds, '{:.3g} s')}, {cost.steps:.0f} steps, "
                        f"{_fmt(cost.compute, '{:.4g} example passes')} ({cost.measured_on})"
                        + (f"; {cost.timing_note}" if cost.timing_note else ""))),
        ("timing conditions", j(cost.conditions) if cost.conditions else "not recorded"),
        ("original model accuracy", j({k: round(v, 4) for k, v in board.original.accuracy.items()})),
        ("package", (f"unlearnkit {prov.get('unlearnkit', '?')}, git {prov.get('git') or '?'}; torch {prov.get('torch', '?')}, "
                    f"numpy {prov.get('numpy', '?')}, python {prov.get('python', '?')}; {prov.get('platform', '?')}")),
        ("fingerprints", (f"dataset {b.get('dataset_fingerprint', '?')}, forget set {b.get('forget_fingerprint', '?')}, "
                         f"setting {summary.get('fingerprint', '?')}, original {b.get('original_key', '?')}, "
                         f"references {b.get('reference_key', '?')}")),
        ("results", f"results version {b.get('results_version', '?')}, leaderboard schema {SCHEMA_VERSION}"),
    ]
    if b.get("provenance") and board.provenance and b["provenance"] != board.provenance:
        bp = b["provenance"]
        fields.append(("bench started with", (f"unlearnkit {bp.get('unlearnkit', '?')}, git {bp.get('git') or '?'}, "
                                              f"torch {bp.get('torch', '?')} (the score above ran with the package line)")))
    for name, cfg in report.method_configs.items():
        preset = f" (preset {cfg['preset']})" if cfg.get("preset") else ""
        regime = (f"; the regime rule may scale {', '.join(cfg['regime'])} (docs/guard.md; each run's record has its regime)"
                  if cfg.get("regime") else "")
        fields.append((f"method {name}", j(cfg.get("config", {})) + preset + regime))
    return fields


def sources(report: BenchReport) -> list[tuple[str, str]]:
    """(what, file it was read from) for every number the report shows."""
    out = report.out
    src = [
        ("leaderboard (every column)", f"{out / 'leaderboard.json'} → rows"),
        ("per-example ε (histograms, example choice, people)", f"{out / 'per_example.npz'} → eps_compat, eps_bounded"),
        ("forget examples (index, class, person, images)", f"{out / 'per_example.npz'} → forget_index, forget_label, forget_group, forget_images"),
        ("retrained output distributions", f"forget_logits of {report.references.files}"),
    ]
    src += [(f"{name} output distributions", f"forget_logits of {runs.files}") for name, runs in report.runs.items()]
    src += [
        ("compute × retrain", f"row compute / one retrain's ({report.board.retrain_cost.measured_on})"),
        ("time × retrain", f"row seconds / one retrain's timed under the same conditions "
                           f"({report.board.retrain_cost.timing_note or report.board.retrain_cost.measured_on})"),
        ("setting", f"{out / 'bench.json'} and {out / 'leaderboard.json'} → setting, provenance"),
        ("method configs", f"{out / 'methods'}/NAME/config.json"),
        ("compute per stage", f"{out / 'units'}/*.json"),
    ]
    return src


def compute_table(report: BenchReport) -> list[tuple[str, int, float, str]]:
    """(stage, models, seconds, where) summed over the unit records."""
    stages: dict[str, list] = {}
    for u in report.units:
        s = stages.setdefault(u.get("stage", u.get("unit", "?")), [0, 0.0, set()])
        s[0] += int(u.get("models", 0))
        s[1] += float(u.get("seconds", 0.0))
        s[2].add(f"{u.get('backend', '?')} on {u.get('host', '?')}")
    return [(k, v[0], v[1], ", ".join(sorted(v[2]))) for k, v in stages.items()]


def distribution_panels(report: BenchReport, name: str) -> list[dict] | None:
    """The data of Figure 1 for row ``name``, or None when the stored models are not readable."""
    u, r = report.runs[name].confidence, report.references.confidence
    if u is None or r is None:
        return None
    images = report.per_example["forget_images"]
    eps = report.eps(name)
    return [{"which": which, "column": j, "title": f"{which}: ε = {eps[j]:.2f}\n{example_label(report, j)}",
             "image": images[j], "retrained": r[:, j], "unlearned": u[:, j]}
            for which, j in chosen_examples(report, name)]



def _fmt(value: float | None, spec: str) -> str:
    return "not measured" if value is None else spec.format(value)


def compare_rows(reports) -> list[str]:
    """Every row name of the benches (:class:`BenchReport` s): the first bench's order, then rows only later benches have."""
    names: list[str] = []
    for r in reports:
        names += [name for name in r.board.methods if name not in names]
    return names
