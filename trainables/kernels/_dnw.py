"""``dnw``: Discovering Neural Wirings (Wortsman et al. 2019), per-layer variant.

Every training forward keeps the k weights of largest magnitude (exact count, tie rule of
:mod:`trainables.kernels._topk`). Backward is straight-through: every weight, pruned
("hallucinated") ones included, receives dC/dW_eff as if it had been in the forward pass;
nothing flows through a pruned edge to upstream nodes because the forward used the masked
weight. Biases and BatchNorm are dense and train normally.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.kernels._base import MaskedLayer, MaskKernel, dense_uniform_
from trainables.kernels._topk import IncrementalTopK


class _StraightThroughMask(torch.autograd.Function):
    """Forward ``w * m``; backward passes the gradient to ``w`` unmasked."""

    @staticmethod
    def forward(ctx, weight: Tensor, mask: Tensor) -> Tensor:  # noqa: D102
        return weight * mask

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: D102
        return grad, None


def update_topk_mask(layer: MaskedLayer, magnitude: Tensor) -> None:
    """Recompute ``layer.mask`` as the exact top-k of ``magnitude`` (incremental)."""
    selector = getattr(layer, "selector", None)
    if selector is None or selector.k != layer.k:
        selector = layer.selector = IncrementalTopK(layer.k, magnitude.numel())
    layer.mask = selector.select(magnitude)


class DNWKernel(MaskKernel):
    name = "dnw"

    def init_layer(self, layer: MaskedLayer, generator: torch.Generator) -> None:
        dense_uniform_(layer.weight, layer.fan_in, generator)
        layer.selector = None
        update_topk_mask(layer, layer.weight.detach().abs())

    def effective_weight(self, layer: MaskedLayer) -> Tensor:
        if layer.training:
            update_topk_mask(layer, layer.weight.detach().abs())
        return _StraightThroughMask.apply(layer.weight, layer.mask)
