"""A finished bench as report.html (one self-contained file) and report.md, and benches side by side.

Everything is read from the store (see :mod:`unlearnkit.results.store`): ``leaderboard.json``,
``per_example.npz``, ``bench.json``, the methods' configs, the unit records and each model's stored
forget-set logits. Nothing is scored or trained again; the one value derived here is the
logit-scaled confidence of each stored model on each forget example (the statistic the score
attacked), for the output-distribution figure.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlearnkit.errors import InputError
from unlearnkit.io import read_json, read_npz, write_bytes
from unlearnkit.metrics.forgetting import logit_scaled_confidence
from unlearnkit.report import figures
from unlearnkit.report.leaderboard import (
    caption,
    compare_markdown,
    report_markdown,
    title,
)
from unlearnkit.runner.score import CEILING
from unlearnkit.results.store import BenchStore, read_bench_record

# The leaderboard.json schema this report reads (docs/results.md); a record without the field predates it.
SCHEMA_VERSION = 1
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
    board: dict[str, Any]
    per_example: dict[str, np.ndarray]
    method_configs: dict[str, dict[str, Any]]
    units: list[dict[str, Any]]
    references: RowRuns
    runs: dict[str, RowRuns]

    @property
    def rows(self) -> list[dict[str, Any]]:
        return self.board["rows"]

    @property
    def ceiling(self) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["method"] == CEILING), None)

    def eps(self, name: str, mode: str = "compat") -> np.ndarray:
        """Per-example ε of row ``name`` (``per_example.npz``)."""
        names = [str(n) for n in self.per_example["methods"]]
        return self.per_example[f"eps_{mode}"][names.index(name)].astype(np.float64)


def read_bench_report(out: str | Path) -> BenchReport:
    """Read a finished bench's folder for its report.

    Raises:
        InputError: ``out`` holds no bench, or a bench whose score unit has not finished.
    """
    out = Path(out)
    bench = read_bench_record(out)
    store = BenchStore.open(out)
    if not store.leaderboard.is_file():
        raise InputError(f"{out} holds no finished bench (no leaderboard.json: its score unit has not run); "
                         f"finish it with `unlearnkit work {out} --drain` or rerun `unlearnkit bench --out {out}`")
    return _read(store, bench, read_json(store.leaderboard))


def _read(store: BenchStore, bench: dict, board: dict) -> BenchReport:
    if not store.per_example.is_file():
        raise InputError(f"{store.out} holds no per_example.npz beside its leaderboard; rerun the score unit "
                         f"(`unlearnkit work {store.out} --drain` after deleting leaderboard.json)")
    per_example = read_npz(store.per_example)
    labels = per_example["forget_label"]
    n = int(board["seeds"])
    configs = {}
    for row in board["rows"]:
        path = store.method_dir(row["method"]) / "config.json"
        if row["method"] != CEILING and path.is_file():
            configs[row["method"]] = read_json(path)
    units = [read_json(p) for p in sorted((store.out / "units").glob("*.json"))] if (store.out / "units").is_dir() else []
    refs = _row_runs([store.reference(k) for k in range(n)], labels,
                     str(store.cache / "references" / store.reference_key / f"seed_0000..{n - 1:04d}.npz"))
    runs = {}
    for row in board["rows"]:
        name = row["method"]
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
            meta = json.loads(str(record["meta"]))
            if "diverged" in meta:
                problems.append(f"{path.name}: diverged ({meta['diverged']})")
                continue
            conf.append(logit_scaled_confidence(record["forget_logits"], labels))
            seeds.append(int(meta["seed"]))
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
    names = [r["method"] for r in report.rows]
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
    prov = board.get("provenance") or b.get("provenance") or {}

    def j(value: Any) -> str:
        return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)

    fields = [
        ("dataset", (f"{ds.get('name', board['dataset'])} ({ds.get('source', '?')}): {ds.get('examples', '?')} images, "
                    f"{ds.get('train_examples', '?')} train / {ds.get('val_examples', '?')} val / {ds.get('test_examples', '?')} test, "
                    f"{ds.get('classes', '?')} classes, {ds.get('groups', '?')} people, image shape {ds.get('image_shape', '?')}")),
        ("dataset options", j(setting.get("dataset_config", {}))),
        ("forget set", f"{board['forget']}: {board['forget_examples']} examples ({j(setting.get('forget_config', {}))})"),
        ("model", (f"{model.get('name', board['model'])} {j(model.get('config', {}))}, {model.get('num_classes', '?')} classes, "
                  f"{model.get('image_size', '?')} px")),
        ("recipe (train)", j(setting.get("train", {}))),
        ("runtime", j(summary.get("runtime", {}))),
        ("N (models per side)", f"{board['seeds']} unlearned per method, {board['seeds']} retrained references"
                                + (f", {board['seeds']} more retrains for the ceiling" if report.ceiling else "")),
        ("seeds", (f"run seed {setting.get('run_seed', '?')}; each model's seed derives from (run seed, role, index); "
                  f"the original's is {board.get('original', {}).get('seed', '?')}")),
        ("budget", "none" if board.get("budget") is None else f"{board['budget']:.0%} of a retrain's optimizer steps"),
        ("one retrain", (f"{board['retrain_cost']['seconds']:.3g} s, {board['retrain_cost']['steps']:.0f} steps "
                        f"({board['retrain_cost']['measured_on']})")),
        ("original model accuracy", j({k: round(v, 4) for k, v in board.get("original", {}).get("accuracy", {}).items()})),
        ("package", (f"unlearnkit {prov.get('unlearnkit', '?')}, git {prov.get('git') or '?'}; torch {prov.get('torch', '?')}, "
                    f"numpy {prov.get('numpy', '?')}, python {prov.get('python', '?')}; {prov.get('platform', '?')}")),
        ("fingerprints", (f"dataset {b.get('dataset_fingerprint', '?')}, forget set {b.get('forget_fingerprint', '?')}, "
                         f"setting {summary.get('fingerprint', '?')}, original {b.get('original_key', '?')}, "
                         f"references {b.get('reference_key', '?')}")),
        ("results", (f"results version {b.get('results_version', '?')}, leaderboard schema "
                    f"{board.get('schema_version', 'unversioned')}")),
    ]
    if b.get("provenance") and board.get("provenance") and b["provenance"] != board["provenance"]:
        bp = b["provenance"]
        fields.append(("bench started with", (f"unlearnkit {bp.get('unlearnkit', '?')}, git {bp.get('git') or '?'}, "
                                              f"torch {bp.get('torch', '?')} (the score above ran with the package line)")))
    for name, cfg in report.method_configs.items():
        preset = f" (preset {cfg['preset']})" if cfg.get("preset") else ""
        fields.append((f"method {name}", j(cfg.get("config", {})) + preset))
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
        ("time × retrain", f"row seconds / one retrain's ({report.board['retrain_cost']['measured_on']})"),
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


# -- HTML ---------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.35em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}h3{font-size:1em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;white-space:nowrap}
th{background:#f4f4f4;white-space:normal;vertical-align:bottom}.wide{overflow-x:auto}td.l,th.l{text-align:left;white-space:normal}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:' \\2195';color:#aaa}
tr.ceiling td{background:#f2f0fa}.flag{color:#b00;font-weight:bold}.note{color:#555;font-size:.85em}
.method{border:1px solid #e4e4e4;border-radius:6px;padding:.5em 1em;margin:1em 0}
.figs{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}img{max-width:100%}
code{font-size:.9em}
"""

