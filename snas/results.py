"""Pure functions over a search's trial dicts: ranking, Pareto front, cost, text tables.

No store, no torch, no Ray: :class:`snas.view.SearchView` reads a search once and derives
its ranking and front with these; ``snas show``, export, the dashboard, the report,
``snas analyze`` and ``snas topology`` read them from that view.

Ranking: trials that trained every epoch come first (their metric is full-fidelity), then
trials ASHA stopped early, each group by the search's metric and mode, equal metrics by
fewer active weights; trials without a finite metric (failed, still pending) come last.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from snas.core import metrics as M

__all__ = ["cost_metric", "finite", "format_density", "pareto_front", "rank_trials",
           "ranked_trials", "search_pareto_front", "searches_table", "trials_table"]


def finite(value: Any) -> bool:
    """A real, finite number (not a bool, not None, not NaN)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def rank_trials(trials: Sequence[Mapping[str, Any]], metric: str, mode: str
                ) -> list[Mapping[str, Any]]:
    """``trials`` best first (the module docstring's rules); a stable sort, so trials that
    tie on every key keep their order (creation order from the store)."""

    def key(t: Mapping[str, Any]) -> tuple[int, int, float, float]:
        value = t.get(metric)
        if not finite(value):
            return (1, 1, 0.0, 0.0)
        full = 0 if t["status"] == "terminated" else 1
        active = t.get(M.ACTIVE_WEIGHTS)  # equal metric: the sparser network ranks first
        return (0, full, -float(value) if mode == "max" else float(value),
                float(active) if finite(active) else math.inf)

    return sorted(trials, key=key)


def pareto_front(trials: Sequence[Mapping[str, Any]], metric: str = M.VAL_ACCURACY,
                 mode: str = "max", cost: str = M.ACTIVE_WEIGHTS,
                 full_fidelity: bool = True) -> list[dict[str, Any]]:
    """The non-dominated trials for (``metric`` in ``mode``, fewest ``cost``), cheapest first.

    A trial dominates another when it is at least as good in both objectives and better in
    one. With ``full_fidelity`` only trials that trained every epoch (status ``terminated``)
    compete, since an ASHA-stopped trial's metric is from fewer epochs. Trials without a
    finite metric or cost are left out; of exact duplicates the one with the smallest trial
    id is kept, so the front does not depend on the order of ``trials``.
    """
    sign = 1.0 if mode == "max" else -1.0
    points = [t for t in trials
              if finite(t.get(metric)) and finite(t.get(cost))
              and (not full_fidelity or t.get("status") == "terminated")]
    # Sweep by cost ascending (better metric first on ties): a point is on the front iff it
    # beats the best metric seen among cheaper-or-equal points.
    points.sort(key=lambda t: (float(t[cost]), -sign * float(t[metric]),
                               str(t.get("trial_id", ""))))
    front: list[dict[str, Any]] = []
    best = -math.inf
    for t in points:
        if sign * float(t[metric]) > best:
            front.append(dict(t))
            best = sign * float(t[metric])
    return front


def cost_metric(record: Mapping[str, Any]) -> str:
    """The cost a search's Pareto front minimises: ``active_flops`` for a FLOPs budget,
    else ``active_weights``."""
    budget = record.get("params", {}).get("budget") or {}
    return M.ACTIVE_FLOPS if budget.get("resource") == "flops" else M.ACTIVE_WEIGHTS


def _num(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if finite(value) else "-"


def format_density(density: Sequence[float] | None, limit: int = 12) -> str:
    if not density:
        return "-"
    shown = " ".join(f"{d:.2f}" for d in density[:limit])
    return shown + (f" ... (+{len(density) - limit})" if len(density) > limit else "")


def trials_table(trials: Sequence[Mapping[str, Any]], metric: str,
                 baseline: Mapping[str, Any] | None = None, top: int | None = None,
                 near_best: Collection[str] = ()) -> str:
    """A fixed-width table of trials (rank, status, epochs, metrics, density vector).

    ``near_best``: ids of trials within noise of the best, marked ``~`` after their metric.
    Trials with a ``confirmed_test_accuracy`` (a confirmed search) get a column with the
    confirmed mean ± sd over seeds.
    """
    rows = list(trials)[:top] if top else list(trials)
    confirmed = any("confirmed_test_accuracy" in t for t in rows)
    header = (f"{'rank':>4}  {'trial':<20}{'status':<11}{'epochs':>6}  {metric:>12} "
              + (f"{'confirmed test':>18}" if confirmed else "")
              + f"{'test_acc':>10}{'active':>10}{'vs dense':>10}{'egf_2':>9}  density")
    lines = [header]
    base_value = baseline.get(metric) if baseline else None
    for rank, t in enumerate(rows, 1):
        value = t.get(metric)
        delta = (f"{value - base_value:+.4f}" if finite(value) and finite(base_value) else "-")
        if t.get("is_baseline"):
            delta = "dense"
        active = t.get(M.ACTIVE_WEIGHTS)
        mark = "~" if t["trial_id"] in near_best else " "
        shown = ""
        if confirmed:
            mean, sd = t.get("confirmed_test_accuracy"), t.get("confirmed_sd")
            shown = (f"{mean:.4f} ± {sd:.4f}" if finite(mean) and finite(sd)
                     else (_num(mean) if finite(mean) else "-"))
            shown = f"{shown:>18}"
        lines.append(
            f"{rank:>4}  {t['trial_id']:<20}{t['status']:<11}{t.get('epochs', 0):>6}  "
            f"{_num(value):>12}{mark}{shown}{_num(t.get(M.TEST_ACCURACY)):>10}"
            f"{(f'{active:,}' if finite(active) else '-'):>10}{delta:>10}"
            f"{_num(t.get(M.EGF_2), '.3g'):>9}  {format_density(t.get('density'))}")
    return "\n".join(lines)


def searches_table(searches: Sequence[Mapping[str, Any]]) -> str:
    lines = [f"{'name':<28}{'status':<13}{'searcher':<10}{'trials':>8}{'best':>10}  created"]
    for s in searches:
        counts = s.get("trial_counts", {})
        done = sum(counts.get(k, 0) for k in ("terminated", "stopped", "error"))
        created = s["created_at"].strftime("%Y-%m-%d %H:%M") if s.get("created_at") else "-"
        trials = f"{done}/{s['num_samples']}"
        lines.append(f"{s['name']:<28}{s['status']:<13}{s['searcher']:<10}"
                     f"{trials:>8}{_num(s.get('best_value')):>10}  {created}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# For callers that hold a store rather than a view (the controller, tests): one read each.


def ranked_trials(store: Any, name: str) -> tuple[list[dict], dict | None, str, str]:
    """(trials ranked best first, the dense-baseline trial or None, metric, mode) of a
    stored search; see :class:`snas.view.SearchView`."""
    from snas.view import SearchView

    view = SearchView.load(store, name)
    return list(view.ranked), view.baseline, view.metric, view.mode


def search_pareto_front(store: Any, name: str) -> tuple[list[dict], str, str, str]:
    """(front trials cheapest first, metric, mode, cost) of a stored search; see
    :attr:`snas.view.SearchView.pareto_front`."""
    from snas.view import SearchView

    view = SearchView.load(store, name)
    return list(view.pareto_front), view.metric, view.mode, view.cost
