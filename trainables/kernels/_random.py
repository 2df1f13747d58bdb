"""``random``: a fixed random mask with exactly the kept count (SNAS, Tessera §3.2.1).

The mask is drawn once from the trial's seeded generator and never changes; the active
weights train. Weights start from PyTorch's default init with the layer's fan-in, or
``init_fan_in`` when given, so the active weights have the variance of a dense layer of
that fan-in.

Inactive weights are kept at exactly zero (zeroed at init and after every load, and their
gradient is masked), so the forward uses the weight tensor as it is: no per-step
``weight * mask`` pass. Zero stays zero under SGD/AdamW with weight decay because the
masked gradient is zero there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.kernels._base import (
    MaskedLayer,
    MaskKernel,
    dense_uniform_,
    float_mask,
    random_exact_mask,
)


class _MaskGradient(torch.autograd.Function):
    """Identity forward (a view, no copy); backward multiplies the gradient by the mask
    (given as 0/1 floats: several times faster than a bool mask on CPU, same values)."""

    @staticmethod
    def forward(ctx, weight: Tensor, mask: Tensor) -> Tensor:
        ctx.save_for_backward(mask)
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class RandomKernel(MaskKernel):
    name = "random"

    def init_layer(self, layer: MaskedLayer, generator: torch.Generator) -> None:
        fan_in = getattr(self.options, "init_fan_in", None) or layer.fan_in
        dense_uniform_(layer.weight, fan_in, generator)
        layer.mask.copy_(random_exact_mask(layer.weight.shape, layer.k, generator))
        self.after_load(layer)

    def after_load(self, layer: MaskedLayer) -> None:
        with torch.no_grad():
            layer.weight.mul_(float_mask(layer))

    def effective_weight(self, layer: MaskedLayer) -> Tensor:
        if not layer.weight.requires_grad or not torch.is_grad_enabled():
            return layer.weight
        return _MaskGradient.apply(layer.weight, float_mask(layer))