# Sorts a table.sortable by the clicked column: numbers by data-v, text otherwise; a second click reverses.
_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),d=th.dataset.dir==='a'?-1:1;
      th.dataset.dir=d===1?'a':'d';
      function key(r){var c=r.cells[i],v=c.getAttribute('data-v');
        return v!==null&&v!==''?parseFloat(v):c.textContent;}
      rows.sort(function(x,y){var a=key(x),c=key(y);
        if(typeof a==='number'&&typeof c==='number'){if(isNaN(a))return 1;if(isNaN(c))return -1;return d*(a-c);}
        return d*String(a).localeCompare(String(c));});
      rows.forEach(function(r){b.appendChild(r);});
    });
  });
});
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _num(value: Any, fmt: str = "{:.3f}") -> tuple[str, str]:
    """(shown text, sort value) of a number or None."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–", ""
    return fmt.format(value), repr(float(value))


def leaderboard_cells(report: BenchReport) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """The HTML leaderboard's headers and, per row, (text, sort value) cells."""
    ceiling = report.ceiling
    cf = f" (ceiling {ceiling['forget_quality']:.3f})" if ceiling else ""
    cb = f" (ceiling {ceiling['forget_quality_bounded']:.3f})" if ceiling else ""
    ref_acc = report.rows[0].get("retrain_accuracy", {})
    headers = ["method", "score", "F" + cf, "F bounded" + cb, f"retain acc (retrain {ref_acc.get('retain', float('nan')):.3f})",
               f"test acc (retrain {ref_acc.get('test', float('nan')):.3f})", f"forget acc (retrain {ref_acc.get('forget', float('nan')):.3f})",
               "score 95% CI", "KLoM forget", "KLoM test", "U-LiRA", "loss MIA", "SVC MIA", "s / seed", "time × retrain", "peak memory (× retrain)", "over 20 %", "diverged seeds",
               "stopped by budget"]
    rows = []
    for r in report.rows:
        acc = r["accuracy"]
        mem = r.get("peak_memory_bytes")
        mem_ratio = r.get("memory_ratio")
        diverged = r.get("diverged") or []
        rows.append([
            (r["method"], ""), _num(r["score"]), _num(r["forget_quality"]), _num(r["forget_quality_bounded"]),
            _num(acc.get("retain")), _num(acc.get("test")), _num(acc.get("forget")),
            (f"[{r['score_interval'][0]:.3f}, {r['score_interval'][1]:.3f}]", repr(float(r["score_interval"][0])))
            if r.get("score_interval") else ("–", ""),
            _num(r.get("klom_forget"), "{:.2f}"), _num(r.get("klom_test"), "{:.2f}"), _num(r.get("ulira")),
            _num(r.get("loss_mia")), _num(r.get("svc_mia_efficacy")), _num(r.get("seconds"), "{:.3g}"),
            _num(r.get("time_ratio"), "{:.1%}"),
            _num(mem_ratio, "{:.2f}×") if mem_ratio else ((f"{mem / 2**20:.0f} MiB", repr(float(mem))) if mem else ("–", "")),
            ("yes" if r.get("over_time_limit") else "no", str(int(bool(r.get("over_time_limit"))))),
            (", ".join(str(d["seed_index"]) for d in diverged) if diverged else "none", str(len(diverged))),
            (str(r.get("stopped_by_budget", 0)), str(r.get("stopped_by_budget", 0))),
        ])
    return headers, rows


