"""The one definition of "a per-epoch metric averaged over 11 evenly spaced epochs".

The Tessera thesis (§3.3.1, table 3.1) summarises a trial's gradient flow by its mean over
11 evenly spaced epochs of training, first and last included. :func:`sampled_epochs` picks
those epochs (counted from 1) for a trial of ``E`` epochs; :func:`mean_over_sampled_epochs`
averages a metric there. ``snas analyze`` and ``snas compare`` both use it, so they report
the same value for the same trial.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Literal

SAMPLE_POINTS = 11


def sampled_epochs(n_epochs: int, points: int = SAMPLE_POINTS) -> list[int]:
    """The epochs (counted from 1) at which a metric is averaged for a trial of
    ``n_epochs`` epochs: epoch 1 and ``ceil(k * n_epochs / (points - 1))`` for
    k = 1 .. points - 1, i.e. for 1000 epochs 1, 100, 200, ..., 1000 (the thesis' 0, 99,
    199, ..., 999 counted from 0); all epochs when ``n_epochs <= points``. The result has
    exactly ``min(points, n_epochs)`` distinct epochs, first and last included."""
    for value, what in ((n_epochs, "n_epochs"), (points, "points")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{what} must be an integer >= 1, got {value!r}")
    if n_epochs <= points:
        return list(range(1, n_epochs + 1))
    if points == 1:
        return [n_epochs]
    # ceil with integers: the steps are >= 1 epoch apart, so no epoch repeats
    return [1] + [-(-k * n_epochs // (points - 1)) for k in range(1, points)]


def finite(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def mean_over_sampled_epochs(values_by_epoch: Mapping[int, Any], n_epochs: int | None = None,
                             points: int = SAMPLE_POINTS,
                             missing: Literal["none", "skip"] = "none") -> float | None:
    """Mean of a metric (``{epoch: value}``) at :func:`sampled_epochs` of ``n_epochs``
    (default: the last epoch given).

    ``missing``: what a sampled epoch without a finite value does. ``"none"``: the mean is
    undefined (None), as the thesis' table needs every sampled epoch; ``"skip"``: that epoch
    is left out (None only when no sampled epoch has a value).
    """
    if missing not in ("none", "skip"):
        raise ValueError(f"missing must be 'none' or 'skip', got {missing!r}")
    epochs = [int(e) for e in values_by_epoch]
    if n_epochs is None:
        if not epochs:
            return None
        n_epochs = max(epochs)
    values = [values_by_epoch.get(e) for e in sampled_epochs(n_epochs, points)]
    kept = [float(v) for v in values if finite(v)]
    if not kept or (missing == "none" and len(kept) < len(values)):
        return None
    return math.fsum(kept) / len(kept)


__all__ = ["SAMPLE_POINTS", "finite", "mean_over_sampled_epochs", "sampled_epochs"]
