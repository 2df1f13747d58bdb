"""SC-SDC, Same Capacity Sparse vs Dense Comparison (Tessera thesis §3.2.1, App. A.1):
the dense/sparse MLP pair and the Tune trainable that trains either member.

For a comparison width ``N_W`` and a maximum width ``N_MW`` the pair is

- **dense**: the space's MLP at width ``N_W``, every weight active (density 1);
- **sparse**: the same MLP at width ``N_MW`` with a fixed random exact-count mask per
  maskable layer that keeps exactly as many weights as the dense layer has (first layer
  ``I x N_W``, hidden layers ``N_W x N_W``, last layer ``N_W x O``).

The pair is matched layer by layer on the models themselves: both are built and their
maskable layers (:func:`trainables.models.layer_specs`, model order) are zipped, so skip
connections, BatchNorm and the grouping of hidden layers into cells change nothing (they
add no maskable weights; BatchNorm's affine parameters and PReLU slopes are not masked
and are not counted as active weights, in either network). Both networks have no Linear
biases. The sparse layer's density is ``count / numel`` with ``count`` the dense layer's
weight count; :func:`trainables.kernels.kept_count` turns it back into exactly ``count``.

Same initial distribution (thesis step 2): every active weight of both networks is drawn
from PyTorch's default ``U(-1/sqrt(f), 1/sqrt(f))`` with ``f`` the *dense* layer's fan-in,
so the sparse net's first layer uses ``I`` (its own fan-in) and every later layer uses
``N_W`` (not ``N_MW``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from snas.core.config import SpaceConfig
from snas.core.errors import ConfigError
from trainables.kernels import kept_count, make_kernel
from trainables.models import LayerSpec, build_model, layer_specs, maskable_layers
from trainables.tune_trainable import SnasTrainable, density_key

#: Key of the Tune config holding the per-layer init fan-ins of a sparse member.
INIT_FAN_IN_KEY = "init_fan_in"
#: Key of the Tune config holding what the trial is within the comparison (stored as is).
ROLE_KEY = "sc_sdc"


@dataclass(frozen=True)
class PairLayer:
    """One maskable layer of a same-capacity pair: shapes, the active-weight count both
    members have, the sparse layer's density and the init fan-in both use."""

    name: str
    dense_shape: tuple[int, ...]
    sparse_shape: tuple[int, ...]
    active_weights: int
    init_fan_in: int

    @property
    def sparse_density(self) -> float:
        return self.active_weights / math.prod(self.sparse_shape)


def width_space(space: SpaceConfig, width: int) -> SpaceConfig:
    """The space's MLP at ``width`` with Linear biases off (SC-SDC compares weights only)."""
    if space.model.name != "mlp":
        raise ConfigError(f"SC-SDC compares MLPs: model.name must be 'mlp', got "
                          f"{space.model.name!r}")
    options = replace(space.model.options, width=int(width), bias=False)
    return space.replace(model=replace(space.model, options=options))


def model_specs(space: SpaceConfig, input_shape: tuple[int, ...], num_classes: int
                ) -> list[LayerSpec]:
    """The maskable layers (name, weight shape, fan-in) of the space's model, built on CPU."""
    model = build_model(space.model, make_kernel(space.kernel), input_shape, num_classes, 1.0,
                        torch.Generator().manual_seed(0))
    return layer_specs(model)


def pair_layers(dense: Sequence[LayerSpec], sparse: Sequence[LayerSpec]) -> list[PairLayer]:
    """Match a dense and a sparse model layer by layer (same names, same layer count, no
    sparse layer smaller than its dense one)."""
    if [s.name for s in dense] != [s.name for s in sparse]:
        raise ConfigError(f"the dense and the sparse model have different maskable layers: "
                          f"{[s.name for s in dense]} vs {[s.name for s in sparse]}")
    out = []
    for d, s in zip(dense, sparse, strict=True):
        if len(d.shape) != len(s.shape) or any(a > b for a, b in zip(d.shape, s.shape,
                                                                      strict=True)):
            raise ConfigError(f"layer {d.name}: dense shape {list(d.shape)} does not fit in "
                              f"sparse shape {list(s.shape)}; the comparison width must not "
                              "exceed the max width")
        out.append(PairLayer(d.name, d.shape, s.shape, d.numel, d.fan_in))
    for layer in out:  # the density must give back exactly the dense count
        numel = math.prod(layer.sparse_shape)
        if kept_count(layer.sparse_density, numel) != layer.active_weights:
            raise AssertionError(f"{layer.name}: density {layer.sparse_density!r} of {numel} "
                                 f"does not keep {layer.active_weights}")
    return out


