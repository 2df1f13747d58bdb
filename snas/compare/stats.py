"""The statistics of an SC-SDC comparison (no torch, no Ray): EGF over evenly spaced
epochs and the per-width and overall summaries of a level's (dense, sparse) pairs
(:func:`compare_report`). The paired test and mean ± sd are :mod:`snas.stats`'s, shared
with ``snas confirm``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from snas.compare.plan import level_label
from snas.core import metrics as M
from snas.core.epoch_sampling import SAMPLE_POINTS, mean_over_sampled_epochs
from snas.stats import (  # noqa: F401  (re-exported: the test the report gives)
    _ROUND_DECIMALS,
    MAX_EXACT_PERMUTATION,
    mean_sd,
    wilcoxon_greater,
)

#: The compared quantity: each network's test accuracy after its last epoch.
METRIC = M.TEST_ACCURACY
#: EGF is averaged over this many evenly spaced epochs (thesis §3.3.1).
EGF_POINTS = SAMPLE_POINTS


def evenly_spaced_mean(values_by_epoch: Mapping[int, float], points: int = EGF_POINTS
                       ) -> float | None:
    """Mean of a per-epoch metric at the epochs :func:`snas.core.epoch_sampling.sampled_epochs`
    picks (the same epochs as ``snas analyze``); epochs without a finite value are skipped."""
    return mean_over_sampled_epochs(values_by_epoch, points=points, missing="skip")


def _group(pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Summary of a list of pairs: accuracies, EGF, differences, wins, Wilcoxon."""
    complete = [p for p in pairs if p["dense"].get(METRIC) is not None
                and p["sparse"].get(METRIC) is not None]
    out: dict[str, Any] = {"n_pairs": len(complete), "n_incomplete": len(pairs) - len(complete)}
    for role in ("dense", "sparse"):
        out[role] = {key: mean_sd([p[role].get(key) for p in complete])
                     for key in (METRIC, M.EGF_2, M.EGF_1)}
    diffs = [p["sparse"][METRIC] - p["dense"][METRIC] for p in complete]
    out["difference"] = mean_sd(diffs)
    out["sparse_wins"] = sum(1 for d in diffs if round(d, _ROUND_DECIMALS) > 0)
    out["wilcoxon"] = wilcoxon_greater([p["sparse"][METRIC] for p in complete],
                                       [p["dense"][METRIC] for p in complete])
    return out


def compare_report(levels: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per level: per-width and overall summaries of its pairs.

    ``levels``: ``{"factors": {...}, "widths": [{"width", "active_weights",
    "sparse_density", "pairs": [{"seed", "dense": {...}, "sparse": {...}}]}]}``, where a
    member dict holds ``test_accuracy`` (None when the trial failed), ``egf_1``, ``egf_2``.
    """
    out = []
    for level in levels:
        per_width = [{**{k: v for k, v in w.items() if k != "pairs"}, **_group(w["pairs"]),
                      "pairs": list(w["pairs"])} for w in level["widths"]]
        all_pairs = [p for w in level["widths"] for p in w["pairs"]]
        out.append({"factors": dict(level["factors"]), "label": level_label(level["factors"]),
                    "per_width": per_width, "overall": _group(all_pairs)})
    return out


__all__ = ["EGF_POINTS", "MAX_EXACT_PERMUTATION", "METRIC", "compare_report",
           "evenly_spaced_mean", "mean_sd", "wilcoxon_greater"]
