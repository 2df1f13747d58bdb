"""Gradient-flow analysis of a search (Tessera thesis §3.3.1 and table 3.1): ``snas analyze``.

Per trial, the gradient-flow measures EGF_1, EGF_2 (Effective Gradient Flow) and the classic
whole-network gradient norms ||g||_1, ||g||_2 are averaged over 11 evenly spaced epochs
(:func:`sampled_epochs`); then, across the trials of a search, each measure is
rank-correlated with test loss and with test accuracy by Kendall's tau
(``scipy.stats.kendalltau``, tau-b, with its two-sided p-value). The thesis reports the mean
|tau| over many searches; one search gives one signed tau per (measure, target).

Which trials count: by default those that trained every epoch (status ``terminated``), the
dense baseline included (``--sparse-only`` leaves it out). Trials ASHA stopped early are
low-fidelity and have no test metrics in the store; ``--include-stopped`` adds them, with
gradient flow averaged over the epochs they trained and test loss/accuracy measured now
from their last checkpoint. A trial without a finite value of every measure at every
sampled epoch, or without test metrics, is left out (and counted in the output).

The per-epoch values are those the trainable reports: each is the mean over the epoch's
training steps (:mod:`trainables.training`), not a single end-of-epoch measurement.
This module imports neither torch nor ray, except ``--include-stopped``, which loads
checkpoints inside :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from snas.core import metrics as M
from snas.core.epoch_sampling import (
    SAMPLE_POINTS,
    mean_over_sampled_epochs,
    sampled_epochs,
)
from snas.core.errors import SearchError

HELP = "Kendall rank correlation of gradient flow (EGF, gradient norms) with test metrics"
EPOCH_RULE = ("epoch 1 and epochs ceil(k * E / 10) for k = 1..10 of a trial's E epochs "
              "(the thesis' 0, 99, 199, ..., 999 for E = 1000, counted from 1); every epoch "
              "when E <= 11")
DESCRIPTION = (
    "Gradient-flow analysis of a search (Tessera thesis §3.3.1, table 3.1). Per trial, "
    "EGF_1, EGF_2 and the classic gradient norms ||g||_1, ||g||_2 are averaged over 11 "
    f"evenly spaced epochs: {EPOCH_RULE}. Across the trials, each measure is then "
    "rank-correlated with test loss and with test accuracy (Kendall's tau-b and its "
    "two-sided p-value, scipy.stats.kendalltau). By default only trials that trained every "
    "epoch count (dense baseline included); trials stopped early by ASHA are left out "
    "unless --include-stopped. Needs at least 3 usable trials.")

#: (metric name, label) of the measures, in the thesis' table order.
MEASURES = ((M.GRAD_NORM_1, "||g||_1"), (M.GRAD_NORM_2, "||g||_2"), (M.EGF_1, "EGF_1"),
            (M.EGF_2, "EGF_2"))
#: What the measures are correlated with, in the thesis' column order.
TARGETS = (M.TEST_LOSS, M.TEST_ACCURACY)
MIN_TRIALS = 3


def _finite(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def average_gradient_flow(epoch_rows: Sequence[Mapping[str, Any]],
                          points: int = SAMPLE_POINTS) -> dict[str, Any]:
    """One trial's gradient flow averaged over :func:`sampled_epochs` of its epochs.

    ``epoch_rows``: the trial's per-epoch records (``epoch`` and the :data:`MEASURES`).
    Returns ``{"epochs": E, "sampled_epochs": [...], measure: mean, ...}``; a measure is
    None when an sampled epoch is missing or its value is not finite.
    """
    by_epoch = {int(r[M.EPOCH]): r for r in epoch_rows if _finite(r.get(M.EPOCH))}
    if not by_epoch:
        return {"epochs": 0, "sampled_epochs": [], **{m: None for m, _ in MEASURES}}
    n_epochs = max(by_epoch)
    out: dict[str, Any] = {"epochs": n_epochs, "sampled_epochs": sampled_epochs(n_epochs, points)}
    for measure, _ in MEASURES:
        out[measure] = mean_over_sampled_epochs(
            {e: r.get(measure) for e, r in by_epoch.items()}, n_epochs, points)
    return out


def kendall_correlations(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Kendall's tau-b (``scipy.stats.kendalltau``) of every measure with every target
    across ``rows`` (one per trial): ``[{measure, label, target, tau, p_value, n}]`` in
    table order; tau and p are None where scipy gives NaN (a constant column)."""
    from scipy.stats import kendalltau

    out = []
    for measure, label in MEASURES:
        for target in TARGETS:
            x = [float(r[measure]) for r in rows]
            y = [float(r[target]) for r in rows]
            result = kendalltau(x, y)
            tau, p = float(result.statistic), float(result.pvalue)
            out.append({"measure": measure, "label": label, "target": target,
                        "tau": tau if math.isfinite(tau) else None,
                        "p_value": p if math.isfinite(p) else None, "n": len(rows)})
    return out


