"""``snas report NAME --out DIR``: a static HTML report of one search, with figures.

The report reads the results store only (the search through one
:class:`~snas.view.SearchView`, then ``epochs_frame`` and ``graph``) and writes into
``DIR``:

* ``index.html``: the summary (search, searcher, trials by status, the best trial and its
  density vector against the dense baseline, the ranked top trials) and one section per
  figure; a figure without data (no finished trial, no graph, no EGF yet) is a note saying
  so, never a crash.
* one image per figure (PNG by default, SVG with ``--format svg``; matplotlib on the Agg
  canvas): ``accuracy``, ``density_heatmap``, ``learning_curves``, ``egf_curves``,
  ``wiring_graph``.
* ``snas-report.json``: the manifest (search, time, files, per-figure note). It marks the
  folder as a report: a later ``snas report`` into the same folder replaces the files the
  previous report listed (and only those); any other non-empty folder is refused.

The page is self-contained: relative image links, inline CSS, no script, no network
fetch (its Content-Security-Policy allows nothing else). Every text from the store is
HTML-escaped, and ``$`` is escaped for matplotlib so names are never read as mathtext.

Imports at module level stay light (``snas --help`` imports this module); matplotlib,
networkx and pandas load inside :func:`write_report`. Neither torch nor ray is imported.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import html
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snas.core import metrics as M
from snas.core.errors import ConfigError

__all__ = ["FIGURES", "MANIFEST", "NoData", "ReportData", "accuracy_figure",
           "density_heatmap_figure", "egf_figure", "learning_curves_figure", "load_report_data",
           "wiring_graph_figure", "write_report"]

HELP = "write an HTML report with figures of a search"
DESCRIPTION = ("Write a self-contained HTML report of a search into a folder: a summary "
               "(searcher, trials by status, best trial and its density vector against the "
               "dense baseline, top trials) and figures: accuracy vs active weights with the "
               "Pareto front and the dense baseline, per-layer densities of the top trials, "
               "learning curves, EGF curves and the best trial's wiring graph (Kamada-Kawai). "
               "Open DIR/index.html in a browser; it fetches nothing from the network.")

PAGE = "index.html"
MANIFEST = "snas-report.json"
MANIFEST_FORMAT = "snas-report/1"
FORMATS = ("png", "svg")
#: Figure names in page order; the image of figure ``f`` is ``f.png`` (or ``f.svg``).
FIGURES = ("accuracy", "density_heatmap", "learning_curves", "egf_curves", "wiring_graph")
#: Files a report may write; only these are ever replaced or removed in ``DIR``.
OWNED_FILES = frozenset({PAGE, MANIFEST} | {f"{f}.{x}" for f in FIGURES for x in FORMATS})
#: Kamada-Kawai is O(n^2) per step: graphs with more nodes are drawn as a readable subset.
MAX_LAYOUT_NODES = 120
DPI = 110
_STYLE = {"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
          "axes.spines.right": False, "svg.fonttype": "path", "svg.hashsalt": "snas-report",
          "figure.dpi": DPI}
_BASELINE_COLOR = "#9a6700"
#: Cost metric -> (axis label, the dense network's total, unit), for the accuracy figure.
_COSTS = {M.ACTIVE_WEIGHTS: ("active weights", M.TOTAL_WEIGHTS, "weights"),
          M.ACTIVE_FLOPS: ("active FLOPs", M.TOTAL_FLOPS, "FLOPs")}


class NoData(Exception):  # noqa: N818 - a figure's outcome, not an error
    """A figure has nothing to draw; the message says why (it goes on the page)."""


def _finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _mpl(text: Any, limit: int = 40) -> str:
    """Store text as matplotlib shows it literally: ``$`` would start mathtext."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text.replace("$", r"\$")


