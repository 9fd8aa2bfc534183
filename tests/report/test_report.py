"""report.html / report.md of a tiny bench, comparing benches, and the refusals; rendered in chromium where installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from unlearnkit.cli import main
from unlearnkit.errors import InputError
from unlearnkit.io import npz_bytes, read_npz, write_bytes
from unlearnkit.report import compare_benches, write_report
from unlearnkit.results.leaderboard import read_leaderboard

TINY = [
    "--set", "dataset.people=40", "--set", "dataset.image_size=16", "--set", "dataset.min_images=3",
    "--set", "dataset.max_images=5", "--model", "test_small_cnn", "--set", "train.epochs=1",
    "--set", "train.precision=fp32", "--forget", "identity:0.1", "--workers", "1",
]
CEILING = "retrain (ceiling)"
VOID = {"meta", "img", "br", "hr", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    argv = ["bench", *TINY, "--methods", "finetune,neggrad", "--seeds", "8", "--out", str(root / "out"),
            "--cache-dir", str(root / "cache"), "--set", "method.finetune.epochs=1"]
    assert main(argv) == 0
    return root / "out"


@pytest.fixture(scope="module")
def written(bench) -> tuple[Path, Path]:
    html_path, md_path = write_report(bench)
    return html_path, md_path


class _Page(HTMLParser):
    """Checks tags balance; collects image sources, table cells, scripts' and styles' text, links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.cells: list[str] = []
        self.sortable = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag in ("a", "link", "script") and (a.get("href") or a.get("src")):
            self.links.append(a.get("href") or a.get("src"))
        if tag == "table" and "sortable" in (a.get("class") or ""):
            self.sortable += 1
        if tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _methods(out: Path) -> list[str]:
    return read_leaderboard(out / "leaderboard.json").methods


def test_report_html_is_well_formed_self_contained_and_carries_every_method(bench, written):
    html_path, _ = written
    text = html_path.read_text()
    page = _parse(text)
    assert page.errors == [] and page.stack == []
    methods = _methods(bench)
    assert set(methods) == {"finetune", "neggrad", CEILING}
    for m in methods:
        assert m in page.cells, f"{m} is not a table cell of the report"
        assert f'id="m-{m}"' in text
    # the utility plot, then per row its ε histogram and its output-distribution figure
    assert len(page.images) == 1 + 2 * len(methods)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not re.search(r"https?://", text), "the report must not reference the network"
    assert all(link.startswith("#") for link in page.links)
    assert page.sortable >= 1
    for section in ("Leaderboard", "Forgetting vs utility", "Who is still remembered", "Setting",
                    "Where each number came from"):
        assert section in text


def test_report_md_has_every_section_and_method(bench, written):
    _, md_path = written
    text = md_path.read_text()
    for m in _methods(bench):
        assert f"| {m} |" in text
    for section in ("## Run health", "## Forgetting vs utility", "## Per-example ε", "## Output distributions",
                    "## Who is still remembered", "## Setting", "## Where each number came from"):
        assert section in text
    bench_json = json.loads((bench / "bench.json").read_text())
    assert bench_json["dataset_fingerprint"] in text and bench_json["forget_fingerprint"] in text


def test_people_table_means_match_per_example(bench, written):
    pe = read_npz(bench / "per_example.npz")
    names = [str(n) for n in pe["methods"]]
    row = pe["eps_compat"][names.index("finetune")]
    person = int(pe["forget_group"][0])
    mean = float(row[pe["forget_group"] == person].mean())
    line = next(ln for ln in written[1].read_text().splitlines() if ln.startswith(f"| {person} |"))
    cols = [c.strip() for c in line.strip("|").split("|")]
    header = next(ln for ln in written[1].read_text().splitlines() if ln.startswith("| person | images |"))
    heads = [c.strip() for c in header.strip("|").split("|")]
    assert float(cols[heads.index("finetune")]) == pytest.approx(mean, abs=0.005)


def test_a_folder_without_a_finished_bench_is_an_input_error(bench, tmp_path):
    with pytest.raises(InputError, match=re.escape(str(tmp_path))):
        write_report(tmp_path)
    unfinished = tmp_path / "unfinished"
    shutil.copytree(bench, unfinished, ignore=shutil.ignore_patterns("report.*"))
    (unfinished / "leaderboard.json").unlink()
    with pytest.raises(InputError, match="no finished bench"):
        write_report(unfinished)
    assert not (unfinished / "report.html").exists()


