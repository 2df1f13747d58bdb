"""What every snas model shares: its maskable layers in a fixed order, and densities.

The order of :func:`maskable_layers` (module registration order) defines the density
vector: entry i is the density of the i-th maskable layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from snas.core.errors import ConfigError
from trainables.kernels import MaskedLayer


@dataclass(frozen=True)
class LayerSpec:
    """A maskable layer as the search sees it: name, weight shape, fan-in."""

    name: str
    shape: tuple[int, ...]
    fan_in: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def maskable_layers(model: nn.Module) -> list[tuple[str, MaskedLayer]]:
    """The model's masked layers in density-vector order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, MaskedLayer)]


def layer_specs(model: nn.Module) -> list[LayerSpec]:
    return [LayerSpec(name, tuple(m.weight.shape), m.fan_in) for name, m in maskable_layers(model)]


def expand_density(density: float | Sequence[float], layers: Sequence[LayerSpec]) -> list[float]:
    """A scalar density means the same density for every layer; a vector must match."""
    if isinstance(density, (int, float)):
        values = [float(density)] * len(layers)
    else:
        values = [float(d) for d in density]
        if len(values) != len(layers):
            names = ", ".join(spec.name for spec in layers)
            raise ConfigError(f"density vector has {len(values)} entries but the model has "
                              f"{len(layers)} maskable layers ({names}); give one per layer "
                              "or a single scalar")
    for i, d in enumerate(values):
        if not (0.0 < d <= 1.0):  # also rejects NaN
            raise ConfigError(f"density[{i}] must be in (0, 1] (fraction of weights kept), "
                              f"got {d!r}")
    return values


def configure_densities(model: nn.Module, densities: Sequence[float],
                        generator: torch.Generator) -> None:
    """Configure every masked layer with its density, in density-vector order."""
    layers = maskable_layers(model)
    assert len(layers) == len(densities)
    for (_, layer), density in zip(layers, densities, strict=True):
        layer.configure(density, generator)


def output_positions(model: nn.Module, input_shape: Sequence[int]) -> list[int]:
    """Output positions per example of each masked layer, in density-vector order.

    One for a Linear layer, ``H_out * W_out`` for a conv: each active weight costs that many
    multiply-accumulates per example. Found by one forward pass of a zero example in eval
    mode (the model's mode is restored).
    """
    layers = maskable_layers(model)
    found: dict[int, int] = {}

    def hook(index: int) -> Any:
        def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            found[index] = math.prod(output.shape[2:]) if output.dim() > 2 else 1
        return record

    handles = [layer.register_forward_hook(hook(i)) for i, (_, layer) in enumerate(layers)]
    was_training = model.training
    try:
        model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    # A layer the forward never reached (not expected) costs as a Linear layer.
    return [found.get(i, 1) for i in range(len(layers))]
