"""``dnw``: Discovering Neural Wirings (Wortsman et al. 2019), per-layer variant.

Every training forward keeps the k weights of largest magnitude (exact count, tie rule of
:mod:`trainables.kernels._topk`). Backward is straight-through: every weight, pruned
("hallucinated") ones included, receives dC/dW_eff as if it had been in the forward pass;
nothing flows through a pruned edge to upstream nodes because the forward used the masked
weight. Biases and BatchNorm are dense and train normally.

Eval mode selects too, as the paper does on every forward: the top-k of the *current*
weights, so the evaluated network is not the mask of the weights before the last optimizer
step. The weights cannot change during an eval phase, so the layer selects once (first eval
forward after a step, ``.eval()`` or a load) and caches ``w * mask`` until the weights change
(:class:`~trainables.kernels._base.MaskedLayer`).

Speed: the mask comes from the layer's top-k selector (:mod:`trainables.kernels._topk`:
incremental on CPU, sync-free ``torch.topk`` on CUDA), the effective weight is
``w * float_mask`` written into reused storage (:class:`~trainables.kernels._base.EffBuffer`).
The selector's bound check writes its temporary into that same storage just before
``w * float_mask`` overwrites it, so the step touches one weight-sized buffer fewer.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.kernels._base import (
    EffBuffer,
    MaskedLayer,
    MaskKernel,
    dense_uniform_,
)
from trainables.kernels._topk import DeviceTopK, IncrementalTopK, selector_class


class _StraightThroughMask(torch.autograd.Function):
    """Forward ``w * m`` into the layer's reused storage; backward passes the gradient to
    ``w`` unmasked."""

    @staticmethod
    def forward(ctx, weight: Tensor, mask: Tensor, buffer: EffBuffer) -> Tensor:
        out = torch.mul(weight, mask, out=buffer.tensor)
        ctx.buffer = buffer
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:
        ctx.buffer.release()  # the graph that saved the effective weight is done with it
        return grad, None, None


def topk_selector(layer: MaskedLayer, values: Tensor) -> IncrementalTopK | DeviceTopK:
    """The layer's top-k selector for ``values``: a new one when the kept count or the device
    family (:func:`~trainables.kernels._topk.selector_class`, e.g. after ``.to("cuda")``)
    changed."""
    selector = getattr(layer, "selector", None)
    family = selector_class(values)
    if (type(selector) is not family or selector.k != layer.k
            or selector.numel != layer.weight.numel()):
        selector = layer.selector = family(layer.k, layer.weight.numel())
    return selector


def eff_buffer(layer: MaskedLayer) -> EffBuffer:
    """The layer's reused effective-weight storage (created on first use)."""
    buffer = getattr(layer, "_eff_buffer", None)
    if buffer is None:
        buffer = layer._eff_buffer = EffBuffer()
    return buffer


def update_topk_mask(layer: MaskedLayer, values: Tensor,
                     absolute: bool = True) -> IncrementalTopK | DeviceTopK:
    """Set ``layer.mask`` to the exact top-k of ``|values|`` (or of ``values``)."""
    selector = topk_selector(layer, values)
    layer.mask = selector.select_abs(values) if absolute else selector.select(values)
    return selector


class DNWKernel(MaskKernel):
    name = "dnw"

    def init_layer(self, layer: MaskedLayer, generator: torch.Generator) -> None:
        dense_uniform_(layer.weight, layer.fan_in, generator)
        layer.selector = None
        update_topk_mask(layer, layer.weight)

    def effective_weight(self, layer: MaskedLayer) -> Tensor:
        if not layer.training:  # once per eval phase (the layer caches the result)
            selector = update_topk_mask(layer, layer.weight)
            return layer.weight * selector.float_mask.view(layer.weight.shape)
        weight = layer.weight
        buffer = eff_buffer(layer)
        out, _ = buffer.take(weight, torch.is_grad_enabled() and weight.requires_grad)
        selector = topk_selector(layer, weight)  # its check may use the storage first
        layer.mask = selector.select_abs(weight, scratch=out)
        return _StraightThroughMask.apply(weight, selector.float_mask.view(weight.shape), buffer)
