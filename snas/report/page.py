"""The HTML page of ``snas report`` (``index.html``): the summary tables and one section
per figure.

The page is self-contained: relative image links, inline CSS, no script, no network fetch
(its Content-Security-Policy allows nothing else). Every text from the store is
HTML-escaped here, in :func:`_e` and :func:`_table`.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from snas.core import metrics as M
from snas.report.data import (
    COSTS,
    ReportData,
    finite,
    format_count,
    format_number,
    layer_densities,
)
from snas.report.figures import FIGURES


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str] | None, rows: Sequence[Sequence[Any]],
           classes: Sequence[str] = (), row_classes: Sequence[str] | None = None) -> str:
    """An HTML table (no head row when ``header`` is None); every header and cell is
    escaped. ``classes[i]`` styles column i, ``row_classes[r]`` row r."""
    def cls(i: int) -> str:
        return f' class="{_e(classes[i])}"' if i < len(classes) and classes[i] else ""

    head = ("<thead><tr>" + "".join(f"<th{cls(i)}>{_e(h)}</th>" for i, h in enumerate(header))
            + "</tr></thead>") if header is not None else ""
    body = []
    for r, row in enumerate(rows):
        rc = row_classes[r] if row_classes else ""
        cells = "".join(f"<td{cls(i)}>{_e(c)}</td>" for i, c in enumerate(row))
        body.append((f'<tr class="{_e(rc)}">' if rc else "<tr>") + f"{cells}</tr>")
    return f'<div class="table-wrap"><table>{head}<tbody>{"".join(body)}</tbody></table></div>'


def _summary_html(data: ReportData) -> str:
    from snas.results import format_density
    from snas.store import TRIAL_STATUSES

    record, metric = data.record, data.metric
    counts = {s: sum(1 for t in data.trials if t["status"] == s) for s in TRIAL_STATUSES}
    space = record.get("space") if isinstance(record.get("space"), Mapping) else {}

    def section(key: str) -> str:
        part = space.get(key)
        return str(part.get("name")) if isinstance(part, Mapping) and "name" in part else "-"

    def when(key: str) -> str:
        value = record.get(key)
        return value.strftime("%Y-%m-%d %H:%M:%S %Z") if isinstance(value, dt.datetime) else "-"

    facts = [
        ("search", data.name),
        ("status", record.get("status", "-")),
        ("searcher", record.get("searcher", "-")),
        ("trials", f"{len(data.trials)} of {record.get('num_samples', '-')} planned: "
                   + ", ".join(f"{s} {n}" for s, n in counts.items())),
        ("ranked by", f"{data.ranked_by or metric} ({'higher' if data.mode == 'max' else 'lower'}"
                      " is better; trials that trained every epoch first)"),
        *([("noise", f"{metric} standard error ±{data.standard_error:.4f} at the best (from "
                     "the split's size): differences under ~2 standard errors are noise")]
          if data.standard_error is not None else []),
        *([("confirmation", data.verdict)] if data.verdict else []),
        ("dataset / model / kernel", f"{section('dataset')} / {section('model')} / "
                                     f"{section('kernel')}"),
        ("created / finished", f"{when('created_at')} / {when('finished_at')}"),
    ]
    parts = ['<section id="summary"><h2>Summary</h2>',
             _table(None, facts, ("text key", "text"))]

    best = data.scored[0] if data.scored else None
    base = data.baseline
    parts.append("<h3>Best trial against the dense baseline</h3>")
    if best is None:
        parts.append(f'<p class="no-data">No data: no trial has reported {_e(metric)} yet.</p>')
    else:
        cols = (metric, M.TEST_ACCURACY, M.ACTIVE_WEIGHTS, M.EGF_2)

        def line(label: str, t: Mapping[str, Any]) -> list[str]:
            total = t.get(M.TOTAL_WEIGHTS)
            share = (f"{t[M.ACTIVE_WEIGHTS] / total:.1%}" if finite(t.get(M.ACTIVE_WEIGHTS))
                     and finite(total) and total else "-")
            return [label, t["trial_id"], t["status"], t.get("epochs", "-"),
                    format_number(t.get(metric)), format_number(t.get(M.TEST_ACCURACY)),
                    format_count(t.get(M.ACTIVE_WEIGHTS)), share, format_number(t.get(M.EGF_2), ".4g")]

        rows = [line("best" + (" (the dense baseline)" if best.get("is_baseline") else ""),
                     best)]
        if base is not None and base is not best:
            rows.append(line("dense baseline", base))
            diff = ["difference", "", "", ""]
            for key in cols:
                a, b = best.get(key), base.get(key)
                if key == M.ACTIVE_WEIGHTS:
                    diff += [f"{a - b:+,.0f}" if finite(a) and finite(b) else "-", ""]
                else:
                    diff.append(f"{a - b:+.4f}" if finite(a) and finite(b) else "-")
            rows.append(diff)
        elif base is None:
            rows.append(["dense baseline", "(not in this search)"] + [""] * 7)
        parts.append(_table(("", "trial", "status", "epochs", metric, "test_accuracy",
                             "active weights", "of dense", "egf_2"), rows,
                            ("text", "text id", "text")))
        n = max(len(data.layers), len(best.get("density") or []))
        density = layer_densities(best, n)
        realized = best.get(M.REALIZED_DENSITY) if isinstance(
            best.get(M.REALIZED_DENSITY), list) else []
        base_density = layer_densities(base, n) if base else []
        layer_rows = []
        for i in range(n):
            layer = data.layers[i] if i < len(data.layers) else {"name": f"layer {i}",
                                                                 "shape": None}
            shape = layer["shape"]
            size = math.prod(shape) if shape and all(finite(s) for s in shape) else None
            real = realized[i] if i < len(realized) and finite(realized[i]) else None
            kept = (round(real * size) if real is not None and size
                    else max(1, round(density[i] * size)) if size and i < len(density)
                    and finite(density[i]) else None)
            layer_rows.append([layer["name"], "x".join(map(str, shape)) if shape else "-",
                               format_count(size), format_number(density[i] if i < len(density) else None, ".3f"),
                               format_number(real, ".3f"), format_count(kept),
                               format_number(base_density[i] if i < len(base_density) else None, ".3f")])
        parts.append(f"<h3>Density vector of the best trial ({_e(best['trial_id'])})</h3>")
        parts.append(_table(("layer", "shape", "weights (dense)", "density", "realised density",
                             "active weights", "dense baseline density"), layer_rows,
                            ("text id",)))

    parts.append(f"<h3>Top {min(data.top, len(data.scored))} trials</h3>")
    if not data.scored:
        parts.append('<p class="no-data">No data: no ranked trial yet.</p>')
    else:
        base_value = base.get(metric) if base else None
        rows, row_classes = [], []
        for t in data.top_trials:
            value = t.get(metric)
            delta = ("dense" if t.get("is_baseline") else f"{value - base_value:+.4f}"
                     if finite(value) and finite(base_value) else "-")
            rows.append([t["rank"], t["trial_id"], t["status"], t.get("epochs", "-"),
                         format_number(value), format_number(t.get(M.TEST_ACCURACY)), format_count(t.get(M.ACTIVE_WEIGHTS)),
                         delta, format_number(t.get(M.EGF_2), ".4g"), format_density(t.get("density"))])
            row_classes.append("baseline" if t.get("is_baseline") else "")
        parts.append(_table(("rank", "trial", "status", "epochs", metric, "test_accuracy",
                             "active weights", "vs dense", "egf_2", "density vector"), rows,
                            ("", "text id", "text", "", "", "", "", "", "", "text"),
                            row_classes))
    parts.append("</section>")
    return "\n".join(parts)


_TITLES = {
    "accuracy": "Accuracy vs active weights",
    "density_heatmap": "Per-layer density of the top trials",
    "learning_curves": "Learning curves",
    "egf_curves": "Effective Gradient Flow per epoch",
    "wiring_graph": "Wiring graph of the best trial",
}

_CSS = """
:root { --fg: #1d2330; --muted: #667085; --line: #d8dde6; --bg: #f7f8fa; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1200px; padding: 1em 1.5em 3em;
       font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
h1 { font-size: 1.4em; overflow-wrap: anywhere; }
h2 { font-size: 1.15em; margin-top: 1.8em; overflow-wrap: anywhere; }
h3 { font-size: 1em; margin-top: 1.4em; overflow-wrap: anywhere; }
.muted { color: var(--muted); }
.table-wrap { overflow-x: auto; background: #fff; border: 1px solid var(--line);
              border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: .3em .6em; border-bottom: 1px solid #eef1f5; text-align: right;
         white-space: nowrap; }
th { background: #f0f2f6; }
td.text, th.text { text-align: left; white-space: normal; overflow-wrap: anywhere; }
td.key { font-weight: 600; width: 14em; }
td.id { max-width: 26em; overflow-wrap: anywhere; white-space: normal; }
tr.baseline td { background: #fff8e6; }
figure { margin: 0; background: #fff; border: 1px solid var(--line); border-radius: 6px;
         padding: .6em; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); margin-top: .4em; overflow-wrap: anywhere; }
.no-data { background: #fff; border: 1px dashed var(--line); border-radius: 6px;
           padding: 1em; color: var(--muted); overflow-wrap: anywhere; }
"""


def page_html(data: ReportData, figures: Mapping[str, dict[str, Any]], fmt: str,
              generated: str) -> str:
    """The whole ``index.html``: header, summary, then each figure's image and caption,
    or the note why it has none."""
    sections = []
    titles = {**_TITLES, "accuracy": f"Accuracy vs {COSTS[data.cost][0]}"}
    for name in FIGURES:
        fig = figures[name]
        body = (f'<figure><img src="{_e(fig["file"])}" alt="{_e(titles[name])}" '
                f'width="{fig["width"]}" height="{fig["height"]}">'
                f"<figcaption>{_e(fig['caption'])}</figcaption></figure>" if fig.get("file")
                else f'<p class="no-data">No data: {_e(fig["note"])}.</p>')
        sections.append(f'<section id="figure-{name}"><h2>{_e(titles[name])}</h2>\n'
                        f"{body}</section>")
    csp = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="snas report">
<title>snas report: {_e(data.name)}</title>
<style>{_CSS}</style>
</head>
<body>
<header><h1>snas report: <span id="search-name">{_e(data.name)}</span></h1>
<p class="muted">Generated {_e(generated)} by <code>snas report</code> from the results store;
{_e(len(data.trials))} trial(s), figures as {_e(fmt.upper())}.</p></header>
{_summary_html(data)}
{chr(10).join(sections)}
</body>
</html>
"""