@pytest.mark.parametrize("edit", ["schema 1", "truncated"])
def test_report_of_an_old_or_truncated_leaderboard_exits_2_naming_the_file(bench, tmp_path, capsys, edit):
    copy = tmp_path / "b"
    shutil.copytree(bench, copy, ignore=shutil.ignore_patterns("report.*"))
    path = copy / "leaderboard.json"
    text = path.read_text()
    path.write_text(json.dumps({**json.loads(text), "schema_version": 1}) if edit == "schema 1" else text[: len(text) // 2])
    assert main(["report", str(copy)]) == 2
    err = capsys.readouterr().err
    assert str(path) in " ".join(err.split()) and "Traceback" not in err and "KeyError" not in err
    assert not (copy / "report.html").exists()


def test_the_command_renders_from_the_board_it_holds(bench, tmp_path):
    """The bench command passes the board the score unit returned; the report need not read it back."""
    copy = tmp_path / "b"
    shutil.copytree(bench, copy, ignore=shutil.ignore_patterns("report.*"))
    board = read_leaderboard(copy / "leaderboard.json")
    (copy / "leaderboard.json").unlink()
    paths = write_report(copy, board=board)
    assert [p.name for p in paths] == ["report.html", "report.md"] and all(p.is_file() for p in paths)


def test_a_diverged_model_is_left_out_of_the_figures_and_said(bench, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bench, copy)
    run = copy / "methods" / "neggrad" / "seed_0003.npz"
    record = read_npz(run)
    meta = json.loads(str(record["meta"]))
    record["forget_logits"] = np.full_like(record["forget_logits"], np.nan)
    record["meta"] = np.array(json.dumps({**meta, "diverged": "non-finite logits on forget"}))
    write_bytes(run, npz_bytes(**record))
    html_path, md_path = write_report(copy)
    assert "seed_0003.npz: diverged" in html_path.read_text()
    assert "seed_0003.npz: diverged" in md_path.read_text()


def test_compare_puts_benches_over_one_setting_side_by_side(bench, tmp_path):
    other = tmp_path / "again"
    shutil.copytree(bench, other)
    result = compare_benches([bench, other])
    for m in _methods(bench):
        assert f"| {m} |" in result.markdown
        assert m in _parse(result.html).cells
    page = _parse(result.html)
    assert page.errors == [] and page.images and all(s.startswith("data:image/png;base64,") for s in page.images)
    assert not re.search(r"https?://", result.html)


def test_compare_refuses_different_settings_and_names_the_fields(bench, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(bench, other)
    record = json.loads((other / "bench.json").read_text())
    record["setting"]["train"]["epochs"] = 99
    record["dataset_fingerprint"] = "0000000000000000"
    (other / "bench.json").write_text(json.dumps(record))
    with pytest.raises(InputError) as err:
        compare_benches([bench, other])
    message = str(err.value)
    assert "setting.train.epochs" in message and "dataset_fingerprint" in message and "99" in message
    assert "setting.model" not in message


def test_compare_needs_two_finished_benches(bench, tmp_path):
    with pytest.raises(InputError, match="at least two"):
        compare_benches([bench])
    with pytest.raises(InputError, match=re.escape(str(tmp_path))):
        compare_benches([bench, tmp_path])


# -- in a browser ------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--enable-logging=stderr", "--v=0"]
# Clicks the score header twice (ascending, then descending) and writes the resulting order to the title.
SORT_PROBE = """<script>
var t=document.querySelector('table.sortable'),th=t.tHead.rows[0].cells[1];th.click();
var up=Array.prototype.map.call(t.tBodies[0].rows,function(r){return r.cells[1].getAttribute('data-v');});th.click();
var down=Array.prototype.map.call(t.tBodies[0].rows,function(r){return r.cells[1].getAttribute('data-v');});
document.title='SORTED:'+up.join(',')+';'+down.join(',');
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_renders_in_chromium_without_console_errors(bench, written, tmp_path):
    html_path, _ = written
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text().replace("</body>", SORT_PROBE, 1))
    run = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                          probe.as_uri()], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "Uncaught" not in run.stderr and not re.search(r"CONSOLE\(\d+\)", run.stderr), run.stderr[-2000:]
    dom = _parse(run.stdout)
    for m in _methods(bench):
        assert m in dom.cells
    assert len(dom.images) == 1 + 2 * len(_methods(bench))
    title = re.search(r"<title>SORTED:([^<]*)</title>", run.stdout)
    assert title, "the sorting probe did not run"
    up, down = ([float(v) for v in part.split(",")] for part in title.group(1).split(";"))
    assert up == sorted(up) and down == sorted(down, reverse=True)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_report_screenshot_has_content(written, tmp_path):
    html_path, _ = written
    shot = tmp_path / "shot.png"
    run = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
                          "--window-size=1280,2400", f"--screenshot={shot}", html_path.as_uri()],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.std() > 10, "the screenshot is blank"
    assert "Uncaught" not in run.stderr


def test_docs_results_md_names_every_stored_field(bench):
    """docs/results.md documents every field a bench writes (a new field must be documented)."""
    doc = (Path(__file__).parents[2] / "docs" / "results.md").read_text()
    board = json.loads((bench / "leaderboard.json").read_text())
    record = json.loads((bench / "bench.json").read_text())
    fields = {*board, *board["rows"][0], *record, *read_npz(bench / "per_example.npz"), "schema_version"}
    for run in [bench / "methods" / "finetune" / "seed_0000.npz"]:
        stored = read_npz(run)
        fields |= set(stored) | set(json.loads(str(stored["meta"])))
    missing = sorted(f for f in fields if f"`{f}`" not in doc)
    assert missing == [], f"docs/results.md does not document {missing}"


def test_a_bench_without_the_ceiling_set_still_reports(bench, tmp_path):
    copy = tmp_path / "b"
    shutil.copytree(bench, copy)
    board = json.loads((copy / "leaderboard.json").read_text())
    board["rows"] = [r for r in board["rows"] if r["method"] != CEILING]
    (copy / "leaderboard.json").write_text(json.dumps(board))
    pe = read_npz(copy / "per_example.npz")
    keep = np.array([str(n) != CEILING for n in pe["methods"]])
    pe.update(methods=pe["methods"][keep], eps_compat=pe["eps_compat"][keep], eps_bounded=pe["eps_bounded"][keep])
    write_bytes(copy / "per_example.npz", npz_bytes(**pe))
    html_path, md_path = write_report(copy)
    page = _parse(html_path.read_text())
    assert page.errors == [] and len(page.images) == 1 + 2 * len(board["rows"])
    assert CEILING not in page.cells and "| finetune |" in md_path.read_text()
