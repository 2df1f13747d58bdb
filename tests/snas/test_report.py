"""snas report: the page and its figures from a real search, opened in headless Chromium
(skipped where Chromium is absent); hostile names, missing data, the output folder rules
and the CLI errors on small stores written here."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _browser import launch_chromium, watch_problems
from test_dashboard import HOSTILE_NODE, HOSTILE_SEARCH, HOSTILE_TRIAL

from snas.cli import main
from snas.report import FIGURES, MANIFEST, MAX_LAYOUT_NODES, wiring_graph_figure
from snas.results import pareto_front, ranked_trials
from snas.store import ResultsStore

ROOT = Path(__file__).parents[2]
# matplotlib reads "$...$" as mathtext: unescaped, these would fail to render or vanish.
MATH_TRIAL = r"$\frac{1}{0}$ $x^$"
MATH_LAYER = r"<i>$\undefined$</i>"


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


@pytest.fixture(scope="module")
def digits_report(digits_search, tmp_path_factory):
    """``snas report digits`` on the shared finished search: (out dir, manifest, stdout)."""
    url, name, _ = digits_search
    out = tmp_path_factory.mktemp("report") / "digits-report"  # created by the command
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):  # capsys is function-scoped
        code = main(["report", name, "--store", url, "--out", str(out)])
    assert code == 0
    return out, json.loads((out / MANIFEST).read_text()), stdout.getvalue()


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    """Searches without Ray: hostile names, an empty one, one with partial data."""
    tmp = tmp_path_factory.mktemp("report_store")
    store = ResultsStore(f"sqlite:///{tmp}/r.db")
    layers = {"layers": [{"name": "<b onmouseover=x>l0", "shape": [4, 4]},
                         {"name": MATH_LAYER, "shape": [2, 4]}]}
    store.create_search(HOSTILE_SEARCH, "<script>window.__pwned = 4</script>", {}, "random", 3,
                        str(tmp), layers)
    for trial, status, acc in ((HOSTILE_TRIAL, "terminated", 0.4), (MATH_TRIAL, "terminated", 0.5),
                               ("</td><script>window.__pwned = 6</script>", "stopped", 0.3)):
        store.upsert_trial(HOSTILE_SEARCH, trial, density=[0.5, 1.0], status=status,
                           error="<script>window.__pwned = 5</script>")
        for epoch in (1, 2):
            store.record_epoch(HOSTILE_SEARCH, trial, epoch,
                               {"epoch": epoch, "val_accuracy": acc + 0.1 * epoch,
                                "val_loss": 1.0 / epoch, "active_weights": 12 + 4 * epoch,
                                "egf_1": 0.5, "egf_2": 0.2 * epoch})
        store.record_summary(HOSTILE_SEARCH, trial, {"test_accuracy": acc, "total_weights": 24})
    store.record_graph(HOSTILE_SEARCH, MATH_TRIAL,
                       {"directed": True, "multigraph": False, "graph": {},
                        "nodes": [{"id": HOSTILE_NODE}, {"id": MATH_TRIAL}, {"id": "out"}],
                        "edges": [{"source": HOSTILE_NODE, "target": MATH_TRIAL,
                                   "density": 0.5},
                                  {"source": MATH_TRIAL, "target": "out", "density": 1.0}]},
                       {"graph_level": "layer"})
    store.create_search("empty", "", {}, "random", 4, str(tmp), {})
    # partial: a trial still running, no EGF, no graph; a failed trial with nothing
    store.create_search("partial", "", {}, "bayesopt", 4, str(tmp),
                        {"layers": [{"name": "a", "shape": [3, 3]}]})
    store.upsert_trial("partial", "t1", density=[0.3], status="running")
    store.record_epoch("partial", "t1", 1, {"epoch": 1, "val_accuracy": 0.6, "val_loss": 0.9,
                                            "active_weights": 3})
    store.upsert_trial("partial", "t2", density=[0.7], status="error")
    yield store
    store.close()


def cli(argv: list[str]) -> int:
    """``snas ARGV``'s exit code, also for argparse errors (which raise SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def report(store, name: str, out: Path, *extra: str) -> int:
    return cli(["report", name, "--store", store.url, "--out", str(out), *extra])


def no_data_sections(html: str) -> set[str]:
    found = set()
    for name in FIGURES:
        start = html.index(f'<section id="figure-{name}">')
        section = html[start:html.index("</section>", start)]
        if '<p class="no-data">No data:' in section:
            found.add(name)
    return found


def open_page(browser, path: Path):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    problems = watch_problems(page)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, problems, requests


