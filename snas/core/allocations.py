"""Reference allocations: density vectors that a searched vector is compared against.

Each allocation turns a layer table (``[{name, shape, positions}, ...]``, the form
:func:`snas.core.budget.cost_model_from_layers` reads) and a target cost into one density
(fraction kept) per layer:

- ``dense``: every layer at 1.0 (the target is not used).
- ``uniform``: the same density in every layer.
- ``erk`` (Erdős–Rényi-Kernel, Evci et al. 2020, "Rigging the Lottery"): layer ``l`` gets
  ``d_l = eps * r_l`` with ``r_l = sum(shape_l) / prod(shape_l)``; kernel dimensions count,
  so a conv weight ``(out, in, kh, kw)`` has ``r = (out + in + kh + kw) / (out * in * kh *
  kw)``. A layer whose ``d_l`` would exceed 1 is set dense and ``eps`` is solved again over
  the others, until none exceeds 1 (RigL's procedure). Its fixed point is ``d_l = min(1,
  eps * r_l)`` with one ``eps`` for all layers, so ``eps`` is found directly by bisection
  on that form. A layer whose ERK density would keep less than one weight is held at one
  (``d_l >= 1 / n_l``, the kept-count floor), like a capped layer from the other side. For a
  FLOPs target the same ERK shape is scaled until the FLOPs cost matches.
- ``global_magnitude``: the trained dense network's weights ranked by ``|w|`` across all
  layers (ties: lower layer index, then lower flat index, first: a stable descending sort
  of the concatenated weights, the tie rule of the top-k kernels); a layer's density is the
  fraction of its weights that survive. Every layer keeps at least its own largest ``|w|``
  (densities are never 0); the remaining budget goes to the longest prefix of the global
  ranking that fits it. For weights that is the K globally largest ``|w|``; for FLOPs a
  weight of layer ``l`` costs ``positions_l`` and the prefix stops before the first weight
  whose cost would no longer fit (one global threshold on ``|w|``, not a ranking by ``|w|``
  per unit of cost).

Cost is counted exactly as :class:`snas.core.budget.CostModel` counts it (through
:func:`snas.core.density.kept_count`), in weights or FLOPs. The target cost of a fraction
``f`` is the largest whole cost ``<= f * dense cost`` (with a relative slack of 1e-12, so a
fraction computed as ``cost / dense cost`` gives that cost back), and every allocation
returns the vector of largest cost not above it: never more than the target, and less by
under one weight per layer (for FLOPs, under one weight's cost per layer).
:func:`matching_cost` gives the fraction that puts a reference at a candidate's cost. A
target below the cheapest network (every layer keeping one weight) is a ConfigError.

:func:`reference_allocation` dispatches by name through :data:`ALLOCATIONS`. No torch here:
weights come as NumPy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from snas.core.budget import CostModel, cost_model_from_layers
from snas.core.errors import ConfigError
from snas.core.registry import Registry

_BISECTION_STEPS = 200  # halvings of the scale interval; stops early at float resolution
_SLACK = 1e-12  # relative: a fraction cost / dense must give back that cost

Weights = Sequence[Any] | Mapping[str, Any]


def _check_fraction(target_fraction: Any) -> float:
    f = target_fraction
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f <= 1.0:
        raise ConfigError(f"target_fraction must be a number in (0, 1] (fraction of the dense "
                          f"cost), got {f!r}")
    return float(f)


def _target_cost(model: CostModel, target_fraction: Any) -> int:
    """The largest whole cost the target allows; a ConfigError below the cheapest network."""
    f = _check_fraction(target_fraction)
    target = min(model.dense_cost, math.floor(f * model.dense_cost * (1.0 + _SLACK)))
    cheapest = sum(model.unit_costs)
    if target < cheapest:
        raise ConfigError(f"target_fraction={f:g} is below the cheapest network (every layer "
                          f"keeping one weight: {model.resource} fraction "
                          f"{cheapest / model.dense_cost:.4g})")
    return target


def _largest_within(model: CostModel, target: int, densities_at: Callable[[float], list[float]],
                    low: float, high: float) -> list[float]:
    """``densities_at(s)`` for the largest ``s`` in ``[low, high]`` whose exact cost is at
    most ``target``. The cost must be non-decreasing in ``s`` and within the target at
    ``low``."""
    if model.cost(densities_at(high)) <= target:
        return densities_at(high)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (low + high)
        if not low < mid < high:  # float resolution reached
            break
        if model.cost(densities_at(mid)) <= target:
            low = mid
        else:
            high = mid
    return densities_at(low)


def matching_cost(layers: Sequence[dict], density_vector: Sequence[float] | float,
                  resource: str = "weights") -> float:
    """The ``target_fraction`` that puts a reference at the cost of ``density_vector``:
    its exact cost (weights or FLOPs) as a fraction of the dense network's."""
    return cost_model_from_layers(layers, resource).fraction(density_vector)


def dense(layers: Sequence[dict], target_fraction: float = 1.0,
          resource: str = "weights") -> list[float]:
    """Every layer at density 1.0 (``target_fraction`` is checked, not used)."""
    cost_model_from_layers(layers, resource)  # validates the table and the resource
    _check_fraction(target_fraction)
    return [1.0] * len(layers)