def same_capacity_pair(space: SpaceConfig, input_shape: tuple[int, ...], num_classes: int,
                       width: int, max_width: int) -> tuple[SpaceConfig, SpaceConfig,
                                                            list[PairLayer]]:
    """(dense space at ``width``, sparse space at ``max_width``, the matched layers)."""
    if not 1 <= width <= max_width:
        raise ConfigError(f"comparison width must be in [1, {max_width}] (the max width), "
                          f"got {width}")
    dense, sparse = width_space(space, width), width_space(space, max_width)
    layers = pair_layers(model_specs(dense, input_shape, num_classes),
                         model_specs(sparse, input_shape, num_classes))
    return dense, sparse, layers


def pair_configs(dense: SpaceConfig, sparse: SpaceConfig, layers: Sequence[PairLayer],
                 role: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Tune configs (wire format of :class:`SameCapacityTrainable`) of the dense and the
    sparse member of a pair from :func:`same_capacity_pair`. ``role`` (JSON-able) is stored
    in both under :data:`ROLE_KEY`, with ``role`` ("dense"/"sparse"), ``width`` (the dense
    width) and ``max_width`` added."""
    meta = {**(role or {}), "width": dense.model.options.width,
            "max_width": sparse.model.options.width}
    dense_cfg: dict[str, Any] = {"space": dense.to_dict(),
                                 **{density_key(i): 1.0 for i in range(len(layers))},
                                 ROLE_KEY: {**meta, "role": "dense"}}
    sparse_cfg: dict[str, Any] = {
        "space": sparse.to_dict(),
        **{density_key(i): layer.sparse_density for i, layer in enumerate(layers)},
        INIT_FAN_IN_KEY: [layer.init_fan_in for layer in layers],
        ROLE_KEY: {**meta, "role": "sparse"}}
    return dense_cfg, sparse_cfg


def reinit_with_fan_in(model: nn.Module, init_fan_in: Sequence[int],
                       generator: torch.Generator) -> None:
    """Re-initialise every maskable layer (weights and mask, same density) with the given
    per-layer init fan-in, in model order. Parameters keep their identity (an optimizer
    built on them stays valid); the work happens on CPU, where the generator lives."""
    layers = maskable_layers(model)
    if len(layers) != len(init_fan_in):
        raise ConfigError(f"{INIT_FAN_IN_KEY} has {len(init_fan_in)} entries but the model has "
                          f"{len(layers)} maskable layers")
    device = next(model.parameters()).device
    if device.type != "cpu":
        model.to("cpu")
    for (_, layer), fan_in in zip(layers, init_fan_in, strict=True):
        layer.configure(layer.density, generator, init_fan_in=int(fan_in))
    if device.type != "cpu":
        model.to(device)


class SameCapacityTrainable(SnasTrainable):
    """:class:`~trainables.tune_trainable.SnasTrainable` for one member of an SC-SDC pair.

    Wire format: the parent's (``space``, ``d_00``...), plus for the sparse member
    ``init_fan_in`` (one fan-in per maskable layer: the dense layer's), with which the
    trial's weights and masks are drawn again from a generator seeded by
    ``training.seed`` before the first epoch. ``sc_sdc`` (the trial's place in the
    comparison) is not read here.

    A comparison may keep no checkpoints (``snas compare`` without ``--checkpoints``), and
    then it wants no wiring record either (those of wide networks take many seconds): the
    record is built only when a checkpoint is written (:attr:`wiring_record_in_step`).
    """

    wiring_record_in_step = False

    def _build(self, config: Mapping[str, Any]) -> None:
        super()._build(config)
        fan_in = config.get(INIT_FAN_IN_KEY)
        if fan_in is not None:
            seed = self.trial.space.training.seed
            reinit_with_fan_in(self.trial.model, fan_in, torch.Generator().manual_seed(seed))


__all__ = ["INIT_FAN_IN_KEY", "ROLE_KEY", "PairLayer", "SameCapacityTrainable", "model_specs",
           "pair_configs", "pair_layers", "reinit_with_fan_in", "same_capacity_pair",
           "width_space"]
