"""Models whose Linear/Conv layers are masked by a kernel, and the model registry.

``build_model`` builds the named model with the kernel injected, configures every maskable
layer with its density (a scalar for all layers, or one entry per layer in
:func:`maskable_layers` order) and, for kernels that train scores only (edge-popup),
freezes every other parameter. Adding a model = one file with a builder, one options class
in :mod:`snas.config` and one line in :data:`MODELS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from snas.config import ModelConfig
from snas.errors import ConfigError
from trainables.kernels import MaskKernel
from trainables.models._base import (
    LayerSpec,
    configure_densities,
    expand_density,
    layer_specs,
    maskable_layers,
    output_positions,
)
from trainables.models.convn import build_conv2, build_conv4, build_conv6, build_conv8
from trainables.models.dag import build_dag
from trainables.models.mlp import MLP, build_mlp
from trainables.models.neural_graph import build_neural_graph
from trainables.models.resnet_cifar import build_resnet_cifar
from trainables.models.torchvision_resnet import (
    build_resnet18,
    build_resnet50,
    build_wide_resnet50_2,
)
from trainables.models.wide_resnet import build_wide_resnet

ModelBuilder = Callable[[object, MaskKernel, tuple[int, ...], int], nn.Module]

MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str, builder: ModelBuilder) -> None:
    """Add a model builder under ``name``; a duplicate name is an error."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = builder


register_model("mlp", build_mlp)
register_model("resnet_cifar", build_resnet_cifar)
register_model("wide_resnet", build_wide_resnet)
register_model("conv2", build_conv2)
register_model("conv4", build_conv4)
register_model("conv6", build_conv6)
register_model("conv8", build_conv8)
register_model("resnet18", build_resnet18)
register_model("resnet50", build_resnet50)
register_model("wide_resnet50_2", build_wide_resnet50_2)
register_model("dag", build_dag)
register_model("neural_graph", build_neural_graph)


def build_model(config: ModelConfig, kernel: MaskKernel, input_shape: tuple[int, ...],
                num_classes: int, density: float | Sequence[float],
                generator: torch.Generator) -> nn.Module:
    """Build, mask and initialise a model (on CPU; move it with ``.to(device)``)."""
    try:
        builder = MODELS[config.name]
    except KeyError:
        raise ConfigError(f"model.name must be one of {', '.join(sorted(MODELS))}, "
                          f"got {config.name!r}") from None
    model = builder(config.options, kernel, tuple(input_shape), num_classes)
    densities = expand_density(density, layer_specs(model))
    configure_densities(model, densities, generator)
    if not kernel.trains_weights:
        for name, param in model.named_parameters():
            if not name.endswith("scores"):
                param.requires_grad_(False)
    return model


__all__ = ["MLP", "MODELS", "LayerSpec", "build_model", "configure_densities",
           "expand_density", "layer_specs", "maskable_layers", "output_positions",
           "register_model"]