def _table(headers: list[str], rows: list[list[tuple[str, str]]], *, sortable: bool = False,
           row_class: list[str] | None = None, left: int = 1) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f'<th{_left(i < left)}>{_e(h)}</th>' for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        rc = f' class="{row_class[n]}"' if row_class and row_class[n] else ""
        cells = "".join(_td(t, v, i < left) for i, (t, v) in enumerate(row))
        body.append(f"<tr{rc}>{cells}</tr>")
    return f'<div class="wide"><table{cls}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _left(yes: bool) -> str:
    return ' class="l"' if yes else ""


def _td(text: str, sort_value: str, left: bool, style: str = "") -> str:
    """One cell; ``sort_value`` (a float's repr) is what the sorting script compares."""
    attrs = _left(left) + (f' data-v="{_e(sort_value)}"' if sort_value else "") + (f' style="{style}"' if style else "")
    return f"<td{attrs}>{_e(text)}</td>"


def _kv_table(pairs: list[tuple[str, str]]) -> str:
    rows = "".join(f'<tr><th class="l">{_e(k)}</th><td class="l"><code>{_e(v)}</code></td></tr>' for k, v in pairs)
    return f"<table><tbody>{rows}</tbody></table>"


def _heat(value: float, top: float) -> str:
    share = min(max(value / top, 0.0), 1.0) if top > 0 else 0.0
    return f"background:rgba(217,95,2,{0.08 + 0.6 * share:.2f})"


