"""Reading searches back: ranking, tables and the export file. No torch, no Ray.

Ranking: trials that trained every epoch come first (their metric is full-fidelity), then
trials ASHA stopped early, each group by the search's metric and mode, equal metrics by
fewer active weights; trials without a finite metric (failed, still pending) come last.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from snas.core import metrics as M
from snas.core.errors import ConfigError, SearchError
from snas.store import ResultsStore

EXPORT_FORMAT = "snas-export/1"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def search_record(store: ResultsStore, name: str) -> dict[str, Any]:
    record = store.get_search(name)
    if record is None:
        raise SearchError(f"no search named {name!r} in the store; `snas list` shows the "
                          "searches")
    return record


def ranked_trials(store: ResultsStore, name: str) -> tuple[list[dict], dict | None, str, str]:
    """(trials ranked best first, the dense-baseline trial or None, metric, mode)."""
    record = search_record(store, name)
    metric = record["params"].get("metric", M.VAL_ACCURACY)
    mode = record["params"].get("mode", "max")
    trials = store.trials(name)

    def key(t: Mapping[str, Any]) -> tuple[int, int, float, float]:
        value = t.get(metric)
        if not _finite(value):
            return (1, 1, 0.0, 0.0)
        full = 0 if t["status"] == "terminated" else 1
        active = t.get(M.ACTIVE_WEIGHTS)  # equal metric: the sparser network ranks first
        return (0, full, -float(value) if mode == "max" else float(value),
                float(active) if _finite(active) else math.inf)

    baseline = next((t for t in trials if t.get("is_baseline")), None)
    return sorted(trials, key=key), baseline, metric, mode


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
              if _finite(t.get(metric)) and _finite(t.get(cost))
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


def search_pareto_front(store: ResultsStore, name: str) -> tuple[list[dict], str, str, str]:
    """(front trials cheapest first, metric, mode, cost) of a search, from its stored trials
    (full-fidelity trials only, see :func:`pareto_front`)."""
    record = search_record(store, name)
    metric = record["params"].get("metric", M.VAL_ACCURACY)
    mode = record["params"].get("mode", "max")
    cost = cost_metric(record)
    return pareto_front(store.trials(name), metric, mode, cost), metric, mode, cost


def _num(value: Any, spec: str = ".4f") -> str:
    return format(value, spec) if _finite(value) else "-"


def format_density(density: Sequence[float] | None, limit: int = 12) -> str:
    if not density:
        return "-"
    shown = " ".join(f"{d:.2f}" for d in density[:limit])
    return shown + (f" ... (+{len(density) - limit})" if len(density) > limit else "")


def trials_table(trials: Sequence[Mapping[str, Any]], metric: str,
                 baseline: Mapping[str, Any] | None = None, top: int | None = None) -> str:
    """A fixed-width table of trials (rank, status, epochs, metrics, density vector)."""
    rows = list(trials)[:top] if top else list(trials)
    header = (f"{'rank':>4}  {'trial':<20}{'status':<11}{'epochs':>6}  {metric:>12}"
              f"{'test_acc':>10}{'active':>10}{'vs dense':>10}{'egf_2':>9}  density")
    lines = [header]
    base_value = baseline.get(metric) if baseline else None
    for rank, t in enumerate(rows, 1):
        value = t.get(metric)
        delta = (f"{value - base_value:+.4f}" if _finite(value) and _finite(base_value) else "-")
        if t.get("is_baseline"):
            delta = "dense"
        active = t.get(M.ACTIVE_WEIGHTS)
        lines.append(
            f"{rank:>4}  {t['trial_id']:<20}{t['status']:<11}{t.get('epochs', 0):>6}  "
            f"{_num(value):>12}{_num(t.get(M.TEST_ACCURACY)):>10}"
            f"{(f'{active:,}' if _finite(active) else '-'):>10}{delta:>10}"
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


def export_document(store: ResultsStore, name: str, top: int = 5, pareto: bool = False
                    ) -> dict[str, Any]:
    """The JSON document ``snas export`` writes: the top trials with layer-named densities.

    With ``pareto`` the trials are instead the search's Pareto front (best ``metric`` for
    the fewest active weights, or FLOPs for a FLOPs budget), cheapest first, all of them
    (``top`` is ignored); ``rank`` is the position on the front.
    """
    if top < 1:
        raise ConfigError(f"--top must be an integer >= 1, got {top!r}")
    record = search_record(store, name)
    ranked, baseline, metric, mode = ranked_trials(store, name)
    layers = record["params"].get("layers", [])

    def entry(rank: int | None, t: Mapping[str, Any]) -> dict[str, Any]:
        density = list(t.get("density") or [])
        if len(density) == 1 and len(layers) > 1:  # a uniform search: one scalar
            density = density * len(layers)
        return {
            "rank": rank,
            "trial_id": t["trial_id"],
            "status": t["status"],
            "is_baseline": bool(t.get("is_baseline")),
            "density": density,
            "layers": [{"name": spec["name"], "shape": spec["shape"], "density": d}
                       for spec, d in zip(layers, density, strict=False)],
            "epochs": t.get("epochs"),
            metric: t.get(metric),
            M.VAL_ACCURACY: t.get(M.VAL_ACCURACY),
            M.TEST_ACCURACY: t.get(M.TEST_ACCURACY),
            M.ACTIVE_WEIGHTS: t.get(M.ACTIVE_WEIGHTS),
            M.TOTAL_WEIGHTS: t.get(M.TOTAL_WEIGHTS),
            M.ACTIVE_FLOPS: t.get(M.ACTIVE_FLOPS),
            M.TOTAL_FLOPS: t.get(M.TOTAL_FLOPS),
            M.EGF_1: t.get(M.EGF_1),
            M.EGF_2: t.get(M.EGF_2),
            "checkpoint_path": t.get("checkpoint_path"),
        }

    doc = {
        "format": EXPORT_FORMAT,
        "search": name,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "metric": metric,
        "mode": mode,
        "space": record["space"],
        "baseline": entry(None, baseline) if baseline else None,
    }
    if pareto:
        cost = cost_metric(record)
        front = pareto_front(ranked, metric, mode, cost)
        if not front:
            raise SearchError(f"search {name!r} has no Pareto front yet: no trial has trained "
                              "every epoch")
        doc["pareto"] = {"objectives": {metric: mode, cost: "min"},
                         "trials_considered": "trained every epoch (status terminated)"}
        doc["trials"] = [entry(i, t) for i, t in enumerate(front, 1)]
    else:
        scored = [t for t in ranked if _finite(t.get(metric))]
        doc["trials"] = [entry(i, t) for i, t in enumerate(scored[:top], 1)]
    return doc


def read_export(path: str, rank: int = 1) -> dict[str, Any]:
    """The trial of rank ``rank`` from an export file, validated."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"export file not found: {path!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read export file {path!r}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise ConfigError(f"{path!r} is not a snas export file (format {EXPORT_FORMAT})")
    trials = doc.get("trials")
    if not isinstance(trials, list) or not trials:
        raise ConfigError(f"{path!r} holds no exported trials")
    if not isinstance(rank, int) or not 1 <= rank <= len(trials):
        raise ConfigError(f"--rank must be in [1, {len(trials)}] for {path!r}, got {rank!r}")
    trial = trials[rank - 1]
    density = trial.get("density") if isinstance(trial, dict) else None
    if (not isinstance(density, list) or not density
            or not all(_finite(d) and 0 < d <= 1 for d in density)):
        raise ConfigError(f"{path!r}: trial of rank {rank} has no valid density vector "
                          "(numbers in (0, 1])")
    return trial
