"""The ``snas topology NAME`` command: the NNSTD matrix of the top trials' masks (read from
their checkpoints), a SET trial's trace (``--trace``) or the RBF similarity of the trials'
wiring-graph statistics (``--graph-similarity``), as a table, JSON or CSV.

Trials are chosen and ranked as in ``snas show`` (one :class:`~snas.view.SearchView`).
numpy only at import; torch (checkpoints) is imported inside :func:`run`'s helpers.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from snas.core import metrics as M
from snas.core.errors import ConfigError, SearchError
from snas.topology.nnstd import Group, chain_groups, has_skips, mlp_groups, nnstd_matrix
from snas.topology.similarity import (
    GRAPH_FEATURES,
    finite_number,
    graph_feature_matrix,
    rbf_similarity,
)
from snas.topology.trace import trace_distances

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

DEFAULT_TOP = 5


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
                     f"{(format(value, '.4f') if finite_number(value) else '-'):>14}"
                     f"{(format(active, ',') if finite_number(active) else '-'):>9}  "
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
    from snas.commands._common import open_reader
    from snas.view import SearchView

    if args.gamma is not None and not args.graph_similarity:
        raise ConfigError("--gamma applies to --graph-similarity only")
    store = open_reader(args.store)
    view = SearchView.load(store, args.name)
    if args.trace is not None:
        text = _run_trace(args, view)
    elif args.graph_similarity:
        text = _run_similarity(args, store, view)
    else:
        text = _run_nnstd(args, view)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