@dataclass
class GradientFlowAnalysis:
    """What ``snas analyze`` reports: the usable trials' averages (``trials``), the
    correlations, and how many trials were left out and why (``left_out``)."""

    search: str
    trials: list[dict[str, Any]]
    correlations: list[dict[str, Any]]
    left_out: dict[str, int] = field(default_factory=dict)
    include_stopped: bool = False
    sparse_only: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"search": self.search, "epoch_rule": EPOCH_RULE,
                "include_stopped": self.include_stopped, "sparse_only": self.sparse_only,
                "n_trials": len(self.trials), "left_out": self.left_out,
                "correlations": self.correlations, "trials": self.trials}


def analyze_search(store: Any, name: str, *, include_stopped: bool = False,
                   sparse_only: bool = False,
                   test_metrics: Mapping[str, tuple[float, float]] | None = None,
                   points: int = SAMPLE_POINTS) -> GradientFlowAnalysis:
    """Average gradient flow per trial and correlate it with test metrics across trials.

    ``test_metrics`` maps trial ids to ``(test_loss, test_accuracy)`` measured elsewhere
    (``run`` measures them for ASHA-stopped trials); they replace the store's values.
    Raises :class:`SearchError` for an unknown search or with fewer than
    :data:`MIN_TRIALS` usable trials.
    """
    from snas.view import SearchView

    view = SearchView.load(store, name)
    return analyze_view(view, store.epochs_frame(name), include_stopped=include_stopped,
                        sparse_only=sparse_only, test_metrics=test_metrics, points=points)


def analyze_view(view: Any, frame: Any, *, include_stopped: bool = False,
                 sparse_only: bool = False,
                 test_metrics: Mapping[str, tuple[float, float]] | None = None,
                 points: int = SAMPLE_POINTS) -> GradientFlowAnalysis:
    """:func:`analyze_search` of a search already read: its :class:`~snas.view.SearchView`
    and its ``epochs_frame``."""
    name, trials = view.name, view.trials
    columns = [M.EPOCH, *(m for m, _ in MEASURES)]
    epoch_rows: dict[str, list[dict]] = {}
    for record in frame.to_dict("records"):
        epoch_rows.setdefault(record["trial_id"], []).append(
            {c: record.get(c) for c in columns})
    test_metrics = test_metrics or {}
    left_out: dict[str, int] = {}
    usable = []
    for t in trials:
        reason = None
        if t["status"] == "stopped" and not include_stopped:
            reason = "stopped early by ASHA (add --include-stopped)"
        elif t["status"] not in ("terminated", "stopped"):
            reason = f"status {t['status']}"
        elif sparse_only and t.get("is_baseline"):
            reason = "dense baseline (--sparse-only)"
        row: dict[str, Any] = {"trial_id": t["trial_id"], "status": t["status"],
                               "is_baseline": bool(t.get("is_baseline"))}
        if reason is None:
            loss, acc = test_metrics.get(t["trial_id"], (t.get(M.TEST_LOSS),
                                                         t.get(M.TEST_ACCURACY)))
            row.update({M.TEST_LOSS: loss, M.TEST_ACCURACY: acc})
            row.update(average_gradient_flow(epoch_rows.get(t["trial_id"], []), points))
            if not (_finite(loss) and _finite(acc)):
                reason = "no test metrics"
            elif not all(_finite(row[m]) for m, _ in MEASURES):
                reason = "gradient flow missing at a sampled epoch"
        if reason is None:
            usable.append(row)
        else:
            left_out[reason] = left_out.get(reason, 0) + 1
    if len(usable) < MIN_TRIALS:
        why = "; ".join(f"{n} {reason}" for reason, n in left_out.items())
        raise SearchError(f"snas analyze needs at least {MIN_TRIALS} usable trials, search "
                          f"{name!r} has {len(usable)}" + (f" (left out: {why})" if why else ""))
    return GradientFlowAnalysis(name, usable, kendall_correlations(usable), left_out,
                                include_stopped, sparse_only)


# --------------------------------------------------------------------------------------
# Output


def _num(value: Any, spec: str) -> str:
    return format(value, spec) if _finite(value) else "-"