def render_html(report: BenchReport) -> str:
    """report.html's text: one page, figures embedded as data: URIs, inline CSS and sorting script."""
    board, n = report.board, int(report.board["seeds"])
    parts = [f"<h1>{_e(title(board))}</h1>",
             (f'<p class="note">Bench folder <code>{_e(report.out)}</code>. Every number below is read from this folder '
             "and the cache it names; see <a href=\"#sources\">where each number came from</a>.</p>")]

    headers, cells = leaderboard_cells(report)
    parts += ["<h2 id=\"leaderboard\">Leaderboard</h2>", '<p class="note">Click a column header to sort.</p>',
              _table(headers, cells, sortable=True, row_class=["ceiling" if r["method"] == CEILING else "" for r in report.rows]),
              (f'<p class="note">{_e(caption(board))} Peak memory: the process\'s peak RSS on a CPU, peak allocated '
              "device memory on CUDA; a ratio to the retrains' where they recorded theirs, else the amount (– where "
              "none was measured).</p>")]

    # Forgetting vs utility
    ceiling = report.ceiling
    points = [{"name": r["method"], "forget_quality": r["forget_quality"], "test": r["accuracy"]["test"],
               "time_ratio": r.get("time_ratio"), "ceiling": r["method"] == CEILING} for r in report.rows]
    retrain_test = report.rows[0].get("retrain_accuracy", {}).get("test")
    parts += ["<h2 id=\"utility\">Forgetting vs utility</h2>",
              f'<img alt="F against test accuracy" src="{figures.forgetting_vs_utility(points, retrain_test, ceiling["forget_quality"] if ceiling else None)}">',
              ('<p class="note">Up and right is better; the dashed lines are the references\' test accuracy and the '
              "ceiling's F (what a perfect unlearner scores at this N).</p>")]

    # Per method
    parts.append("<h2 id=\"methods\">Per method: which examples were forgotten</h2>")
    ceiling_eps = report.eps(CEILING) if ceiling else None
    if report.references.confidence is None:
        parts.append(f'<p class="flag">The retrained references are not readable ({_e("; ".join(report.references.problems[:3]))}): '
                     "the output-distribution figures are left out.</p>")
    for r in report.rows:
        name = r["method"]
        runs = report.runs[name]
        eps = report.eps(name)
        block = [f'<div class="method" id="m-{_e(name)}"><h3>{_e(name)}</h3>',
                 (f'<p class="note">F = {r["forget_quality"]:.3f}; per-example ε: median {np.median(eps):.2f}, '
                 f"{int((eps == 0).sum())} of {len(eps)} at 0, {int((eps >= 50).sum())} at the cap.</p>"),
                 '<div class="figs">',
                 f'<img alt="epsilon histogram of {_e(name)}" src="{figures.epsilon_histogram(name, eps, ceiling_eps if name != CEILING else None, n)}">']
        panels = distribution_panels(report, name)
        if panels:
            block.append(f'<img alt="output distributions of {_e(name)}" src="{figures.output_distributions(name, panels)}">')
        block.append("</div>")
        if panels:
            block.append('<p class="note">Logit-scaled confidence of the forget example under each of the '
                         f"{runs.confidence.shape[0]} {_e(name)} models and the {report.references.confidence.shape[0]} "
                         "retrained references (ticks: one per model); best, median and worst by this row's ε.</p>")
        if runs.problems:
            block.append(f'<p class="flag">Left out: {_e("; ".join(runs.problems[:8]))}'
                         f"{' …' if len(runs.problems) > 8 else ''}</p>")
        parts.append("".join(block) + "</div>")

    # People
    people = people_table(report)
    if people:
        names = [r["method"] for r in report.rows]
        top = max(max(v.values()) for _, _, v in people) or 1.0
        kind = report.bench.get("setting", {}).get("forget_kind", "")
        parts.append("<h2 id=\"people\">Who is still remembered</h2>")
        parts.append(f'<p class="note">Per person in the forget set: mean per-example ε (compat) over their images; '
                     f"most remembered first{'' if 'identit' in kind else f' (the forget set is {_e(kind)}: these people may keep other images in the retain set)'}. "
                     "The ceiling column is the level a retrained model reaches at this N.</p>")
        head = "".join(f"<th>{_e(h)}</th>" for h in ["person", "images", *names])
        body = []
        for p, count, means in people[:MAX_PEOPLE]:
            tds = "".join(_td(f"{means[m]:.2f}", repr(means[m]), False, _heat(means[m], top)) for m in names)
            body.append(f"<tr>{_td(str(p), str(p), False)}{_td(str(count), str(count), False)}{tds}</tr>")
        parts.append(f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>')
        if len(people) > MAX_PEOPLE:
            parts.append(f'<p class="note">… and {len(people) - MAX_PEOPLE} more people (all in per_example.npz).</p>')

    # Setting, compute, sources
    parts += ["<h2 id=\"setting\">Setting</h2>", _kv_table(setting_fields(report))]
    compute = compute_table(report)
    if compute:
        parts += ["<h2 id=\"compute\">Compute</h2>",
                  _table(["stage", "models", "seconds", "where"],
                         [[(s, ""), (str(m), str(m)), (f"{sec:.1f}", repr(sec)), (w, "")] for s, m, sec, w in compute], left=1)]
    parts += ["<h2 id=\"sources\">Where each number came from</h2>", _kv_table(sources(report))]
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title(board))}</title><style>{_CSS}</style></head>\n<body>\n{body}\n"
            f"<script>{_JS}</script>\n</body></html>\n")


