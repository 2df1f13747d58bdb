"""Models whose Linear/Conv layers are masked by a kernel, and the model registry.

``build_model`` builds the named model with the kernel injected, configures every maskable
layer with its density (a scalar for all layers, or one entry per layer in
:func:`maskable_layers` order) and, for kernels that train scores only (edge-popup),
freezes every other parameter. Adding a model = one file with a builder plus one entry (its
options class and registry line) in :mod:`snas.core.catalog` (``docs/extending.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from snas.core.catalog import MODELS
from snas.core.config import ModelConfig
from trainables.kernels import MaskKernel
from trainables.models._base import (
    LayerSpec,
    configure_densities,
    expand_density,
    layer_specs,
    maskable_layers,
    output_positions,
)


def build_model(config: ModelConfig, kernel: MaskKernel, input_shape: tuple[int, ...],
                num_classes: int, density: float | Sequence[float],
                generator: torch.Generator) -> nn.Module:
    """Build, mask and initialise a model (on CPU; move it with ``.to(device)``)."""
    model = MODELS[config.name](config.options, kernel, tuple(input_shape), num_classes)
    densities = expand_density(density, layer_specs(model))
    configure_densities(model, densities, generator)
    if not kernel.trains_weights:
        for name, param in model.named_parameters():
            if not name.endswith("scores"):
                param.requires_grad_(False)
    return model


__all__ = ["MODELS", "LayerSpec", "build_model", "configure_densities",
           "expand_density", "layer_specs", "maskable_layers", "output_positions",
           ]