def images_loaded(page) -> list[dict]:
    return page.evaluate("""() => Array.from(document.images).map((img) => ({
        src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth}))""")


# --------------------------------------------------------------------------------------
# A real search


def test_report_writes_page_and_every_figure(digits_report, digits_search):
    out, manifest, stdout = digits_report
    url, name, _ = digits_search
    assert stdout.strip() == f"snas report {name}: wrote {out / 'index.html'} with 5 figure(s)"
    assert manifest["search"] == name and manifest["format"] == "snas-report/1"
    assert sorted(p.name for p in out.iterdir()) == sorted(manifest["files"])
    for figure in FIGURES:
        entry = manifest["figures"][figure]
        assert entry["file"] == f"{figure}.png" and entry["note"] is None, figure
        data = (out / entry["file"]).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, figure
    html = (out / "index.html").read_text()
    assert no_data_sections(html) == set()
    for figure in FIGURES:
        assert f'<img src="{figure}.png"' in html

    with ResultsStore(url) as store:
        ranked, baseline, metric, mode = ranked_trials(store, name)
        front = pareto_front(ranked, metric, mode)
    best = ranked[0]
    statuses = [t["status"] for t in ranked]
    # summary: trials by status, the best trial and the dense baseline side by side
    assert (f"{len(ranked)} of 8 planned: pending 0, running 0, terminated "
            f"{statuses.count('terminated')}, stopped {statuses.count('stopped')}, error 0"
            ) in html
    assert f"Density vector of the best trial ({best['trial_id']})" in html
    assert html.count('<tr class="baseline">') == 1 and baseline["trial_id"] in html
    assert f"epoch, {len(front)} trial(s)" in manifest["figures"]["accuracy"]["caption"]
    assert f"top {min(10, len(ranked))} trial(s)" in manifest["figures"]["density_heatmap"][
        "caption"]
    # the graph drawn is the best trial's; 202 neurons is over the layout cap: says so
    assert manifest["graph_trial"] == best["trial_id"]
    caption = manifest["figures"]["wiring_graph"]["caption"]
    assert caption.startswith(f"Trial {best['trial_id']} (rank 1), the best trial.")
    assert "202 nodes" in caption and "Readable version" in caption


def test_page_renders_in_chromium(browser, digits_report, tmp_path):
    from PIL import Image

    out, _, _ = digits_report
    page, problems, requests = open_page(browser, out / "index.html")
    images = images_loaded(page)
    assert sorted(i["src"] for i in images) == sorted(f"{f}.png" for f in FIGURES)
    assert all(i["complete"] and i["width"] > 0 for i in images), images
    assert all(u.startswith(out.as_uri()) for u in requests), requests  # nothing else fetched
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    page.close()
    assert not problems, problems
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[0] > 2000  # the full page: summary and five figures
    ink = (pixels < 200).any(axis=2).mean()  # share of pixels that are not near-white
    assert ink > 0.03, ink
    rgb = pixels.astype(np.int32)
    colours = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert len(colours) > 200  # plots (antialiased lines, colour maps), not flat blocks