# -- entry points -------------------------------------------------------------------------------------

def write_report(out_dir: str | Path, board: dict[str, Any] | None = None) -> list[Path]:
    """Write ``report.html`` and ``report.md`` of the bench in ``out_dir``; returns their paths.

    Args:
        out_dir: The bench folder.
        board: The leaderboard record, when the score unit renders the report before writing
            ``leaderboard.json`` (which marks the bench finished); None reads ``leaderboard.json``.

    Raises:
        InputError: ``out_dir`` holds no finished bench.
    """
    out = Path(out_dir)
    if board is None:
        report = read_bench_report(out)
    else:
        report = _read(BenchStore.open(out), read_bench_record(out), json.loads(json.dumps(board, default=str)))
    # Both rendered before either is written: a failure leaves the old report, not half a new one.
    page, text = render_html(report), report_markdown(report)
    paths = [out / "report.html", out / "report.md"]
    write_bytes(paths[0], page.encode())
    write_bytes(paths[1], text.encode())
    return paths


# Fields of bench.json that must agree for two benches to be compared (their setting), and those
# shown when they differ (how each was run).
_SAME = ("results_version", "dataset_fingerprint", "forget_fingerprint")
_SHOWN = ("seeds", "budget", "ceiling", "threads")


@dataclass(frozen=True)
class Comparison:
    """Several benches over one setting, side by side (:func:`compare_benches`)."""

    markdown: str
    html: str


