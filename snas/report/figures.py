"""The figures of ``snas report``: matplotlib on the Agg canvas, one function per figure.

Each figure function takes the :class:`~snas.report.data.ReportData` (the wiring graph:
the stored graph and its statistics) and returns ``(matplotlib Figure, caption)``, or
raises :class:`NoData` with the reason it has nothing to draw (the page shows that reason
instead of the image). :func:`render` runs one in the report's style and returns the image
bytes. Store text drawn on a figure has ``$`` escaped so it is never read as mathtext.

matplotlib, networkx and numpy load inside the functions (``snas --help`` imports this
module).
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from snas.core import metrics as M
from snas.report.data import COSTS, ReportData, finite, format_number, layer_densities

FORMATS = ("png", "svg")
#: Figure names in page order; the image of figure ``f`` is ``f.png`` (or ``f.svg``).
FIGURES = ("accuracy", "density_heatmap", "learning_curves", "egf_curves", "wiring_graph")
#: Kamada-Kawai is O(n^2) per step: graphs with more nodes are drawn as a readable subset.
MAX_LAYOUT_NODES = 120
DPI = 110
_STYLE = {"font.size": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
          "axes.spines.right": False, "svg.fonttype": "path", "svg.hashsalt": "snas-report",
          "figure.dpi": DPI}
_BASELINE_COLOR = "#9a6700"


class NoData(Exception):  # noqa: N818 - a figure's outcome, not an error
    """A figure has nothing to draw; the message says why (it goes on the page)."""


def _mpl(text: Any, limit: int = 40) -> str:
    """Store text as matplotlib shows it literally: ``$`` would start mathtext."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text.replace("$", r"\$")


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
    cost_label, total_key, unit = COSTS[cost]
    panels = [metric] + ([M.TEST_ACCURACY] if metric != M.TEST_ACCURACY else [])
    have = {key: [t for t in trials if finite(t.get(key)) and finite(t.get(cost))]
            for key in panels}
    if not have[metric]:
        raise NoData(f"no trial has reported {metric} and {cost_label} yet")
    front = data.front
    front_ids = [t["trial_id"] for t in front]
    xs = [float(t[cost]) for key in panels for t in have[key]]
    log_x = min(xs) > 0 and max(xs) / min(xs) >= 20
    total = next((t.get(total_key) for t in trials if finite(t.get(total_key))), None)
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
        on_front = [by_id[i] for i in front_ids if finite(by_id[i].get(key))]
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
        if base and finite(base.get(key)):
            ax.axhline(base[key], color=_BASELINE_COLOR, ls="--", lw=1, zorder=1)
            if finite(base.get(cost)):
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
        if finite(total) and total > 0:
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
    n = max(len(data.layers), *(len(layer_densities(t, len(data.layers))) for t in rows))
    names = [data.layers[i]["name"] if i < len(data.layers) else f"layer {i}"
             for i in range(n)]
    matrix = np.full((len(rows), n), np.nan)
    for r, t in enumerate(rows):
        d = layer_densities(t, n)
        matrix[r, :len(d)] = d
    width = min(18.0, 3.2 + 0.55 * n)
    fig = _figure(width, 1.6 + 0.3 * len(rows) + 0.08 * min(40, max(map(len, names))))
    ax = fig.subplots()
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto",
                      interpolation="nearest")
    ax.grid(False)
    labels = [f"{t['rank']}. {_mpl(t['trial_id'], 24)}"
              + (" (dense)" if t.get("is_baseline") else "")
              + f"  {format_number(t.get(data.metric), '.3f')}" for t in rows]
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
        if not any(finite(y) for _, y in pts):
            return None
        return [x for x, _ in pts], [y if finite(y) else np.nan for _, y in pts]

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
                if finite(d.get("density")):
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
    facts = [f"{label} {format_number(stats.get(key), spec)}" for key, label, spec in (
        ("log_num_paths", "ln(input-output paths)", ".2f"),
        ("edge_connectivity", "edge connectivity", ".0f"),
        ("mean_path_length", "mean path length", ".2f"),
        ("elongation", "elongation", ".2f")) if finite(stats.get(key))]
    if facts:
        caption += ". Stored statistics: " + ", ".join(facts)
    return fig, caption + "."


def best_graph(store: Any, data: ReportData) -> tuple[dict, dict, dict]:
    """(trial, graph, statistics) of the best-ranked trial that has a stored graph."""
    for trial in data.trials:
        if trial.get("has_graph"):
            found = store.graph(data.name, trial["trial_id"])
            if found is not None:
                return trial, found[0], found[1]
    raise NoData("no trial has a stored wiring graph yet (graphs are recorded when a "
                 "trial ends)")


def render(make: Callable[[], tuple[Any, str]], fmt: str) -> dict[str, Any]:
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
