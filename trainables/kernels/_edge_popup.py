"""``edge_popup``: "What's hidden in a randomly weighted neural network" (Ramanujan et al.).

Weights are random and frozen; every weight has a learned score s. Each training forward
uses ``w * m`` where m keeps the k largest |s| of the layer (exact count); backward is
straight-through to |s|, dC/d|s| = dC/dW_eff * w, and on through the absolute value to s
(as in the public code, which ranks and differentiates ``scores.abs()``). Nothing else trains: models built
with this kernel use non-affine BatchNorm and no biases (``affine_norm``/``allows_bias``).

Weight inits (sigma = sqrt(2 / fan_in), the Kaiming-normal std for ReLU):
``signed_constant`` (each weight +-sigma, random sign; the paper's best), ``kaiming_normal``
(N(0, sigma^2)), and ``scaled_*`` (sigma / sqrt(density), the paper's scaled variant).
Scores start like a default layer init, Kaiming-uniform with a = sqrt(5).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from trainables.kernels._base import MaskedLayer, MaskKernel, dense_uniform_
from trainables.kernels._dnw import update_topk_mask


class _ScoreStraightThrough(torch.autograd.Function):
    """Forward ``w * m``; backward gives the (absolute) scores dC/dW_eff * w; the weights
    stay frozen."""

    @staticmethod
    def forward(ctx, magnitude: Tensor, weight: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        ctx.save_for_backward(weight)
        return weight * mask

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # noqa: D102
        (weight,) = ctx.saved_tensors
        return grad * weight, None, None


class EdgePopupKernel(MaskKernel):
    name = "edge_popup"
    trains_weights = False
    affine_norm = False
    allows_bias = False

    def init_layer(self, layer: MaskedLayer, generator: torch.Generator) -> None:
        init = self.options.weight_init if self.options is not None else "signed_constant"
        sigma = math.sqrt(2.0 / layer.fan_in)
        if init.startswith("scaled_"):
            sigma /= math.sqrt(layer.density)
        with torch.no_grad():
            if init.endswith("signed_constant"):
                signs = torch.randint(0, 2, layer.weight.shape, generator=generator)
                layer.weight.copy_((signs * 2 - 1).to(layer.weight.dtype) * sigma)
            elif init.endswith("kaiming_normal"):
                layer.weight.normal_(0.0, sigma, generator=generator)
            else:
                raise ValueError(f"unknown edge_popup weight_init {init!r}")
        if not isinstance(getattr(layer, "scores", None), nn.Parameter):
            layer.scores = nn.Parameter(torch.empty_like(layer.weight))
        dense_uniform_(layer.scores, layer.fan_in, generator)
        layer.selector = None
        update_topk_mask(layer, layer.scores.detach().abs())

    def effective_weight(self, layer: MaskedLayer) -> Tensor:
        if not layer.training:
            return layer.weight * layer.mask
        magnitude = layer.scores.abs()
        update_topk_mask(layer, magnitude.detach())
        return _ScoreStraightThrough.apply(magnitude, layer.weight, layer.mask)
