"""The read model: one search as read back from the results store, and its export file.

:meth:`SearchView.load` reads a search's record and its trials once, from one snapshot of
the store (:meth:`~snas.store.ResultsStore.read_search`), and derives there what every
reader needs: the metric and mode (:func:`snas.store.search_objective`), the cost its
Pareto front minimises (:func:`snas.results.cost_metric`: active FLOPs for a FLOPs budget,
else active weights), the dense baseline, the ranking (:func:`snas.results.rank_trials`),
the Pareto front (:func:`snas.results.pareto_front`) and the export document. ``snas
show``, ``snas export``, the end-of-search summary, the dashboard, the report, ``snas
analyze`` and ``snas topology`` all read a search through it, so they agree on what a
record means. The view is a snapshot: it never goes back to the store.

The controller also stores the front's trial ids in ``params["pareto_front"]`` when a
search ends. That is a record of that moment (a resumed search changes the front), so the
view derives the front from the trials instead of reading it.

Noise: the search metric is measured on a finite validation split, so the view knows its
standard error (:meth:`SearchView.standard_error`: ``sqrt(p (1 - p) / n)`` for an accuracy
``p`` on ``n`` examples, from the split sizes the search recorded) and which trials are
within noise of the best (:meth:`SearchView.within_noise`: less than two standard errors
below it). A search confirmed by ``snas confirm`` (a finished ``NAME.confirm`` record) is
ranked by the confirmed test-accuracy mean over seeds instead: its confirmed vectors come
first, best confirmed mean first, each carrying ``confirmed_*`` fields; the rest follow in
the search's own order (:attr:`SearchView.ranked_by` says which).

The export file (format :data:`EXPORT_FORMAT`) is written from :meth:`SearchView.
export_document` and read back by :func:`read_export` (``snas train --from-export``).

No torch, no Ray.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from snas.core import metrics as M
from snas.core.errors import ConfigError, SearchError
from snas.results import cost_metric, finite, pareto_front, rank_trials
from snas.store import search_objective

__all__ = ["EXPORT_FORMAT", "SearchView", "read_export"]

EXPORT_FORMAT = "snas-export/1"


@dataclass(frozen=True)
class SearchView:
    """One search as stored: its record, its trials and what is derived from them."""

    name: str
    record: Mapping[str, Any]  # ResultsStore.get_search
    trials: tuple[dict[str, Any], ...]  # creation order (ResultsStore.trials)
    metric: str
    mode: str
    cost: str  # what the Pareto front minimises: active_weights or active_flops
    baseline: dict[str, Any] | None  # the dense-baseline trial
    ranked: tuple[dict[str, Any], ...]  # best first, see snas.results and the module doc
    pareto_front: tuple[dict[str, Any], ...]  # full-fidelity trials only, cheapest first
    confirmation: Mapping[str, Any] | None = None  # snas.confirm.stats.summarize's report

    @classmethod
    def load(cls, store: Any, name: str) -> SearchView:
        """Read search ``name`` from ``store`` (one read, plus one for its confirmation when
        it has one); the store's SearchError if absent."""
        record, trials = store.read_search(name)
        return cls.from_record(record, trials, _confirmation(store, name, record))

    @classmethod
    def from_record(cls, record: Mapping[str, Any], trials: Sequence[Mapping[str, Any]],
                    confirmation: Mapping[str, Any] | None = None) -> SearchView:
        """The view of a record and its trials already read (``read_search``'s pair)."""
        metric, mode = search_objective(record.get("params"), record.get("space"))
        cost = cost_metric(record)
        trials = tuple(dict(t) for t in trials)
        ranked = rank_trials(trials, metric, mode)
        if confirmation is not None:
            ranked = _confirmed_first(ranked, confirmation)
        return cls(name=record["name"], record=record, trials=trials, metric=metric,
                   mode=mode, cost=cost,
                   baseline=next((t for t in trials if t.get("is_baseline")), None),
                   ranked=tuple(ranked),
                   pareto_front=tuple(pareto_front(trials, metric, mode, cost)),
                   confirmation=confirmation)

    # -- ranking and noise --------------------------------------------------------------

    @property
    def ranked_by(self) -> str:
        """What the ranking orders by, in words (for table headers)."""
        if self.confirmation is not None:
            seeds = len(self.confirmation["seeds"])
            return (f"confirmed test_accuracy (mean over {seeds} seeds, snas confirm), then "
                    f"{self.metric}")
        return self.metric

    def split_size(self, split: str) -> int | None:
        """Examples in the search's ``train``/``val``/``test`` split (None: not recorded)."""
        sizes = self.params.get("split_sizes")
        size = sizes.get(split) if isinstance(sizes, Mapping) else None
        return size if isinstance(size, int) and size > 0 else None

    def standard_error(self, value: Any, metric: str | None = None) -> float | None:
        """The binomial standard error of an accuracy ``value`` measured on its split
        (``val_`` or ``test_`` metrics), ``sqrt(p (1 - p) / n)``; None for other metrics
        or when the split size is unknown."""
        metric = metric or self.metric
        split = metric.split("_", 1)[0]
        n = self.split_size(split)
        if n is None or not metric.endswith("accuracy") or not finite(value) \
                or not 0.0 <= value <= 1.0:
            return None
        return math.sqrt(max(value * (1.0 - value), 1.0 / n) / n)

    @property
    def best_value(self) -> float | None:
        """The best finite search metric over the trials that trained every epoch."""
        values = [t[self.metric] for t in self.trials if finite(t.get(self.metric))
                  and t.get("status") == "terminated"]
        if not values:
            return None
        return max(values) if self.mode == "max" else min(values)

    def within_noise(self, trial: Mapping[str, Any]) -> bool:
        """Whether ``trial``'s metric is less than two standard errors (of the best value)
        from the best: on this validation split it cannot be told apart from the best."""
        best, value = self.best_value, trial.get(self.metric)
        se = self.standard_error(best)
        if best is None or se is None or not finite(value):
            return False
        return abs(best - float(value)) < 2.0 * se

    # -- facts of the record ------------------------------------------------------------

    @property
    def params(self) -> Mapping[str, Any]:
        params = self.record.get("params")
        return params if isinstance(params, Mapping) else {}

    @property
    def space(self) -> Mapping[str, Any]:
        space = self.record.get("space")
        return space if isinstance(space, Mapping) else {}

    @property
    def multi_objective(self) -> bool:
        return bool(self.params.get("multi_objective"))

    @property
    def baseline_over_budget(self) -> bool:
        """The search has a budget and did not train the dense baseline (it is over it)."""
        budget = self.params.get("budget")
        return (isinstance(budget, Mapping) and budget.get("max_fraction") is not None
                and not self.params.get("dense_baseline", True))

    @property
    def layers(self) -> list[dict[str, Any]]:
        """``{"name", "shape"}`` per maskable layer (shape None where not recorded)."""
        out = []
        for i, layer in enumerate(self.params.get("layers") or []):
            layer = layer if isinstance(layer, Mapping) else {"name": layer}
            shape = layer.get("shape")
            out.append({"name": str(layer.get("name", f"layer {i}")),
                        "shape": list(shape) if isinstance(shape, list) else None})
        return out

    # -- trials -------------------------------------------------------------------------

    @property
    def scored(self) -> list[dict[str, Any]]:
        """The ranked trials that have a finite metric; ``scored[r - 1]`` has rank r."""
        return [t for t in self.ranked if finite(t.get(self.metric))]

    def trial(self, trial_id: str) -> dict[str, Any] | None:
        return next((t for t in self.trials if t["trial_id"] == trial_id), None)

    def rank_of(self, trial: Mapping[str, Any]) -> int | None:
        """The rank of ``trial`` (1 = best), None when it has no finite metric."""
        return next((i for i, t in enumerate(self.scored, 1)
                     if t["trial_id"] == trial["trial_id"]), None)

    def select_trial(self, rank: int | None = None, trial_id: str | None = None
                     ) -> tuple[dict[str, Any], int | None]:
        """(trial, rank or None) chosen by ``trial_id`` if given, else the trial of ``rank``
        (default 1, the best) in the ranking of ``snas show`` (trials with a metric only)."""
        if trial_id is not None:
            if rank is not None:
                raise ConfigError("give either --rank or --trial, not both")
            trial = self.trial(trial_id)
            if trial is None:
                ids = (", ".join(t["trial_id"] for t in self.ranked[:8])
                       + (" ..." if len(self.ranked) > 8 else ""))
                raise ConfigError(f"--trial {trial_id!r} is not a trial of search "
                                  f"{self.name!r}; its trials: {ids or 'none'}")
            return trial, self.rank_of(trial)
        rank = 1 if rank is None else rank
        scored = self.scored
        if not scored:
            raise SearchError(f"search {self.name!r} has no trial with a {self.metric} yet; "
                              "nothing to export")
        if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= len(scored):
            raise ConfigError(f"--rank must be in [1, {len(scored)}] for search "
                              f"{self.name!r}, got {rank!r}")
        return scored[rank - 1], rank

    # -- the export file ----------------------------------------------------------------

    def export_document(self, top: int = 5, pareto: bool = False) -> dict[str, Any]:
        """The JSON document ``snas export`` writes: the top trials with layer-named densities.

        With ``pareto`` the trials are instead the search's Pareto front (best ``metric``
        for the fewest :attr:`cost`), cheapest first, all of them (``top`` is ignored);
        ``rank`` is the position on the front.
        """
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            raise ConfigError(f"--top must be an integer >= 1, got {top!r}")
        doc = {
            "format": EXPORT_FORMAT,
            "search": self.name,
            "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "metric": self.metric,
            "mode": self.mode,
            "space": self.record["space"],
            "baseline": self._entry(None, self.baseline) if self.baseline else None,
            "ranked_by": self.ranked_by,
        }
        if self.confirmation is not None:
            doc["confirmation"] = {k: self.confirmation[k] for k in
                                   ("seeds", "resource", "verdict", "comparisons")}
        if pareto:
            if not self.pareto_front:
                raise SearchError(f"search {self.name!r} has no Pareto front yet: no trial "
                                  "has trained every epoch")
            doc["pareto"] = {"objectives": {self.metric: self.mode, self.cost: "min"},
                             "trials_considered": "trained every epoch (status terminated)"}
            doc["trials"] = [self._entry(i, t) for i, t in enumerate(self.pareto_front, 1)]
        else:
            doc["trials"] = [self._entry(i, t) for i, t in enumerate(self.scored[:top], 1)]
        return doc

    def _entry(self, rank: int | None, t: Mapping[str, Any]) -> dict[str, Any]:
        layers = self.layers
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
            self.metric: t.get(self.metric),
            M.VAL_ACCURACY: t.get(M.VAL_ACCURACY),
            M.TEST_ACCURACY: t.get(M.TEST_ACCURACY),
            M.ACTIVE_WEIGHTS: t.get(M.ACTIVE_WEIGHTS),
            M.TOTAL_WEIGHTS: t.get(M.TOTAL_WEIGHTS),
            M.ACTIVE_FLOPS: t.get(M.ACTIVE_FLOPS),
            M.TOTAL_FLOPS: t.get(M.TOTAL_FLOPS),
            M.EGF_1: t.get(M.EGF_1),
            M.EGF_2: t.get(M.EGF_2),
            "checkpoint_path": t.get("checkpoint_path"),
            **{k: v for k, v in t.items() if k.startswith("confirmed_")},
        }


