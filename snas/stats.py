"""Paired statistics shared by ``snas compare`` and ``snas confirm`` (no torch, no Ray):
the one-sided paired Wilcoxon signed-rank test and mean ± sample sd."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

#: Above this many non-zero differences with ties, the p-value uses the normal
#: approximation instead of enumerating all 2^n sign assignments.
MAX_EXACT_PERMUTATION = 16
_ROUND_DECIMALS = 9


def wilcoxon_greater(sparse: Sequence[float], dense: Sequence[float]) -> dict[str, Any]:
    """One-sided paired Wilcoxon signed-rank test of H1: sparse > dense.

    Differences ``sparse - dense`` are rounded to 9 decimals (so float noise does not split
    ties). Zero differences are dropped (Wilcoxon's method, scipy's ``zero_method="wilcox"``)
    and ``n_used`` counts the rest. The p-value is scipy.stats.wilcoxon's with
    ``alternative="greater"``: the exact null distribution when the non-zero |differences|
    are distinct and n_used <= 50 (``method: exact``); with tied |differences| the exact
    permutation distribution over all 2^n_used sign assignments for n_used <= 16
    (``exact-permutation``), beyond that the normal approximation with tie correction
    (``normal``). No non-zero difference: no evidence for H1, p = 1 (``method: none``).
    ``statistic`` is W+, the sum of the ranks of the positive differences.
    """
    import numpy as np
    from scipy import stats

    s = np.asarray(sparse, dtype=float)
    d = np.asarray(dense, dtype=float)
    if s.ndim != 1 or s.shape != d.shape:
        raise ValueError(f"sparse and dense must be 1-d of equal length, got shapes "
                         f"{s.shape} and {d.shape}")
    diff = np.round(s - d, _ROUND_DECIMALS)
    diff = diff[np.isfinite(diff)]
    nonzero = diff[diff != 0]
    out: dict[str, Any] = {"n_pairs": int(diff.size), "n_zero": int(diff.size - nonzero.size),
                           "n_used": int(nonzero.size), "alternative": "greater"}
    if nonzero.size == 0:
        return {**out, "statistic": 0.0, "p_value": 1.0, "method": "none"}
    ties = np.unique(np.abs(nonzero)).size < nonzero.size
    if not ties and nonzero.size <= 50:
        method, arg = "exact", "exact"
    elif nonzero.size <= MAX_EXACT_PERMUTATION:
        method, arg = "exact-permutation", stats.PermutationMethod(
            n_resamples=2 ** nonzero.size)
    else:
        method, arg = "normal", "asymptotic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's z for non-asymptotic runs
        result = stats.wilcoxon(nonzero, alternative="greater", method=arg)
    return {**out, "statistic": float(result.statistic), "p_value": float(result.pvalue),
            "method": method}


def mean_sd(values: Sequence[float]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof 1; None for fewer than 2 values)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return {"mean": None, "sd": None, "n": 0}
    mean = sum(vals) / len(vals)
    sd = (math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
          if len(vals) > 1 else None)
    return {"mean": mean, "sd": sd, "n": len(vals)}


__all__ = ["MAX_EXACT_PERMUTATION", "mean_sd", "wilcoxon_greater"]