def _flat(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def setting_differences(benches: list[dict[str, Any]]) -> list[str]:
    """The bench.json fields (dotted) on which ``benches`` disagree: the setting and the fingerprints."""
    flats = [{**_flat(b.get("setting", {}), "setting"), **{k: b.get(k) for k in _SAME}} for b in benches]
    keys = sorted(set().union(*flats))
    return [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]


def compare_benches(dirs: Sequence[str | Path]) -> Comparison:
    """Several finished benches over the same setting, side by side (Markdown and HTML).

    Raises:
        InputError: fewer than two folders, a folder without a finished bench, or benches whose
            settings differ (each differing field is named, with its value in every bench).
    """
    if len(dirs) < 2:
        raise InputError(f"compare needs at least two bench folders; got {len(dirs)}")
    reports = [read_bench_report(d) for d in dirs]
    differs = setting_differences([r.bench for r in reports])
    if differs:
        def value(r: BenchReport, key: str) -> str:
            flat = {**_flat(r.bench.get("setting", {}), "setting"), **{k: r.bench.get(k) for k in _SAME}}
            return json.dumps(flat.get(key))

        lines = [f"  {k}: " + ", ".join(f"{value(r, k)} in {r.out}" for r in reports) for k in differs]
        raise InputError("these benches are over different settings and cannot be compared; "
                         f"{len(differs)} field(s) differ:\n" + "\n".join(lines))
    labels = _labels([r.out for r in reports])
    return Comparison(compare_markdown(reports, labels, _SHOWN), _compare_html(reports, labels))


def _labels(paths: list[Path]) -> list[str]:
    """Short distinct names for the benches: their folder names, or more of the path where those clash."""
    for depth in range(1, 8):
        labels = ["/".join(p.resolve().parts[-depth:]) for p in paths]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def compare_rows(reports: list[BenchReport]) -> list[str]:
    """Every row name of the benches: the first bench's order, then rows only later benches have."""
    names: list[str] = []
    for r in reports:
        names += [row["method"] for row in r.rows if row["method"] not in names]
    return names


def _compare_html(reports: list[BenchReport], labels: list[str]) -> str:
    names = compare_rows(reports)
    metrics = (("score", lambda row: row["score"]), ("F", lambda row: row["forget_quality"]),
               ("test acc", lambda row: row["accuracy"]["test"]), ("time × retrain", lambda row: row.get("time_ratio")))
    headers = ["method"] + [f"{m} · {lab}" for m, _ in metrics for lab in labels]
    rows = []
    for name in names:
        cells = [(name, "")]
        for m, get in metrics:
            for r in reports:
                row = next((x for x in r.rows if x["method"] == name), None)
                cells.append(_num(get(row) if row else None, "{:.1%}" if m == "time × retrain" else "{:.3f}"))
        rows.append(cells)
    scores = np.array([[next((x["score"] for x in r.rows if x["method"] == n), np.nan) for r in reports] for n in names])
    how = [[lab] + [str(r.bench.get(k)) for k in _SHOWN] + [
        f"{(r.board.get('provenance') or {}).get('unlearnkit', '?')} / {(r.board.get('provenance') or {}).get('git') or '?'}",
        f"{r.board['retrain_cost']['seconds']:.3g} s"] for r, lab in zip(reports, labels)]
    body = [f"<h1>Comparison: {_e(title(reports[0].board))}</h1>",
            "<p class=\"note\">" + ", ".join(f"<code>{_e(lab)}</code> = <code>{_e(r.out)}</code>"
                                            for lab, r in zip(labels, reports)) + "</p>",
            "<h2>Runs</h2>",
            _table(["bench", *_SHOWN, "unlearnkit / git", "one retrain"], [[(c, "") for c in h] for h in how]),
            "<h2>Leaderboards</h2>", '<p class="note">Click a column header to sort.</p>',
            _table(headers, rows, sortable=True),
            f'<img alt="score per method and bench" src="{figures.compare_scores(labels, names, scores)}">',
            "<h2>Setting (the same in every bench)</h2>", _kv_table(setting_fields(reports[0])[:6])]
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Comparison</title>"
            f"<style>{_CSS}</style></head>\n<body>\n{''.join(body)}\n<script>{_JS}</script>\n</body></html>\n")