def uniform(layers: Sequence[dict], target_fraction: float,
            resource: str = "weights") -> list[float]:
    """The same density in every layer, the largest whose cost is within the target."""
    model = cost_model_from_layers(layers, resource)
    target = _target_cost(model, target_fraction)
    # at 1 / max(n) every layer keeps exactly one weight (round(n / max n) <= 1)
    return _largest_within(model, target, lambda d: [d] * len(layers),
                           1.0 / max(model.numel), 1.0)


def erk_ratios(layers: Sequence[dict]) -> list[float]:
    """ERK's unscaled density of each layer: ``sum(shape) / prod(shape)``."""
    return [sum(layer["shape"]) / math.prod(layer["shape"]) for layer in layers]


def erk(layers: Sequence[dict], target_fraction: float,
        resource: str = "weights") -> list[float]:
    """Erdős–Rényi-Kernel densities at the target cost (module docstring)."""
    model = cost_model_from_layers(layers, resource)
    target = _target_cost(model, target_fraction)
    ratios = erk_ratios(layers)
    floors = [1.0 / n for n in model.numel]

    def at(eps: float) -> list[float]:
        return [min(1.0, max(floor, eps * r)) for r, floor in zip(ratios, floors, strict=True)]

    # eps = 0: every layer at its floor (one weight); eps = max 1 / r: every layer dense
    return _largest_within(model, target, at, 0.0, max(1.0 / r for r in ratios))


def _weight_arrays(layers: Sequence[dict], weights: Weights) -> list[np.ndarray]:
    """``weights`` (one array per layer, in order, or by layer name) as float64 arrays of
    the layers' shapes."""
    if isinstance(weights, Mapping):
        missing = [layer["name"] for layer in layers if layer["name"] not in weights]
        if missing:
            raise ConfigError(f"global_magnitude needs the weights of every layer; missing "
                              f"{', '.join(map(str, missing))}")
        weights = [weights[layer["name"]] for layer in layers]
    weights = list(weights)
    if len(weights) != len(layers):
        raise ConfigError(f"global_magnitude got {len(weights)} weight arrays for "
                          f"{len(layers)} layers")
    arrays = []
    for layer, w in zip(layers, weights, strict=True):
        array = np.asarray(w, dtype=np.float64)
        if array.shape != tuple(layer["shape"]):
            raise ConfigError(f"weights of layer {layer['name']!r} have shape "
                              f"{tuple(array.shape)}, expected {tuple(layer['shape'])}")
        if not np.isfinite(array).all():
            raise ConfigError(f"weights of layer {layer['name']!r} hold NaN or infinity")
        arrays.append(array)
    return arrays


def global_magnitude(layers: Sequence[dict], target_fraction: float, weights: Weights,
                     resource: str = "weights") -> list[float]:
    """Global magnitude pruning of the trained dense ``weights`` (one NumPy array per layer,
    in layer order or keyed by layer name) to the target cost (module docstring)."""
    model = cost_model_from_layers(layers, resource)
    target = _target_cost(model, target_fraction)
    arrays = _weight_arrays(layers, weights)
    magnitude = np.concatenate([np.abs(a).reshape(-1) for a in arrays])
    layer_of = np.repeat(np.arange(len(arrays)), model.numel)
    unit = np.asarray(model.unit_costs, dtype=np.int64)
    order = np.argsort(-magnitude, kind="stable")  # descending; ties: lower index first
    # every layer keeps its own first-ranked weight (no layer at density 0)
    first = order[np.unique(layer_of[order], return_index=True)[1]]
    forced = np.zeros(magnitude.size, dtype=bool)
    forced[first] = True
    rest = order[~forced[order]]
    spent = np.cumsum(unit[layer_of[rest]])
    take = int(np.searchsorted(spent, target - int(unit.sum()), side="right"))
    kept = np.bincount(layer_of[np.concatenate((first, rest[:take]))],
                       minlength=len(arrays))
    return [int(k) / n for k, n in zip(kept, model.numel, strict=True)]


#: Reference allocations by name; ``needs_weights`` marks those that read trained weights.
ALLOCATIONS: Registry = Registry("reference allocation")
ALLOCATIONS.register("dense", dense)
ALLOCATIONS.register("erk", erk)
ALLOCATIONS.register("global_magnitude", global_magnitude, needs_weights=True)
ALLOCATIONS.register("uniform", uniform)


def reference_allocation(name: str, layers: Sequence[dict], target_fraction: float,
                         resource: str = "weights", weights: Weights | None = None
                         ) -> list[float]:
    """The density vector of the reference allocation ``name`` at ``target_fraction`` of the
    dense network's cost (``resource``: ``weights`` or ``flops``). ``weights``: the trained
    dense network's weights, for ``global_magnitude``."""
    allocate = ALLOCATIONS[name]
    if ALLOCATIONS.meta(name, "needs_weights", False):
        if weights is None:
            raise ConfigError(f"reference allocation {name!r} needs the trained dense "
                              "network's weights (weights=...)")
        return allocate(layers, target_fraction, weights, resource)
    return allocate(layers, target_fraction, resource)


__all__ = ["ALLOCATIONS", "dense", "erk", "erk_ratios", "global_magnitude", "matching_cost",
           "reference_allocation", "uniform"]