def test_svg_figures_and_top(digits_search, tmp_path):
    url, name, _ = digits_search
    out = tmp_path / "svg"
    assert main(["report", name, "--store", url, "--out", str(out), "--format", "svg",
                 "--top", "3"]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    for figure in FIGURES:
        text = (out / f"{figure}.svg").read_text()
        assert text.startswith("<?xml") and "<svg" in text and "<script" not in text
    assert not list(out.glob("*.png"))
    assert "top 3 trial(s)" in manifest["figures"]["density_heatmap"]["caption"]
    html = (out / "index.html").read_text()
    top_table = html[html.index("<h3>Top 3 trials</h3>"):html.index("</section>")]
    assert top_table.count("<tr") == 1 + 3


@pytest.mark.parametrize("attr, value, legend", [
    ("layer", [0, 1, 2], ["layer 0 (input)", "layer 1", "layer 2 (output)"]),
    ("tensor", ["x", "conv1", "fc"], ["tensor x", "tensor conv1", "tensor fc"]),
])
def test_large_graph_is_drawn_as_a_readable_subset(attr, value, legend):
    """610 nodes, 9,300 edges: Kamada-Kawai gets the most connected nodes of each group."""
    rng = np.random.default_rng(0)
    sizes = [300, 300, 10]
    nodes = [{"id": f"{i}:{j}", attr: value[i]} for i, n in enumerate(sizes) for j in range(n)]
    edges = [{"source": f"{i}:{j}", "target": f"{i + 1}:{o}"} for i in range(2)
             for o in range(sizes[i + 1]) for j in rng.choice(sizes[i], 30, replace=False)]
    fig, caption = wiring_graph_figure({"directed": True, "multigraph": False, "graph": {},
                                        "nodes": nodes, "edges": edges},
                                       {"graph_level": "neuron"})
    assert caption.startswith("Graph level neuron (one node per neuron, one edge per active "
                              "weight): 610 nodes, 9,300 edges; Kamada-Kawai layout")
    drawn = re.search(r"Readable version: .* of every (\w+) are drawn \(([\d,]+) nodes", caption)
    assert drawn and drawn[1] == attr and int(drawn[2]) <= MAX_LAYOUT_NODES, caption
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == legend


# --------------------------------------------------------------------------------------
# Hostile names, missing data


def test_hostile_names_are_escaped(browser, small_store, tmp_path):
    out = tmp_path / "hostile"
    assert report(small_store, HOSTILE_SEARCH, out) == 0
    html = (out / "index.html").read_text()
    assert "<script" not in html and "<b onmouseover" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html
    assert "&lt;/td&gt;&lt;script&gt;" in html and "&lt;b onmouseover=x&gt;l0" in html
    manifest = json.loads((out / MANIFEST).read_text())
    assert all(manifest["figures"][f]["file"] for f in FIGURES), manifest["figures"]
    assert manifest["graph_trial"] == MATH_TRIAL

    page, problems, _ = open_page(browser, out / "index.html")
    assert page.text_content("#search-name") == HOSTILE_SEARCH
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.scripts.length") == 0
    assert all(i["complete"] and i["width"] > 0 for i in images_loaded(page))
    page.close()
    assert not problems, problems


def test_empty_search_says_no_data_per_figure(small_store, tmp_path, capsys):
    out = tmp_path / "empty"
    assert report(small_store, "empty", out) == 0
    assert capsys.readouterr().out.strip().endswith(
        "with 0 figure(s); no data for accuracy, density_heatmap, learning_curves, "
        "egf_curves, wiring_graph")
    html = (out / "index.html").read_text()
    assert no_data_sections(html) == set(FIGURES)
    assert "No data: no trial has reported val_accuracy yet." in html
    assert sorted(p.name for p in out.iterdir()) == ["index.html", MANIFEST]


def test_partial_search_draws_what_exists(small_store, tmp_path):
    out = tmp_path / "partial"
    assert report(small_store, "partial", out) == 0
    html = (out / "index.html").read_text()
    assert no_data_sections(html) == {"egf_curves", "wiring_graph"}
    assert "no trial has recorded egf_1 or egf_2 yet" in html
    assert "no trial has a stored wiring graph yet" in html
    assert "running 1" in html and "error 1" in html


# --------------------------------------------------------------------------------------
# The output folder and the CLI


def test_out_folder_rules(small_store, tmp_path, capsys):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    capsys.readouterr()
    assert report(small_store, "partial", foreign) == 2
    err = capsys.readouterr().err
    assert "is not empty and holds no snas report" in err and err.count("\n") == 1
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]

    # an earlier report's folder: its files are replaced, stale ones removed, others kept
    out = tmp_path / "again"
    assert report(small_store, "partial", out) == 0
    assert (out / "accuracy.png").exists()
    (out / "notes.txt").write_text("mine")
    assert report(small_store, "empty", out) == 0
    assert sorted(p.name for p in out.iterdir()) == ["index.html", "notes.txt", MANIFEST]
    assert json.loads((out / MANIFEST).read_text())["search"] == "empty"

    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert report(small_store, "empty", a_file) == 2
    assert "is a file" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["report", "nope"], "no search named 'nope'"),
    (["report", "empty", "--top", "0"], "--top must be an integer >= 1, got 0"),
    (["report", "empty", "--format", "gif"], "invalid choice: 'gif'"),
])
def test_cli_errors_are_one_line(small_store, tmp_path, capsys, argv, message):
    out = tmp_path / "never"
    assert cli([*argv, "--store", small_store.url, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_report_imports_neither_torch_nor_ray(small_store, tmp_path):
    code = ("import sys; from snas.report import write_report; from snas.store import "
            f"ResultsStore; m = write_report(ResultsStore({small_store.url!r}), "
            f"{HOSTILE_SEARCH!r}, {str(tmp_path / 'r')!r}); "
            "assert m['figures']['wiring_graph']['file'], m; "
            "bad = [m for m in ('torch', 'ray') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