def _num(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if _finite(value) else "-"


def _int(value: Any) -> str:
    return f"{round(value):,}" if _finite(value) else "-"


# --------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class ReportData:
    """What the report reads from the store for one search."""

    name: str
    record: dict[str, Any]  # ResultsStore.get_search
    metric: str
    mode: str
    cost: str  # what the Pareto front minimises (SearchView.cost)
    front: list[dict[str, Any]]  # the Pareto front, cheapest first (SearchView.pareto_front)
    layers: list[dict[str, Any]]  # {"name", "shape"} per maskable layer
    trials: list[dict[str, Any]]  # ranked best first; "rank" is None when unscored
    baseline: dict[str, Any] | None  # the dense-baseline trial
    curves: dict[str, dict[str, list]]  # trial id -> per-epoch lists (dashboard shape)
    top: int

    @property
    def scored(self) -> list[dict[str, Any]]:
        return [t for t in self.trials if t.get("rank") is not None]

    @property
    def top_trials(self) -> list[dict[str, Any]]:
        return self.scored[:self.top]


def load_report_data(store: Any, name: str, top: int = 10) -> ReportData:
    """Read a search for the report (ranked trials, front, curves, layers); SearchError if
    absent."""
    from snas.dashboard import epochs_payload, search_payload
    from snas.view import SearchView

    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ConfigError(f"--top must be an integer >= 1, got {top!r}")
    view = SearchView.load(store, name)
    payload = search_payload(view)
    trials = payload["trials"]
    baseline = next((t for t in trials if t["trial_id"] == payload["baseline"]), None)
    return ReportData(name, dict(view.record), view.metric, view.mode, view.cost,
                      [dict(t) for t in view.pareto_front], view.layers, trials, baseline,
                      epochs_payload(store, name)["trials"], top)


def _density(trial: Mapping[str, Any], n_layers: int) -> list[float]:
    density = [float(d) if _finite(d) else math.nan for d in trial.get("density") or []]
    if len(density) == 1 and n_layers > 1:  # a uniform search stores one scalar
        density = density * n_layers
    return density


# --------------------------------------------------------------------------------------
# Figures: each returns (matplotlib Figure, caption) or raises NoData(reason).


def _figure(width: float, height: float, **kwargs: Any) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained", **kwargs)
    FigureCanvasAgg(fig)
    return fig


def accuracy_figure(data: ReportData) -> tuple[Any, str]:
    """The search metric (and test accuracy) vs the search's cost (active weights, or active
    FLOPs for a FLOPs budget) of every trial, with the Pareto front of the full-fidelity
    trials (the one ``snas export --pareto`` writes) and the dense baseline marked."""
    from matplotlib.ticker import FuncFormatter

    metric, trials, cost = data.metric, data.trials, data.cost
    cost_label, total_key, unit = _COSTS[cost]
    panels = [metric] + ([M.TEST_ACCURACY] if metric != M.TEST_ACCURACY else [])
    have = {key: [t for t in trials if _finite(t.get(key)) and _finite(t.get(cost))]
            for key in panels}
    if not have[metric]:
        raise NoData(f"no trial has reported {metric} and {cost_label} yet")
    front = data.front
    front_ids = [t["trial_id"] for t in front]
    xs = [float(t[cost]) for key in panels for t in have[key]]
    log_x = min(xs) > 0 and max(xs) / min(xs) >= 20
    total = next((t.get(total_key) for t in trials if _finite(t.get(total_key))), None)
    fig = _figure(5.4 * len(panels), 4.3)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    groups = (("terminated", "trained every epoch", "C0", 0.9),
              ("stopped", "stopped early (ASHA)", "C1", 0.6),
              (None, "running / other", "C7", 0.6))
    by_id = {t["trial_id"]: t for t in trials}
    for ax, key in zip(axes, panels, strict=True):
        points = [t for t in have[key] if not t.get("is_baseline")]
        for status, label, color, alpha in groups:
            chosen = [t for t in points if t["status"] == status
                      or (status is None and t["status"] not in ("terminated", "stopped"))]
            if chosen:
                ax.scatter([t[cost] for t in chosen], [t[key] for t in chosen],
                           s=28, color=color, alpha=alpha, label=label, zorder=3,
                           edgecolors="white", linewidths=0.6)
        on_front = [by_id[i] for i in front_ids if _finite(by_id[i].get(key))]
        if on_front:
            fx = [t[cost] for t in on_front]
            fy = [t[key] for t in on_front]
            if key == metric:  # the attainment staircase of the front
                ax.step(fx, fy, where="post", color="#b42318", lw=1.4, zorder=2,
                        label=f"Pareto front ({len(on_front)})")
            else:
                ax.plot(fx, fy, color="#b42318", lw=1.0, ls=":", zorder=2,
                        label=f"Pareto front by {_mpl(metric)}")
            ax.scatter(fx, fy, s=80, facecolors="none", edgecolors="#b42318", lw=1.3, zorder=4)
        base = data.baseline
        if base and _finite(base.get(key)):
            ax.axhline(base[key], color=_BASELINE_COLOR, ls="--", lw=1, zorder=1)
            if _finite(base.get(cost)):
                ax.scatter([base[cost]], [base[key]], marker="*", s=190,
                           color=_BASELINE_COLOR, edgecolors="black", lw=0.6, zorder=5,
                           label="dense baseline")
        if not have[key]:
            ax.text(0.5, 0.5, f"no {key} yet", transform=ax.transAxes, ha="center",
                    color="0.4")
        if log_x:
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel(cost_label + (" (log scale)" if log_x else ""))
        ax.set_ylabel(_mpl(key))
        if _finite(total) and total > 0:
            top_axis = ax.secondary_xaxis("top", functions=(lambda x, n=total: x / n,
                                                            lambda f, n=total: f * n))
            top_axis.set_xlabel(f"fraction of the dense network's {unit}")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7.5, loc="best")
    scored = sum(1 for t in have[metric] if not t.get("is_baseline"))
    caption = (f"{metric} ({'higher' if data.mode == 'max' else 'lower'} is better)"
               + (" and test accuracy" if len(panels) > 1 else "")
               + f" against {cost_label}, {scored} trial(s). Red: the Pareto front "
               f"(snas.results.pareto_front: no other trial has at least as good a {metric} "
               f"with at most as many {cost_label}) over the trials that trained every "
               f"epoch, {len(front)} trial(s)")
    caption += ("; the test panel shows the same trials, selected by "
                f"{metric}, not by test accuracy." if len(panels) > 1 else ".")
    caption += (" Star and dashed line: the dense baseline." if data.baseline
                else " No dense baseline in this search.")
    return fig, caption


