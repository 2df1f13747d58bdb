"""What a density vector costs, and the nearest density vector within a budget.

A trial's cost is counted exactly as the masking kernels realise it: layer ``l`` of
``n_l`` weights at density ``d_l`` keeps ``kept_count(d_l, n_l) = max(1, round(d_l * n_l))``
weights (:func:`kept_count`, the same rule as ``trainables.kernels``). The cost of a vector
is ``sum_l kept_count(d_l, n_l) * c_l`` with ``c_l = 1`` for ``weights`` and ``c_l`` = the
layer's output positions per example (1 for Linear, H_out * W_out for a conv) for
``flops`` (multiply-accumulates of the maskable layers). The dense network's cost is
``sum_l n_l * c_l``.

Budget policy (:meth:`DensityBudget.project`): a suggestion over the cap is replaced by the
nearest vector within it, the Euclidean projection onto the half-space
``sum_l w_l d_l <= cap`` with ``w_l`` each layer's share of the dense cost, clipped to the
search range ``[low, high]``:  ``d_l(lam) = clip(d_l - lam * w_l, low, high)`` with the
smallest ``lam >= 0`` whose exact (rounded) cost fits. Big layers give up the most density,
small ones almost none, and a vector already within the cap is left as it is. The trial
then trains the projected vector; the store and the searcher see that vector. A cap below
the cheapest network the range allows (every layer at ``low``) is a configuration error.

No torch here: the controller and the searchers use it in the driver.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from snas.core.density import kept_count
from snas.core.errors import ConfigError

RESOURCES = ("weights", "flops")
_BISECTION_STEPS = 64


@dataclass(frozen=True)
class CostModel:
    """The cost of density vectors of one network.

    Args:
        numel: weights of each maskable layer, in density-vector order.
        positions: output positions per example of each layer (1 for Linear).
        resource: ``weights`` or ``flops`` (see the module docstring).
    """

    numel: tuple[int, ...]
    positions: tuple[int, ...]
    resource: str = "weights"

    def __post_init__(self) -> None:
        if self.resource not in RESOURCES:
            raise ConfigError(f"budget.resource must be one of {', '.join(RESOURCES)}, "
                              f"got {self.resource!r}")
        numel, positions = tuple(self.numel), tuple(self.positions)
        if not numel or len(numel) != len(positions):
            raise ValueError(f"numel and positions must be non-empty and of equal length, got "
                             f"{len(numel)} and {len(positions)}")
        if not all(isinstance(v, int) and v >= 1 for v in (*numel, *positions)):
            raise ValueError("numel and positions must be integers >= 1")
        object.__setattr__(self, "numel", numel)
        object.__setattr__(self, "positions", positions)

    @property
    def unit_costs(self) -> tuple[int, ...]:
        """Cost of one active weight in each layer."""
        return self.positions if self.resource == "flops" else (1,) * len(self.numel)

    @property
    def dense_cost(self) -> int:
        return sum(n * c for n, c in zip(self.numel, self.unit_costs, strict=True))

    def expand(self, density: float | Sequence[float]) -> list[float]:
        """A scalar means every layer at that density; a vector must have one per layer."""
        if isinstance(density, (int, float)):
            return [float(density)] * len(self.numel)
        values = [float(d) for d in density]
        if len(values) == 1:
            return values * len(self.numel)
        if len(values) != len(self.numel):
            raise ValueError(f"density vector has {len(values)} entries, the network has "
                             f"{len(self.numel)} maskable layers")
        return values

    def cost(self, density: float | Sequence[float]) -> int:
        """Exact cost of training ``density`` (scalar or one entry per layer)."""
        return sum(kept_count(d, n) * c for d, n, c
                   in zip(self.expand(density), self.numel, self.unit_costs, strict=True))

    def fraction(self, density: float | Sequence[float]) -> float:
        """Cost as a fraction of the dense network's."""
        return self.cost(density) / self.dense_cost


@dataclass(frozen=True)
class DensityBudget:
    """A cap of ``max_fraction`` of the dense network's cost (see the module docstring)."""

    model: CostModel
    max_fraction: float

    def __post_init__(self) -> None:
        f = self.max_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 < f <= 1.0:
            raise ConfigError(f"budget.max_fraction must be a number in (0, 1], got {f!r}")

    @property
    def limit(self) -> float:
        """The largest allowed cost (same unit as :meth:`CostModel.cost`)."""
        return self.max_fraction * self.model.dense_cost

    def allows(self, density: float | Sequence[float]) -> bool:
        return self.model.cost(density) <= self.limit

    def check_feasible(self, low: float) -> None:
        """Raise a ConfigError when even every layer at ``low`` is over the cap."""
        cheapest = self.model.fraction(low)
        if cheapest > self.max_fraction:
            raise ConfigError(
                f"budget.max_fraction={self.max_fraction:g} is below the cheapest network the "
                f"density range allows ({self.model.resource} fraction {cheapest:.4g} with "
                f"every layer at density.low={low:g}); raise budget.max_fraction or lower "
                "density.low")

    def project(self, density: Sequence[float], low: float, high: float) -> list[float]:
        """The nearest vector to ``density`` (clipped to ``[low, high]``) within the cap.

        ``density`` has one entry per layer, or a single entry for a uniform search (one
        density for every layer); the result has the same length.
        """
        values = [min(high, max(low, float(d))) for d in density]
        if self.allows(values):
            return values
        self.check_feasible(low)
        if len(values) == 1:
            weights = [1.0]
        else:
            dense = self.model.dense_cost
            weights = [n * c / dense for n, c in zip(self.model.numel, self.model.unit_costs,
                                                     strict=True)]

        def at(lam: float) -> list[float]:
            return [min(high, max(low, d - lam * w)) for d, w in zip(values, weights,
                                                                     strict=True)]

        # Cost is non-increasing in lam; at lam_max every entry sits at low (feasible).
        lo_lam, hi_lam = 0.0, max((d - low) / w for d, w in zip(values, weights, strict=True))
        for _ in range(_BISECTION_STEPS):
            mid = 0.5 * (lo_lam + hi_lam)
            if self.allows(at(mid)):
                hi_lam = mid
            else:
                lo_lam = mid
            if hi_lam - lo_lam <= 1e-15 * max(1.0, hi_lam):
                break
        result = at(hi_lam)
        if not self.allows(result):  # pragma: no cover - guarded by check_feasible
            result = [low] * len(values)
        return result


def cost_model_from_layers(layers: Sequence[dict], resource: str) -> CostModel:
    """A CostModel from a search's stored layer list (``[{name, shape, positions}, ...]``)."""
    return CostModel(tuple(math.prod(layer["shape"]) for layer in layers),
                     tuple(int(layer.get("positions", 1)) for layer in layers), resource)


__all__ = ["RESOURCES", "CostModel", "DensityBudget", "cost_model_from_layers"]
