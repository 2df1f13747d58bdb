"""What ``snas report`` reads from the results store for one search (:class:`ReportData`),
and the number formatting that its figures and its page share.

The search comes through one :class:`~snas.view.SearchView` (ranked trials, Pareto front,
layers, dense baseline) and the dashboard's per-epoch payload (the curves).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from snas.core import metrics as M
from snas.core.errors import ConfigError

#: Cost metric -> (axis label, the dense network's total, unit), for the accuracy figure.
COSTS = {M.ACTIVE_WEIGHTS: ("active weights", M.TOTAL_WEIGHTS, "weights"),
         M.ACTIVE_FLOPS: ("active FLOPs", M.TOTAL_FLOPS, "FLOPs")}


def finite(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def format_number(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if finite(value) else "-"


def format_count(value: Any) -> str:
    return f"{round(value):,}" if finite(value) else "-"


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
    ranked_by: str = ""  # SearchView.ranked_by: the metric, or the confirmed mean first
    standard_error: float | None = None  # of the best metric value, on its split
    verdict: str | None = None  # the confirmation's verdict, when the search was confirmed

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
                      epochs_payload(store, name)["trials"], top, payload["ranked_by"],
                      payload["standard_error"], payload["verdict"])


def layer_densities(trial: Mapping[str, Any], n_layers: int) -> list[float]:
    """A trial's density vector as floats (NaN where not a finite number); the one value
    of a uniform search stands for each of the ``n_layers`` layers."""
    density = [float(d) if finite(d) else math.nan for d in trial.get("density") or []]
    if len(density) == 1 and n_layers > 1:  # a uniform search stores one scalar
        density = density * n_layers
    return density