def density_heatmap_figure(data: ReportData) -> tuple[Any, str]:
    """Per-layer densities of the top trials: rows = trials (rank order), cols = layers."""
    import numpy as np

    rows = [t for t in data.top_trials if t.get("density")]
    if not rows:
        raise NoData("no ranked trial with a density vector yet")
    n = max(len(data.layers), *(len(_density(t, len(data.layers))) for t in rows))
    names = [data.layers[i]["name"] if i < len(data.layers) else f"layer {i}"
             for i in range(n)]
    matrix = np.full((len(rows), n), np.nan)
    for r, t in enumerate(rows):
        d = _density(t, n)
        matrix[r, :len(d)] = d
    width = min(18.0, 3.2 + 0.55 * n)
    fig = _figure(width, 1.6 + 0.3 * len(rows) + 0.08 * min(40, max(map(len, names))))
    ax = fig.subplots()
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto",
                      interpolation="nearest")
    ax.grid(False)
    labels = [f"{t['rank']}. {_mpl(t['trial_id'], 24)}"
              + (" (dense)" if t.get("is_baseline") else "")
              + f"  {_num(t.get(data.metric), '.3f')}" for t in rows]
    ax.set_yticks(range(len(rows)), labels=labels)
    step = max(1, math.ceil(n / 40))
    ax.set_xticks(range(0, n, step), labels=[_mpl(names[i], 28) for i in range(0, n, step)],
                  rotation=40, ha="right", rotation_mode="anchor")
    if n <= 16 and len(rows) <= 30:
        for (r, c), v in np.ndenumerate(matrix):
            if math.isfinite(v):
                ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=7.5,
                        color="white" if v < 0.55 else "black")
    ax.set_xlabel("layer")
    ax.set_title(f"rank. trial  {_mpl(data.metric)}", loc="left", fontsize=8, color="0.35")
    fig.colorbar(image, ax=ax, label="density (fraction of weights kept)", shrink=0.9)
    caption = (f"Density per layer of the top {len(rows)} trial(s) by {data.metric} "
               f"(rows, best first) over the {n} maskable layer(s) (columns).")
    return fig, caption