def _confirmation(store: Any, name: str, record: Mapping[str, Any]
                  ) -> Mapping[str, Any] | None:
    """The report of search ``name``'s finished confirmation, None without one."""
    from snas.confirm.plan import ConfirmPlan, record_name
    from snas.confirm.stats import summarize

    confirm = record_name(name)
    if store.get_search(confirm) is None:
        return None
    conf_record, conf_trials = store.read_search(confirm)
    if conf_record["status"] != "finished" or "candidates" not in (conf_record["params"] or {}):
        return None
    plan = ConfirmPlan.from_params(name, conf_record["params"], record.get("space") or {})
    return summarize(plan, conf_trials)


def _confirmed_first(ranked: Sequence[dict[str, Any]], confirmation: Mapping[str, Any]
                     ) -> list[dict[str, Any]]:
    """The confirmed searched vectors first (best confirmed mean first), then the rest."""
    confirmed = {c["trial_id"]: c for c in confirmation["candidates"]
                 if c["kind"] == "searched" and c["mean"] is not None}
    dense = next((c for c in confirmation["candidates"]
                  if c["reference"] == "dense" and c["mean"] is not None), None)
    head, tail = [], []
    for t in ranked:
        # the dense baseline is confirmed by the dense reference, when there is one
        c = dense if t.get("is_baseline") and dense is not None else confirmed.get(t["trial_id"])
        if c is None:
            tail.append(t)
            continue
        head.append({**t, "confirmed_test_accuracy": c["mean"], "confirmed_sd": c["sd"],
                     "confirmed_ci95": c["ci95"], "confirmed_per_seed": c["test_accuracy"],
                     "confirmed_seeds": list(confirmation["seeds"]),
                     "confirmed_label": c["label"]})
    head.sort(key=lambda t: -t["confirmed_test_accuracy"])  # stable: ties keep search order
    return head + tail


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
            or not all(finite(d) and 0 < d <= 1 for d in density)):
        raise ConfigError(f"{path!r}: trial of rank {rank} has no valid density vector "
                          "(numbers in (0, 1])")
    return trial
