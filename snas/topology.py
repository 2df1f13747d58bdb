"""Topology of trained sparse networks: NNSTD between masks, SET mask traces, and the RBF
similarity of wiring-graph statistics; the ``snas topology`` command.

**NNSTD** (Neural Network Sparse Topology Distance, Liu et al. 2020, Algorithm 1; see
docs/definitions.md) compares two same-shape sparse MLPs layer by layer, from their masks
only. For every pair of output neurons (one per network) the normalised edit distance of
their input-neuron sets is NED = |A xor B| / |A or B| (0 when both sets are empty). The
Hungarian method (``scipy.optimize.linear_sum_assignment``) matches the second network's
neurons to the first's at minimum total NED; the layer distance is that minimum divided by
the number of output neurons; the second network's next layer is then read with its input
side permuted by the matching (greedy: a layer's matching is fixed before the next layer is
looked at); the network distance is the mean over layers. 0 = the same topology up to a
relabelling of hidden neurons, 1 = no neuron shares an input with the neuron it is matched
to. Like Algorithm 1 and the authors' code, every layer is matched, the output layer too;
the network inputs are labelled (never permuted). The NED matrix of a layer comes from two
matrix products of the 0/1 masks (|A and B| = A @ B.T; |A or B| = |A| + |B| - |A and B|).
When the identity matching costs as little as the Hungarian one (to rounding), the identity
is kept, so a network is always at distance 0 from itself, even with neurons whose input
sets are equal (dead neurons, dense layers).

**Skip connections.** The MLP cells of this project add their input to their output
(``act(BN(Linear(...)) + x)``), so the stem's output neurons, every cell's output neurons
and the head's inputs are one set of neurons: the residual stream. Relabelling a stream
neuron relabels it at both ends of every skip, so a valid relabelling uses *one*
permutation for the whole stream. NNSTD here therefore works on *neuron groups*: each
maskable layer reads one group and writes one group; the first layer that writes a group
chooses its matching with the Hungarian method, and every later layer that writes the same
group (the last layer of each cell) is scored with that matching kept (mean NED of the
matched pairs, no new assignment). Neurons inside a cell are a group of their own. Without
skips (``model.skip: false``) every layer writes a new group, which is Algorithm 1 as
published; ``--chain`` forces that reading on a skip model too (it then ignores the skip
edges and can match two networks that compute differently).

**Ties.** A layer whose optimum is not unique (e.g. a first layer where every pair has NED
1, or two neurons with equal input sets) has several equally good matchings; the greedy
procedure keeps one (the identity when it is optimal, else scipy's), and later layers can
depend on that choice. NNSTD is then symmetric and invariant to relabelling hidden neurons
only up to such ties; with random sparse masks of a few inputs per neuron they are rare.

**SET traces.** Trials of kernels that rewire masks between epochs keep their masks per
epoch in the checkpoint (:mod:`trainables.training`); ``--trace TRIAL`` prints NNSTD of the
mask after each epoch to the initial mask (epoch 0) and the same mean NED without matching.

**Graph similarity** (Janik & Nowak 2021, fig. 4): every trial's wiring-graph statistics
(stored by the search) become a feature vector (:data:`GRAPH_FEATURES`, those finite in
every compared trial and not constant across them), each feature is standardised across
the trials (zero mean, unit population variance) and the similarity of trials x and y is
the RBF kernel exp(-gamma ||x - y||^2), gamma = 1 / number of features by default (the
usual RBF default, as in scikit-learn).

numpy and scipy only at import; torch (checkpoints) is imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snas.core import metrics as M
from snas.core.errors import ConfigError, SearchError

HELP = "topology distances (NNSTD) between trials' masks, SET traces, graph similarity"
DESCRIPTION = (
    "Compare the topologies of a search's trials. Default: the NNSTD distance matrix "
    "(Liu et al. 2020) between the masks of the top K trials, read from their checkpoints: "
    "per layer, output neurons of the two networks are matched (Hungarian method) by the "
    "normalised edit distance of their input sets; 0 = the same topology up to relabelling "
    "hidden neurons, 1 = disjoint. Skip connections tie the residual stream's neurons to "
    "one matching (--chain ignores them). --trace TRIAL: NNSTD of a SET trial's mask after "
    "every epoch to its initial mask. --graph-similarity: RBF similarity (Janik & Nowak "
    "2021, fig. 4) of the trials' standardised wiring-graph statistics. MLP searches only "
    "for NNSTD and traces.")

INPUT_GROUP = "input"
OUTPUT_GROUP = "output"
STREAM_GROUP = "stream"
DEFAULT_TOP = 5
_TIE_TOLERANCE = 1e-12

#: Wiring-graph statistics used as features, in order: Janik & Nowak's table 2 (paths,
#: communicability, connectivity, degree, elongation) and the size/density rows of their
#: table 1 (the number of parameters left out, as in their fig. 4). Per-stage lists
#: (``nodes_per_stage``, ``edge_density_per_stage``) become one feature per stage.
GRAPH_FEATURES = ("log_num_paths", "mean_path_length", "max_path_length",
                  "log_communicability", "edge_connectivity", "mean_degree", "elongation",
                  "nodes", "live_hidden_neurons", "density", "edge_density",
                  "nodes_per_stage", "edge_density_per_stage")

Group = tuple[str, str]  # (group the layer reads, group the layer writes)


# --------------------------------------------------------------------------------------
# NNSTD


def ned_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise normalised edit distance between the rows of two 0/1 masks.

    ``a`` (n x m) and ``b`` (k x m): row i is output neuron i's set of input neurons.
    Returns the n x k matrix NED[i, j] = |a_i xor b_j| / |a_i or b_j|, 0 where both sets
    are empty. Computed with one matrix product (no Python loop over neurons).
    """
    a, b = _as_mask(a, "a"), _as_mask(b, "b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"masks must have the same number of inputs, got {a.shape} and "
                         f"{b.shape}")
    # float32 products are exact for counts below 2**24
    dtype = np.float32 if a.shape[1] < 2**24 else np.float64
    inter = (a.astype(dtype) @ b.astype(dtype).T).astype(np.int64)
    size_a = a.sum(axis=1, dtype=np.int64)[:, None]
    size_b = b.sum(axis=1, dtype=np.int64)[None, :]
    union = size_a + size_b - inter
    xor = union - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, xor / np.maximum(union, 1), 0.0)


