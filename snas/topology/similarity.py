"""Graph similarity (Janik & Nowak 2021, fig. 4) of trials' wiring-graph statistics.

Every trial's wiring-graph statistics (stored by the search) become a feature vector
(:data:`GRAPH_FEATURES`, those finite in every compared trial and not constant across
them), each feature is standardised across the trials (zero mean, unit population
variance) and the similarity of trials x and y is the RBF kernel exp(-gamma ||x - y||^2),
gamma = 1 / number of features by default (the usual RBF default, as in scikit-learn).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Wiring-graph statistics used as features, in order: Janik & Nowak's table 2 (paths,
#: communicability, connectivity, degree, elongation) and the size/density rows of their
#: table 1 (the number of parameters left out, as in their fig. 4). Per-stage lists
#: (``nodes_per_stage``, ``edge_density_per_stage``) become one feature per stage.
GRAPH_FEATURES = ("log_num_paths", "mean_path_length", "max_path_length",
                  "log_communicability", "edge_connectivity", "mean_degree", "elongation",
                  "nodes", "live_hidden_neurons", "density", "edge_density",
                  "nodes_per_stage", "edge_density_per_stage")


def finite_number(value: Any) -> bool:
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
                if finite_number(v):
                    out[f"{name}[{i}]"] = float(v)
        elif finite_number(value):
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