def _curves_figure(data: ReportData, panels: Sequence[tuple[str, str]],
                   what: str) -> tuple[Any, str]:
    import numpy as np

    def series(trial_id: str, key: str) -> tuple[list, list] | None:
        curve = data.curves.get(trial_id) or {}
        xs, ys = curve.get(M.EPOCH) or [], curve.get(key) or []
        pts = [(x, y) for x, y in zip(xs, ys, strict=False) if x is not None]
        if not any(_finite(y) for _, y in pts):
            return None
        return [x for x, _ in pts], [y if _finite(y) else np.nan for _, y in pts]

    present = {key for key, _ in panels for tid in data.curves if series(tid, key)}
    if not present:
        raise NoData(f"no trial has recorded {' or '.join(k for k, _ in panels)} yet")
    top_ids = [t["trial_id"] for t in data.top_trials if not t.get("is_baseline")]
    base_id = data.baseline["trial_id"] if data.baseline else None
    rank = {t["trial_id"]: t["rank"] for t in data.scored}
    colors = _palette(len(top_ids))
    fig = _figure(5.4 * len(panels), 4.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels, strict=True):
        drawn = 0
        for tid in data.curves:  # every trial, thin and grey underneath
            s = series(tid, key)
            if s and tid not in top_ids and tid != base_id:
                ax.plot(*s, color="0.65", lw=0.8, alpha=0.7, zorder=1)
                drawn += 1
        for tid, color in zip(top_ids, colors, strict=True):
            s = series(tid, key)
            if s:
                ax.plot(*s, color=color, lw=1.6, marker="o", ms=2.5, zorder=3,
                        label=f"{rank.get(tid, '-')}. {_mpl(tid, 20)}")
                drawn += 1
        s = series(base_id, key) if base_id else None
        if s:
            ax.plot(*s, color=_BASELINE_COLOR, lw=1.8, ls="--", zorder=2,
                    label="dense baseline")
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, f"no {key} recorded", transform=ax.transAxes, ha="center",
                    color="0.4")
        values = [y for tid in data.curves for y in (series(tid, key) or ([], []))[1]
                  if math.isfinite(y)]
        if values and min(values) > 0 and max(values) / min(values) > 50:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles[:11], labels[:11], fontsize=7, loc="best")
    others = len(data.curves) - len(top_ids) - (1 if base_id in data.curves else 0)
    caption = (f"{what} per epoch. Coloured: the top {len(top_ids)} trial(s) by "
               f"{data.metric} (legend: rank. trial)"
               + ("; dashed: the dense baseline" if base_id in data.curves else "")
               + (f"; grey: the other {others} trial(s)" if others > 0 else "") + ".")
    return fig, caption


def _palette(n: int) -> list:
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    return [colormaps["plasma"](0.85 * i / (n - 1)) for i in range(n)]


def learning_curves_figure(data: ReportData) -> tuple[Any, str]:
    """Validation accuracy and loss per epoch of every trial, the top trials highlighted."""
    return _curves_figure(data, ((M.VAL_ACCURACY, "validation accuracy"),
                                 (M.VAL_LOSS, "validation loss")),
                          "Validation accuracy (left) and loss (right)")


def egf_figure(data: ReportData) -> tuple[Any, str]:
    """EGF_1 and EGF_2 (Effective Gradient Flow, mean per-layer masked-gradient norm) per epoch."""
    fig, caption = _curves_figure(data, ((M.EGF_1, "EGF_1 (p = 1)"), (M.EGF_2, "EGF_2 (p = 2)")),
                                  "Effective Gradient Flow (mean over maskable layers of the "
                                  "p-norm of the masked gradient, averaged over the epoch)")
    return fig, caption


def _node_groups(graph: Any) -> tuple[dict[Any, int], list[str], str]:
    """Group every node for colouring and per-group selection: by its integer ``layer``
    (neuron graphs), else its ``tensor`` (channel graphs), else its integer ``stage``."""
    nodes = list(graph.nodes(data=True))

    def all_of(attr: str, kind: type) -> bool:
        return bool(nodes) and all(isinstance(d.get(attr), kind)
                                   and not isinstance(d.get(attr), bool) for _, d in nodes)

    if all_of("layer", int):
        values = sorted({d["layer"] for _, d in nodes})
        lo, hi = values[0], values[-1]
        labels = [f"layer {v}" + (" (input)" if v == lo else " (output)" if v == hi else "")
                  for v in values]
        index = {v: i for i, v in enumerate(values)}
        return {n: index[d["layer"]] for n, d in nodes}, labels, "layer"
    for attr, kind in (("tensor", str), ("stage", int)):
        if all_of(attr, kind):
            values = list(dict.fromkeys(d[attr] for _, d in nodes))
            index = {v: i for i, v in enumerate(values)}
            return ({n: index[d[attr]] for n, d in nodes},
                    [f"{attr} {v}" for v in values], attr)
    return {n: 0 for n, _ in nodes}, ["nodes"], "none"