def _paired_ned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """NED between row i of ``a`` and row i of ``b`` for every i."""
    inter = np.logical_and(a, b).sum(axis=1)
    union = np.logical_or(a, b).sum(axis=1)
    return np.where(union > 0, (union - inter) / np.maximum(union, 1), 0.0)


def _as_mask(value: Any, what: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D mask (outputs x inputs), got shape "
                         f"{arr.shape}")
    return arr.astype(bool, copy=False)


def match_neurons(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Minimum-cost matching of a square cost matrix: ``(assignment, total cost)``.

    ``assignment[i]`` is the column matched to row i (Hungarian method). When the identity
    is optimal too (its cost equals the minimum to rounding), the identity is returned.
    """
    from scipy.optimize import linear_sum_assignment

    cost = np.asarray(cost, dtype=float)
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be a square matrix, got shape {cost.shape}")
    n = cost.shape[0]
    identity_cost = float(np.trace(cost))
    rows, cols = linear_sum_assignment(cost)
    best = float(cost[rows, cols].sum())
    if identity_cost <= best + _TIE_TOLERANCE * max(n, 1):
        return np.arange(n), identity_cost
    return cols, best


@dataclass(frozen=True)
class NNSTDResult:
    """NNSTD of two networks: ``distance`` (mean of ``layer_distances``), one distance per
    maskable layer, and per neuron group the matching used (``assignments[g][i]`` = the
    second network's neuron matched to the first network's neuron i)."""

    distance: float
    layer_distances: tuple[float, ...]
    assignments: Mapping[str, np.ndarray]


def chain_groups(n_layers: int) -> list[Group]:
    """Neuron groups of a plain chain of ``n_layers`` layers (Algorithm 1 as published):
    layer i reads what layer i - 1 writes; the last layer writes the outputs."""
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        raise ValueError(f"n_layers must be an int >= 1, got {n_layers!r}")
    names = [INPUT_GROUP, *(f"hidden{i}" for i in range(n_layers - 1)), OUTPUT_GROUP]
    return [(names[i], names[i + 1]) for i in range(n_layers)]


def mlp_groups(hidden_layers: int, skip: bool) -> list[Group]:
    """Neuron groups of the project's MLP (:mod:`trainables.models.mlp`), in mask order.

    Layers: stem, the hidden layers in cells of two (a last cell of one when
    ``hidden_layers - 1`` is odd), head. With ``skip`` the stem, the last layer of every
    cell and the head's input share the group ``"stream"`` (the residual stream); a cell's
    first layer of two writes a group of its own. Without ``skip`` it is a plain chain.
    """
    if isinstance(hidden_layers, bool) or not isinstance(hidden_layers, int) or hidden_layers < 1:
        raise ValueError(f"hidden_layers must be an int >= 1, got {hidden_layers!r}")
    if not skip:
        return chain_groups(hidden_layers + 1)
    n_hidden = hidden_layers - 1
    cells = [2] * (n_hidden // 2) + [1] * (n_hidden % 2)
    groups: list[Group] = [(INPUT_GROUP, STREAM_GROUP)]
    for c, size in enumerate(cells):
        if size == 2:
            inner = f"cell{c}"
            groups += [(STREAM_GROUP, inner), (inner, STREAM_GROUP)]
        else:
            groups.append((STREAM_GROUP, STREAM_GROUP))
    groups.append((STREAM_GROUP, OUTPUT_GROUP))
    return groups


def has_skips(groups: Sequence[Group]) -> bool:
    """Whether some layer writes a group that an earlier layer wrote (a skip ties them)."""
    written: set[str] = set()
    for _, gout in groups:
        if gout in written:
            return True
        written.add(gout)
    return False


def _check_groups(groups: Sequence[Group], masks: Sequence[np.ndarray]) -> None:
    if len(groups) != len(masks):
        raise ValueError(f"groups must have one entry per mask ({len(masks)}), got "
                         f"{len(groups)}")
    sizes: dict[str, int] = {}
    for i, ((gin, gout), mask) in enumerate(zip(groups, masks, strict=True)):
        if gin != INPUT_GROUP and gin not in sizes:
            raise ValueError(f"layer {i} reads group {gin!r} before any layer writes it")
        for group, size in ((gin, mask.shape[1]), (gout, mask.shape[0])):
            if sizes.setdefault(group, size) != size:
                raise ValueError(f"layer {i}: group {group!r} has {sizes[group]} neurons "
                                 f"elsewhere, {size} here")


def nnstd(masks_a: Sequence[Any], masks_b: Sequence[Any],
          groups: Sequence[Group] | None = None) -> NNSTDResult:
    """NNSTD between two networks given as lists of 2-D masks (outputs x inputs), in
    forward order; ``groups`` (default: a plain chain) says which neuron group each layer
    reads and writes (:func:`mlp_groups`). See the module docstring for the procedure."""
    a_list = [_as_mask(m, f"masks_a[{i}]") for i, m in enumerate(masks_a)]
    b_list = [_as_mask(m, f"masks_b[{i}]") for i, m in enumerate(masks_b)]
    if not a_list or len(a_list) != len(b_list):
        raise ValueError(f"both networks need the same number (>= 1) of masks, got "
                         f"{len(a_list)} and {len(b_list)}")
    for i, (a, b) in enumerate(zip(a_list, b_list, strict=True)):
        if a.shape != b.shape:
            raise ValueError(f"layer {i} has shape {a.shape} in one network and {b.shape} "
                             "in the other; NNSTD compares networks of the same shape")
    groups = list(groups) if groups is not None else chain_groups(len(a_list))
    _check_groups(groups, a_list)
    assignment: dict[str, np.ndarray] = {INPUT_GROUP: np.arange(a_list[0].shape[1])}
    distances = []
    for (gin, gout), a, b in zip(groups, a_list, b_list, strict=True):
        b = b[:, assignment[gin]]  # column i of b: the neuron matched to a's input i
        n_out = a.shape[0]
        if gout in assignment:  # written before (a skip): keep that matching
            distances.append(float(_paired_ned(a, b[assignment[gout]]).sum()) / n_out)
        else:
            matched, cost = match_neurons(ned_matrix(a, b))
            assignment[gout] = matched
            distances.append(cost / n_out)
    return NNSTDResult(float(np.mean(distances)), tuple(distances), assignment)


def unmatched_distance(masks_a: Sequence[Any], masks_b: Sequence[Any]) -> float:
    """Mean over layers of the mean NED between equal-index neurons (no matching): how much
    the masks changed in place, e.g. between epochs of one SET trial."""
    values = [float(_paired_ned(_as_mask(a, "a"), _as_mask(b, "b")).mean())
              for a, b in zip(masks_a, masks_b, strict=True)]
    return float(np.mean(values))


def nnstd_matrix(networks: Sequence[Sequence[Any]], groups: Sequence[Group] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(distances, layer_distances)`` between every pair of networks: an n x n matrix
    (zero diagonal) and an n x n x layers array. Each pair is computed once (first network
    of the pair = the one listed first) and mirrored."""
    n = len(networks)
    n_layers = len(networks[0]) if n else 0
    dist = np.zeros((n, n))
    layers = np.zeros((n, n, n_layers))
    for i in range(n):
        for j in range(i + 1, n):
            result = nnstd(networks[i], networks[j], groups)
            dist[i, j] = dist[j, i] = result.distance
            layers[i, j] = layers[j, i] = result.layer_distances
    return dist, layers


def trace_distances(masks_per_epoch: Sequence[Sequence[Any]], epochs: Sequence[int],
                    groups: Sequence[Group] | None = None) -> list[dict[str, Any]]:
    """For every traced epoch t: NNSTD(mask at the first traced epoch, mask at t), its
    per-layer distances and the unmatched distance."""
    if not masks_per_epoch:
        return []
    first = masks_per_epoch[0]
    rows = []
    for epoch, masks in zip(epochs, masks_per_epoch, strict=True):
        result = nnstd(first, masks, groups)
        rows.append({"epoch": int(epoch), "nnstd": result.distance,
                     "unmatched": unmatched_distance(first, masks),
                     "layer_distances": list(result.layer_distances)})
    return rows


# --------------------------------------------------------------------------------------
# Graph-statistic similarity


def _finite_number(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def graph_feature_values(statistics: Mapping[str, Any]) -> dict[str, float]:
    """The :data:`GRAPH_FEATURES` present in one trial's stored graph statistics, as
    numbers (list-valued ones as ``name[i]``); ``live_hidden_neurons`` comes from an MLP's
    layer summary (hidden neurons minus dead ones)."""
    out: dict[str, float] = {}
    summary = statistics.get("layer_summary")
    for name in GRAPH_FEATURES:
        value = statistics.get(name)
        if name == "live_hidden_neurons" and isinstance(summary, Mapping):
            hidden, dead = summary.get("hidden_neurons"), summary.get("dead_neurons")
            if isinstance(hidden, list) and isinstance(dead, list):
                value = sum(hidden) - sum(dead)
        if isinstance(value, list):
            for i, v in enumerate(value):
                if _finite_number(v):
                    out[f"{name}[{i}]"] = float(v)
        elif _finite_number(value):
            out[name] = float(value)
    return out


def graph_feature_matrix(statistics: Sequence[Mapping[str, Any]]
                         ) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """``(X, features, dropped)``: X has one row per trial and one standardised column per
    feature that is finite in every trial and not constant across them (zero mean, unit
    population variance); ``dropped`` says why each other feature was left out."""
    values = [graph_feature_values(s) for s in statistics]
    seen = [name for name in dict.fromkeys(k for v in values for k in v)]
    used, dropped, columns = [], {}, []
    for name in seen:
        if not all(name in v for v in values):
            dropped[name] = "missing or not finite in some trials"
            continue
        column = np.array([v[name] for v in values])
        if np.ptp(column) == 0:
            dropped[name] = "the same in every trial"
            continue
        used.append(name)
        columns.append((column - column.mean()) / column.std())
    x = np.column_stack(columns) if columns else np.zeros((len(values), 0))
    return x, used, dropped


def rbf_similarity(x: np.ndarray, gamma: float | None = None) -> tuple[np.ndarray, float]:
    """``(K, gamma)``: K[i, j] = exp(-gamma ||x_i - x_j||^2) over the rows of ``x``;
    ``gamma`` defaults to 1 / number of columns."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"x must be a 2-D array with at least one column, got {x.shape}")
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    if not (gamma > 0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be a finite number > 0, got {gamma!r}")
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    return np.exp(-gamma * sq), float(gamma)


# --------------------------------------------------------------------------------------
# Command line


def _top(text: str) -> int | None:
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2 or 'all', got {text!r}"
                                         ) from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer >= 2 or 'all', got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snas topology``."""
    from snas.commands._common import STORE_HELP

    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--top", type=_top, default=DEFAULT_TOP, metavar="K",
                        help=f"compare the K best trials, ranked as in `snas show` (default "
                        f"{DEFAULT_TOP}; 'all' for every trial with a result); NNSTD needs "
                        "their checkpoints, --graph-similarity their stored wiring graphs")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--trace", metavar="TRIAL_ID", help="print NNSTD of this trial's mask "
                      "after every epoch to its initial mask (epoch 0), and the mean NED "
                      "without matching; for trials whose kernel rewires masks between "
                      "epochs (set)")
    mode.add_argument("--graph-similarity", action="store_true", help="print the RBF "
                      "similarity exp(-gamma ||x - y||^2) of the trials' wiring-graph "
                      "statistics instead of NNSTD (Janik & Nowak fig. 4): "
                      f"{', '.join(GRAPH_FEATURES)}, those known for every compared trial "
                      "and not all equal, each standardised across the trials")
    parser.add_argument("--gamma", type=float, help="RBF gamma for --graph-similarity "
                        "(default 1 / number of features)")
    parser.add_argument("--chain", action="store_true", help="NNSTD as a plain chain of "
                        "layers, ignoring skip connections (default: layers joined by a "
                        "skip share one neuron matching)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="output format (default table)")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def _model_groups(record: Mapping[str, Any], n_masks: int, chain: bool) -> list[Group]:
    model = (record.get("space") or {}).get("model") or {}
    name = model.get("name", "mlp")
    if name != "mlp":
        raise ConfigError(f"NNSTD compares MLP masks (model.name mlp); search "
                          f"{record['name']!r} uses model {name!r} (--graph-similarity works "
                          "for every model)")
    if chain:
        return chain_groups(n_masks)
    groups = mlp_groups(int(model.get("hidden_layers", n_masks - 1)),
                        bool(model.get("skip", True)))
    if len(groups) != n_masks:
        raise ConfigError(f"search {record['name']!r}: the checkpoint has {n_masks} masks, "
                          f"its model config describes {len(groups)} layers")
    return groups


def _checkpoint_dir(trial: Mapping[str, Any]) -> Path | None:
    path = trial.get("checkpoint_path")
    if not path:
        return None
    from trainables.tune_trainable import CHECKPOINT_FILE

    return Path(path) if (Path(path) / CHECKPOINT_FILE).is_file() else None


def _trial_rows(trials: Sequence[Mapping[str, Any]], ranks: Sequence[int], metric: str
                ) -> list[dict[str, Any]]:
    return [{"rank": r, "trial_id": t["trial_id"], "status": t["status"],
             "is_baseline": bool(t.get("is_baseline")), metric: t.get(metric),
             M.ACTIVE_WEIGHTS: t.get(M.ACTIVE_WEIGHTS)} for r, t in zip(ranks, trials)]


def _matrix_table(title: str, rows: list[dict[str, Any]], metric: str, matrix: np.ndarray,
                  notes: Sequence[str]) -> str:
    lines = [title, *notes]
    labels = [r["trial_id"] + (" (dense)" if r["is_baseline"] else "") for r in rows]
    width = max(len("trial"), *(len(label) for label in labels)) + 2
    head = f"{'rank':>4}  {'trial':<{width}}{metric:>14}{'active':>9}  " + "".join(
        f"{'#' + str(r['rank']):>8}" for r in rows)
    lines.append(head)
    for row, label, values in zip(rows, labels, matrix, strict=True):
        active = row[M.ACTIVE_WEIGHTS]
        value = row[metric]
        lines.append(f"{row['rank']:>4}  {label:<{width}}"
                     f"{(format(value, '.4f') if _finite_number(value) else '-'):>14}"
                     f"{(format(active, ',') if _finite_number(active) else '-'):>9}  "
                     + "".join(f"{v:>8.3f}" for v in values))
    return "\n".join(lines)


def _matrix_csv(rows: list[dict[str, Any]], matrix: np.ndarray) -> str:
    ids = [r["trial_id"] for r in rows]
    lines = ["trial_id," + ",".join(ids)]
    lines += [f"{i}," + ",".join(repr(float(v)) for v in values)
              for i, values in zip(ids, matrix, strict=True)]
    return "\n".join(lines) + "\n"


def _select(view: Any, top: int | None, usable: Any, what: str
            ) -> tuple[list[dict], list[int], str, int]:
    """The best ``top`` trials of the search's :class:`~snas.view.SearchView` for which
    ``usable(trial)`` holds, their ranks, the metric and how many better-ranked trials were
    skipped."""
    name, metric = view.name, view.metric
    chosen, ranks, skipped = [], [], 0
    for rank, t in enumerate(view.scored, 1):
        if top is not None and len(chosen) == top:
            break
        if usable(t):
            chosen.append(t)
            ranks.append(rank)
        else:
            skipped += 1
    if len(chosen) < 2:
        raise SearchError(f"search {name!r} has {len(chosen)} trial(s) with {what}; "
                          "comparing topologies needs at least 2")
    return chosen, ranks, metric, skipped


def _run_nnstd(args: argparse.Namespace, view: Any) -> str:
    from trainables.tune_trainable import masks_from_checkpoint

    record = view.record
    chosen, ranks, metric, skipped = _select(view, args.top,
                                             lambda t: _checkpoint_dir(t) is not None,
                                             "a checkpoint")
    names, networks = None, []
    for t in chosen:
        layer_names, masks = masks_from_checkpoint(str(_checkpoint_dir(t)))
        names = names or layer_names
        networks.append(masks)
    if any(m.ndim != 2 for m in networks[0]):
        raise ConfigError(f"NNSTD compares MLP masks; search {args.name!r} has masks of "
                          f"{max(m.ndim for m in networks[0])} dimensions")
    groups = _model_groups(record, len(networks[0]), args.chain)
    matrix, layers = nnstd_matrix(networks, groups)
    rows = _trial_rows(chosen, ranks, metric)
    structure = "skip" if has_skips(groups) else "chain"
    if args.format == "json":
        return json.dumps({"search": args.name, "measure": "nnstd", "metric": metric,
                           "structure": structure, "groups": [list(g) for g in groups],
                           "layers": names, "trials": rows, "matrix": matrix.tolist(),
                           "layer_distances": layers.tolist()}, indent=2, default=float)
    if args.format == "csv":
        return _matrix_csv(rows, matrix)
    notes = [f"layers: {', '.join(names)}",
             ("skip connections: the residual stream's neurons share one matching"
              if structure == "skip" else "plain chain of layers (Algorithm 1)")]
    if skipped:
        notes.append(f"{skipped} better-ranked trial(s) without a checkpoint left out")
    return _matrix_table(f"search {args.name}: NNSTD between the masks of the top "
                         f"{len(rows)} trials (0 = same topology up to relabelling hidden "
                         "neurons, 1 = disjoint)", rows, metric, matrix, notes)


def _run_similarity(args: argparse.Namespace, store: Any, view: Any) -> str:
    graphs: dict[str, dict] = {}

    def has_graph(t: Mapping[str, Any]) -> bool:
        if not t.get("has_graph"):
            return False
        stored = store.graph(args.name, t["trial_id"])
        if stored is None:
            return False
        graphs[t["trial_id"]] = stored[1]
        return True

    chosen, ranks, metric, skipped = _select(view, args.top, has_graph,
                                             "a stored wiring graph")
    x, features, dropped = graph_feature_matrix([graphs[t["trial_id"]] for t in chosen])
    if not features:
        raise SearchError(f"search {args.name!r}: no graph statistic is finite in every "
                          f"compared trial and different between them "
                          f"({len(dropped)} left out); nothing to compare")
    try:
        sim, gamma = rbf_similarity(x, args.gamma)
    except ValueError:
        raise ConfigError(f"--gamma must be a finite number > 0, got {args.gamma!r}") from None
    rows = _trial_rows(chosen, ranks, metric)
    if args.format == "json":
        return json.dumps({"search": args.name, "measure": "rbf_graph_similarity",
                           "metric": metric, "gamma": gamma, "features": features,
                           "dropped_features": dropped, "trials": rows,
                           "standardized_features": x.tolist(), "matrix": sim.tolist()},
                          indent=2, default=float)
    if args.format == "csv":
        return _matrix_csv(rows, sim)
    notes = [f"features (standardised across these trials): {', '.join(features)}; "
             f"gamma {gamma:.4g}"]
    if dropped:
        notes.append("left out: " + "; ".join(f"{k} ({v})" for k, v in dropped.items()))
    if skipped:
        notes.append(f"{skipped} better-ranked trial(s) without a wiring graph left out")
    return _matrix_table(f"search {args.name}: RBF similarity exp(-gamma ||x - y||^2) of "
                         f"wiring-graph statistics, top {len(rows)} trials (1 = same "
                         "statistics)", rows, metric, sim, notes)


def _run_trace(args: argparse.Namespace, view: Any) -> str:
    from trainables.checkpoint import load_state
    from trainables.training import unpack_mask_trace

    record = view.record
    trials = {t["trial_id"]: t for t in view.trials}
    trial = trials.get(args.trace)
    if trial is None:
        shown = ", ".join(list(trials)[:10]) + (" ..." if len(trials) > 10 else "")
        raise ConfigError(f"--trace: no trial {args.trace!r} in search {args.name!r}; its "
                          f"trials: {shown or 'none'}")
    directory = _checkpoint_dir(trial)
    if directory is None:
        raise SearchError(f"trial {args.trace!r} of search {args.name!r} has no checkpoint "
                          "to read its masks from")
    state = load_state(directory)
    if not state.get("mask_trace"):
        kernel = ((record.get("space") or {}).get("kernel") or {}).get("name", "?")
        raise SearchError(f"trial {args.trace!r} has no mask trace: its kernel {kernel!r} "
                          "keeps its masks between epochs (traces are kept for kernels "
                          "that rewire, e.g. set)")
    names, epochs, masks = unpack_mask_trace(state["mask_trace"])
    groups = _model_groups(record, len(names), args.chain)
    rows = trace_distances(masks, epochs, groups)
    if args.format == "json":
        return json.dumps({"search": args.name, "trial_id": args.trace,
                           "measure": "nnstd_to_first_epoch", "layers": names,
                           "epochs": rows}, indent=2, default=float)
    if args.format == "csv":
        header = "epoch,nnstd,unmatched," + ",".join(f"nnstd_{n}" for n in names)
        return "\n".join([header] + [
            f"{r['epoch']},{r['nnstd']!r},{r['unmatched']!r},"
            + ",".join(repr(v) for v in r["layer_distances"]) for r in rows]) + "\n"
    lines = [f"trial {args.trace} of search {args.name}: NNSTD of the mask after each epoch "
             f"to the mask of epoch {epochs[0]} (unmatched: mean NED of same-index neurons, "
             "no matching)",
             f"{'epoch':>5}{'nnstd':>9}{'unmatched':>11}  per layer"]
    for r in rows:
        lines.append(f"{r['epoch']:>5}{r['nnstd']:>9.4f}{r['unmatched']:>11.4f}  "
                     + " ".join(f"{v:.3f}" for v in r["layer_distances"]))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """``snas topology``: print the NNSTD matrix, a SET trace or the graph similarity."""
    from snas.commands._common import open_store
    from snas.view import SearchView

    if args.gamma is not None and not args.graph_similarity:
        raise ConfigError("--gamma applies to --graph-similarity only")
    store = open_store(args.store)
    view = SearchView.load(store, args.name)
    if args.trace is not None:
        text = _run_trace(args, view)
    elif args.graph_similarity:
        text = _run_similarity(args, store, view)
    else:
        text = _run_nnstd(args, view)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