def format_table(result: GradientFlowAnalysis) -> str:
    """The thesis' table 3.1 layout: one row per measure, Kendall tau and p-value against
    test loss and test accuracy; then the per-trial averages."""
    n = len(result.trials)
    epochs = sorted({t["epochs"] for t in result.trials})
    full = [t for t in result.trials if t["status"] == "terminated"]
    lines = [f"search {result.search}: Kendall rank correlation of gradient flow with test "
             f"performance across {n} trials (thesis table 3.1)"]
    kinds = f"{len(full)} trained every epoch"
    if result.include_stopped:
        kinds += f", {n - len(full)} stopped early by ASHA (test metrics from checkpoints)"
    if any(t["is_baseline"] for t in result.trials):
        kinds += "; dense baseline included"
    lines.append(kinds)
    if result.left_out:
        lines.append("left out: " + "; ".join(f"{k}: {v}" for k, v in result.left_out.items()))
    if len(epochs) == 1:
        lines.append(f"gradient flow per trial: mean over epochs "
                     f"{', '.join(map(str, result.trials[0]['sampled_epochs']))} of {epochs[0]}")
    else:
        lines.append(f"gradient flow per trial: mean over {EPOCH_RULE}")
    lines.append("")
    lines.append(f"{'':<10}{'test loss':^20}{'test accuracy':^20}")
    lines.append(f"{'measure':<10}" + f"{'tau':>10}{'p-value':>10}" * 2)
    by_key = {(c["measure"], c["target"]): c for c in result.correlations}
    for measure, label in MEASURES:
        cells = "".join(f"{_num(by_key[(measure, t)]['tau'], '+.3f'):>10}"
                        f"{_num(by_key[(measure, t)]['p_value'], '.3f'):>10}"
                        for t in TARGETS)
        lines.append(f"{label:<10}{cells}")
    lines.append("")
    lines.append(f"{'trial':<20}{'status':<12}{'epochs':>6}{'test_loss':>11}{'test_acc':>10}"
                 + "".join(f"{label:>12}" for _, label in MEASURES))
    for t in result.trials:
        label = t["trial_id"] + (" (dense)" if t["is_baseline"] else "")
        lines.append(f"{label:<20}{t['status']:<12}{t['epochs']:>6}"
                     f"{_num(t[M.TEST_LOSS], '.4f'):>11}{_num(t[M.TEST_ACCURACY], '.4f'):>10}"
                     + "".join(f"{_num(t[m], '.4g'):>12}" for m, _ in MEASURES))
    return "\n".join(lines) + "\n"


def format_csv(result: GradientFlowAnalysis) -> str:
    """One line per (measure, target): measure,target,tau,p_value,n_trials."""
    lines = ["measure,target,tau,p_value,n_trials"]
    for c in result.correlations:
        tau = "" if c["tau"] is None else repr(c["tau"])
        p = "" if c["p_value"] is None else repr(c["p_value"])
        lines.append(f"{c['measure']},{c['target']},{tau},{p},{c['n']}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``snas analyze``."""
    from snas.commands._common import STORE_HELP

    parser.add_argument("name", help="search name (see snas list)")
    parser.add_argument("--include-stopped", action="store_true",
                        help="also use trials ASHA stopped early (low fidelity): gradient "
                        "flow over the epochs they trained, test loss/accuracy measured now "
                        "from their last checkpoint (loads torch)")
    parser.add_argument("--sparse-only", action="store_true",
                        help="leave the dense baseline out")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="table (thesis table 3.1 layout plus per-trial averages), json "
                        "(everything) or csv (one line per measure and target); default table")
    parser.add_argument("--store", metavar="URL", help=STORE_HELP)


def checkpoint_test_metrics(trials: Sequence[Mapping[str, Any]]
                            ) -> dict[str, tuple[float, float]]:
    """``{trial_id: (test_loss, test_accuracy)}`` measured on CPU from each trial's last
    checkpoint (its search space and density are in the checkpoint); trials without a
    readable checkpoint are skipped."""
    import os

    from snas.core.config import SpaceConfig
    from trainables.checkpoint import load_state
    from trainables.data import load_dataset
    from trainables.training import Trial
    from trainables.tune_trainable import CHECKPOINT_FILE

    out: dict[str, tuple[float, float]] = {}
    datasets: dict[Any, Any] = {}
    for t in trials:
        path = t.get("checkpoint_path")
        file = os.path.join(path, CHECKPOINT_FILE) if path else None
        if file is None or not os.path.isfile(file):
            continue
        state = load_state(path)
        if not isinstance(state.get("space"), dict):
            continue
        space = SpaceConfig.from_dict(state["space"])
        if space.dataset not in datasets:
            datasets[space.dataset] = load_dataset(space.dataset, "cpu")
        trial = Trial(space, [float(d) for d in state["density"]], device="cpu",
                      data=datasets[space.dataset])
        trial.load_state_dict(state)
        out[t["trial_id"]] = trial.evaluate("test")
    return out


def run(args: argparse.Namespace) -> int:
    """``snas analyze``: print the gradient-flow correlation table of a search."""
    from snas.commands._common import open_reader
    from snas.view import SearchView

    store = open_reader(args.store)
    view = SearchView.load(store, args.name)
    test_metrics = None
    if args.include_stopped:
        stopped = [t for t in view.trials if t["status"] == "stopped"]
        test_metrics = checkpoint_test_metrics(stopped)
    result = analyze_view(view, store.epochs_frame(args.name),
                          include_stopped=args.include_stopped, sparse_only=args.sparse_only,
                          test_metrics=test_metrics)
    if args.format == "json":
        text = json.dumps(result.to_dict(), indent=2, default=float) + "\n"
    elif args.format == "csv":
        text = format_csv(result)
    else:
        text = format_table(result)
    sys.stdout.write(text)
    return 0