def _readable_subgraph(graph: Any, group: Mapping[Any, int], n_groups: int,
                       max_nodes: int) -> Any:
    """At most ``max_nodes`` nodes: per group, its most connected nodes (stored order on
    ties), so every layer/stage stays in the picture; isolated nodes are left out."""
    degree = dict(graph.degree())
    order = {n: i for i, n in enumerate(graph.nodes)}
    ranked = sorted((n for n in graph.nodes if degree[n] > 0),
                    key=lambda n: (-degree[n], order[n]))
    if n_groups > max_nodes:
        keep = ranked[:max_nodes]
    else:
        quota = max(1, max_nodes // n_groups)
        taken = [0] * n_groups
        keep = []
        for n in ranked:
            if taken[group[n]] < quota:
                taken[group[n]] += 1
                keep.append(n)
    return graph.subgraph(sorted(keep, key=order.__getitem__))


def _single_blas_thread() -> Any:
    """Limit BLAS to one thread: Kamada-Kawai's steps are tiny (at most 2 * 120 variables),
    and BLAS threads spinning on a busy machine made the layout 8x slower (measured on 2
    shared cores). threadpoolctl comes with scikit-learn; without it, nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _kamada_kawai(graph: Any) -> dict:
    """networkx's Kamada-Kawai layout of the undirected graph; unreachable pairs get the
    longest finite distance + 1 instead of networkx's 1e6, so components stay in view."""
    import networkx as nx
    import numpy as np

    und = graph.to_undirected(as_view=True)
    dist = {u: dict(d) for u, d in nx.all_pairs_shortest_path_length(und)}
    far = 1 + max((v for d in dist.values() for v in d.values()), default=0)
    full = {u: {v: dist[u].get(v, far) for v in und} for u in und}
    with _single_blas_thread():
        pos = nx.kamada_kawai_layout(und, dist=full)
    # Turn the long axis horizontal (the figure is wider than tall); nodes in stored order
    # run left to right, so an MLP's inputs sit on the left.
    nodes = list(und)
    xy = np.array([pos[n] for n in nodes], dtype=float)
    xy -= xy.mean(axis=0)
    if len(nodes) > 1:
        _, _, axes = np.linalg.svd(xy, full_matrices=False)
        xy = xy @ axes.T
        if xy[: max(1, len(nodes) // 4), 0].mean() > xy[-max(1, len(nodes) // 4):, 0].mean():
            xy[:, 0] = -xy[:, 0]
    return {n: xy[i] for i, n in enumerate(nodes)}


def wiring_graph_figure(graph_json: Mapping[str, Any], statistics: Mapping[str, Any] | None,
                        max_nodes: int = MAX_LAYOUT_NODES) -> tuple[Any, str]:
    """A trial's stored wiring graph (networkx node-link JSON) drawn with Kamada-Kawai.

    Graphs over ``max_nodes`` nodes are drawn as a readable subset (the most connected
    nodes of every layer/tensor/stage and the edges among them); the caption says how many
    nodes and edges that shows. The caption starts with what was drawn, not the trial."""
    import networkx as nx
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    from snas.core.graphs import graph_from_json

    try:
        graph = graph_from_json(dict(graph_json))
    except (ValueError, TypeError, KeyError, nx.NetworkXError) as exc:
        raise NoData(f"the stored graph cannot be read ({type(exc).__name__})") from None
    if graph.number_of_nodes() == 0:
        raise NoData("the stored graph has no nodes")
    stats = statistics if isinstance(statistics, Mapping) else {}
    level = stats.get("graph_level") or graph.graph.get("level") or "unknown"
    group, group_labels, grouped_by = _node_groups(graph)
    n_nodes, n_edges = graph.number_of_nodes(), graph.number_of_edges()
    reduced = n_nodes > max_nodes
    drawn = (_readable_subgraph(graph, group, len(group_labels), max_nodes) if reduced
             else graph)
    if drawn.number_of_nodes() == 0:
        raise NoData(f"the stored graph has {n_nodes} nodes and no edges")
    pos = _kamada_kawai(drawn)
    fig = _figure(9.5, 6.4)
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_aspect("equal")
    ax.margins(0.06)
    segments = [(pos[u], pos[v]) for u, v in drawn.edges]
    if segments:
        alpha = min(0.7, max(0.06, 60.0 / len(segments) ** 0.75))
        ax.add_collection(LineCollection(segments, colors="0.35", linewidths=0.6, alpha=alpha,
                                         zorder=1))
    palette = _palette(len(group_labels))
    nodes = list(drawn.nodes)
    degree = dict(drawn.degree())
    top_degree = max(degree.values(), default=1) or 1
    ax.scatter([pos[n][0] for n in nodes], [pos[n][1] for n in nodes],
               s=[14 + 50 * degree[n] / top_degree for n in nodes],
               c=[palette[group[n]] for n in nodes], edgecolors="white", linewidths=0.5,
               zorder=2)
    if len(nodes) <= 30:
        for n in nodes:
            ax.annotate(_mpl(n, 24), pos[n], xytext=(0, 7), textcoords="offset points",
                        ha="center", fontsize=7.5)
        if len(segments) <= 30:
            for u, v, d in drawn.edges(data=True):
                if _finite(d.get("density")):
                    mid = (pos[u] + pos[v]) / 2
                    ax.annotate(f"d={d['density']:.2f}", mid, ha="center", fontsize=7,
                                color="0.3")
    shown = [i for i in range(len(group_labels)) if any(group[n] == i for n in nodes)]
    if 1 < len(shown) <= 16:
        ax.legend([Line2D([], [], ls="", marker="o", color=palette[i]) for i in shown],
                  [_mpl(group_labels[i], 32) for i in shown], fontsize=7, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0), frameon=False)
    what = {"neuron": "one node per neuron, one edge per active weight",
            "layer": "one node per layer of neurons, one edge per weight layer",
            "channel": "one node per channel, an edge where any weight between two channels "
                       "is active",
            "dag": "DAG nodes and the edges that survive thresholding",
            "node": "one node per neural-graph node"}.get(str(level), "")
    caption = (f"Graph level {level}" + (f" ({what})" if what else "")
               + f": {n_nodes:,} nodes, {n_edges:,} edges; Kamada-Kawai layout "
               "(networkx) of the undirected graph")
    if reduced:
        by = {"layer": "layer", "tensor": "tensor", "stage": "stage"}.get(grouped_by)
        caption += (f". Readable version: a Kamada-Kawai layout of {n_nodes:,} nodes is slow "
                    "and unreadable, so only the most connected "
                    + (f"nodes of every {by}" if by else "nodes")
                    + f" are drawn ({drawn.number_of_nodes():,} nodes and "
                    f"{drawn.number_of_edges():,} edges among them); the statistics below "
                    "are of the whole graph")
    caption += ". Node size: degree in the drawing"
    if len(shown) > 1:
        caption += f"; colour: {grouped_by}"
    facts = [f"{label} {_num(stats.get(key), spec)}" for key, label, spec in (
        ("log_num_paths", "ln(input-output paths)", ".2f"),
        ("edge_connectivity", "edge connectivity", ".0f"),
        ("mean_path_length", "mean path length", ".2f"),
        ("elongation", "elongation", ".2f")) if _finite(stats.get(key))]
    if facts:
        caption += ". Stored statistics: " + ", ".join(facts)
    return fig, caption + "."


def _best_graph(store: Any, data: ReportData) -> tuple[dict, dict, dict]:
    """(trial, graph, statistics) of the best-ranked trial that has a stored graph."""
    for trial in data.trials:
        if trial.get("has_graph"):
            found = store.graph(data.name, trial["trial_id"])
            if found is not None:
                return trial, found[0], found[1]
    raise NoData("no trial has a stored wiring graph yet (graphs are recorded when a "
                 "trial ends)")


# --------------------------------------------------------------------------------------
# The page


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
        ("ranked by", f"{metric} ({'higher' if data.mode == 'max' else 'lower'} is better; "
                      "trials that trained every epoch first)"),
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
            share = (f"{t[M.ACTIVE_WEIGHTS] / total:.1%}" if _finite(t.get(M.ACTIVE_WEIGHTS))
                     and _finite(total) and total else "-")
            return [label, t["trial_id"], t["status"], t.get("epochs", "-"),
                    _num(t.get(metric)), _num(t.get(M.TEST_ACCURACY)),
                    _int(t.get(M.ACTIVE_WEIGHTS)), share, _num(t.get(M.EGF_2), ".4g")]

        rows = [line("best" + (" (the dense baseline)" if best.get("is_baseline") else ""),
                     best)]
        if base is not None and base is not best:
            rows.append(line("dense baseline", base))
            diff = ["difference", "", "", ""]
            for key in cols:
                a, b = best.get(key), base.get(key)
                if key == M.ACTIVE_WEIGHTS:
                    diff += [f"{a - b:+,.0f}" if _finite(a) and _finite(b) else "-", ""]
                else:
                    diff.append(f"{a - b:+.4f}" if _finite(a) and _finite(b) else "-")
            rows.append(diff)
        elif base is None:
            rows.append(["dense baseline", "(not in this search)"] + [""] * 7)
        parts.append(_table(("", "trial", "status", "epochs", metric, "test_accuracy",
                             "active weights", "of dense", "egf_2"), rows,
                            ("text", "text id", "text")))
        n = max(len(data.layers), len(best.get("density") or []))
        density = _density(best, n)
        realized = best.get(M.REALIZED_DENSITY) if isinstance(
            best.get(M.REALIZED_DENSITY), list) else []
        base_density = _density(base, n) if base else []
        layer_rows = []
        for i in range(n):
            layer = data.layers[i] if i < len(data.layers) else {"name": f"layer {i}",
                                                                 "shape": None}
            shape = layer["shape"]
            size = math.prod(shape) if shape and all(_finite(s) for s in shape) else None
            real = realized[i] if i < len(realized) and _finite(realized[i]) else None
            kept = (round(real * size) if real is not None and size
                    else max(1, round(density[i] * size)) if size and i < len(density)
                    and _finite(density[i]) else None)
            layer_rows.append([layer["name"], "x".join(map(str, shape)) if shape else "-",
                               _int(size), _num(density[i] if i < len(density) else None, ".3f"),
                               _num(real, ".3f"), _int(kept),
                               _num(base_density[i] if i < len(base_density) else None, ".3f")])
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
                     if _finite(value) and _finite(base_value) else "-")
            rows.append([t["rank"], t["trial_id"], t["status"], t.get("epochs", "-"),
                         _num(value), _num(t.get(M.TEST_ACCURACY)), _int(t.get(M.ACTIVE_WEIGHTS)),
                         delta, _num(t.get(M.EGF_2), ".4g"), format_density(t.get("density"))])
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


def _page_html(data: ReportData, figures: Mapping[str, dict[str, Any]], fmt: str,
               generated: str) -> str:
    sections = []
    titles = {**_TITLES, "accuracy": f"Accuracy vs {_COSTS[data.cost][0]}"}
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


# --------------------------------------------------------------------------------------
# Writing the folder


def _prepare_out(out: Path) -> set[str]:
    """Check ``out`` before any work; returns the files a previous report there owns."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; give a folder for the report")
    if not out.exists():
        return set()
    try:
        entries = {p.name for p in out.iterdir()}
    except OSError as exc:
        raise ConfigError(f"cannot read --out folder {str(out)!r}: "
                          f"{exc.strerror or exc}") from None
    if not entries:
        return set()
    if MANIFEST not in entries:
        raise ConfigError(f"--out {str(out)!r} is not empty and holds no snas report "
                          f"({MANIFEST} is missing); give a new or empty folder, or the "
                          "folder of an earlier report to replace it")
    try:
        manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ConfigError(f"--out {str(out)!r} holds a {MANIFEST} that is not a snas report "
                          f"manifest ({MANIFEST_FORMAT}); give a new or empty folder")
    listed = manifest.get("files") if isinstance(manifest.get("files"), list) else []
    # Only names a report can write, whatever the manifest says: never a path elsewhere.
    return {f for f in listed if isinstance(f, str) and f in OWNED_FILES} | {MANIFEST}


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def _render(make: Callable[[], tuple[Any, str]], fmt: str) -> dict[str, Any]:
    """Run one figure function: its image bytes, pixel size and caption, or a note."""
    import matplotlib

    with matplotlib.rc_context(_STYLE):
        try:
            fig, caption = make()
        except NoData as exc:
            return {"note": str(exc)}
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, dpi=DPI, metadata=(
            {"Software": "snas report"} if fmt == "png" else {"Creator": "snas report",
                                                              "Date": None}))
    width, height = (round(v) for v in fig.get_size_inches() * DPI)
    return {"bytes": buffer.getvalue(), "caption": caption, "width": width, "height": height}


def write_report(store: Any, name: str, out: str | os.PathLike, top: int = 10,
                 fmt: str = "png") -> dict[str, Any]:
    """Write the report of search ``name`` into folder ``out``; returns the manifest.

    ``out`` is created if missing. An existing non-empty folder must hold an earlier
    report (its ``snas-report.json``): the files that report listed are replaced or
    removed, nothing else in the folder is touched. Anything else is refused
    (ConfigError) before a file is written. The manifest lists per figure its file or
    the reason it has none.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out).expanduser()
    data = load_report_data(store, name, top)  # an unknown search fails before any write
    previous = _prepare_out(out)
    figures: dict[str, dict[str, Any]] = {}
    graph_trial: list[dict] = []

    def graph() -> tuple[Any, str]:
        trial, graph_json, stats = _best_graph(store, data)
        graph_trial.append(trial)
        fig, caption = wiring_graph_figure(graph_json, stats)
        best = data.scored[0]["trial_id"] if data.scored else None
        who = f"Trial {trial['trial_id']}" + (
            f" (rank {trial['rank']})" if trial.get("rank") else " (unranked)")
        if best is not None and trial["trial_id"] != best:
            who += f"; the best trial, {best}, has no stored graph"
        elif best is not None:
            who += ", the best trial"
        return fig, f"{who}. {caption}"

    makers = {"accuracy": lambda: accuracy_figure(data),
              "density_heatmap": lambda: density_heatmap_figure(data),
              "learning_curves": lambda: learning_curves_figure(data),
              "egf_curves": lambda: egf_figure(data),
              "wiring_graph": graph}
    for figure_name in FIGURES:
        figures[figure_name] = _render(makers[figure_name], fmt)
        if "bytes" in figures[figure_name]:
            figures[figure_name]["file"] = f"{figure_name}.{fmt}"
    generated = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    page = _page_html(data, figures, fmt, generated)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out folder {str(out)!r}: "
                          f"{exc.strerror or exc}") from None
    written = [f["file"] for f in figures.values() if f.get("file")] + [PAGE]
    for stale in sorted(previous - set(written) - {MANIFEST}):
        (out / stale).unlink(missing_ok=True)
    for fig in figures.values():
        if fig.get("file"):
            _write_file(out / fig["file"], fig["bytes"])
    _write_file(out / PAGE, page.encode("utf-8"))
    manifest = {
        "format": MANIFEST_FORMAT, "search": name, "generated_at": generated, "top": top,
        "image_format": fmt, "files": [*written, MANIFEST],
        "figures": {k: {"file": f.get("file"), "caption": f.get("caption"),
                        "note": f.get("note")} for k, f in figures.items()},
        "graph_trial": graph_trial[0]["trial_id"] if graph_trial else None,
    }
    _write_file(out / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return manifest


# --------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``snas report`` flags."""
    from snas.commands._common import STORE_HELP

    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="folder for index.html, the figures and snas-report.json; "
                        "created if missing. A non-empty folder must hold an earlier snas "
                        "report, whose files are replaced (nothing else there is touched)")
    parser.add_argument("--top", type=int, default=10, help="how many of the best trials the "
                        "heatmap, the highlighted curves and the table show (default 10)")
    parser.add_argument("--format", choices=FORMATS, default="png",
                        help="image format of the figures (default png)")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def run(args: argparse.Namespace) -> int:
    """``snas report``: write the report and print where it is, one line."""
    from snas.commands._common import open_store

    store = open_store(args.store)
    try:
        manifest = write_report(store, args.name, args.out, args.top, args.format)
    finally:
        store.close()
    drawn = [k for k, f in manifest["figures"].items() if f["file"]]
    missing = [k for k, f in manifest["figures"].items() if not f["file"]]
    print(f"snas report {args.name}: wrote {Path(args.out) / PAGE} with {len(drawn)} "
          f"figure(s)" + (f"; no data for {', '.join(missing)}" if missing else ""))
    return 0
