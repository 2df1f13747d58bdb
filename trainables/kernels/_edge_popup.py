"""``edge_popup``: "What's hidden in a randomly weighted neural network" (Ramanujan et al.).

Weights are random and frozen; every weight has a learned score s. Each training forward
uses ``w * m`` where m keeps the k largest |s| of the layer (exact count); backward is
straight-through to |s|, dC/d|s| = dC/dW_eff * w, and on through the absolute value to s,
dC/ds = dC/dW_eff * w * sgn(s) (as in the public code, which ranks and differentiates
``scores.abs()``; the chain rule is folded into one autograd Function here). Nothing else
trains: models built with this kernel use non-affine BatchNorm and no biases
(``affine_norm``/``allows_bias``).

Eval mode selects too, as the paper does on every forward: the top-k of the *current*
scores, not the mask of the scores before the last optimizer step; once per eval phase
(first eval forward after a step, ``.eval()`` or a load), then the layer reuses the cached
``w * mask`` until the scores or weights change (:meth:`EdgePopupKernel.eval_inputs`).

Weight inits (sigma = sqrt(2 / fan_in), the Kaiming-normal std for ReLU):
``signed_constant`` (each weight +-sigma, random sign; the paper's best), ``kaiming_normal``
(N(0, sigma^2)), and ``scaled_*`` (sigma / sqrt(density), the paper's scaled variant).
Scores start like a default layer init, Kaiming-uniform with a = sqrt(5).

Speed: the weights are frozen, so the effective weight ``w * m`` is kept in reused storage
(:class:`~trainables.kernels._base.EffBuffer`) and, between top-k rebuilds, rewritten only
at the positions whose mask entry changed (the selector's ``changed``). The storage is
recomputed in full after a rebuild or a :class:`~trainables.kernels._topk.DeviceTopK` call, when the selector or the storage is new, and when the
weight tensor changed (its version counter; edits through ``weight.data`` are not seen, as
for the eval cache).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from trainables.kernels._base import (
    EffBuffer,
    MaskedLayer,
    MaskKernel,
    dense_uniform_,
)
from trainables.kernels._dnw import eff_buffer, update_topk_mask
from trainables.kernels._topk import DeviceTopK, IncrementalTopK


class _ScoreStraightThrough(torch.autograd.Function):
    """Forward: the effective weight ``w * m`` already in ``buffer``; backward: the scores get
    dC/dW_eff * w * sgn(s); the weights stay frozen."""

    @staticmethod
    def forward(ctx, scores: Tensor, weight: Tensor, buffer: EffBuffer,
                selector: IncrementalTopK | DeviceTopK) -> Tensor:
        ctx.save_for_backward(scores, weight)
        ctx.buffer, ctx.selector = buffer, selector
        out = buffer.tensor
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, None, None, None]:
        scores, weight = ctx.saved_tensors
        ctx.buffer.release()  # the graph that saved the effective weight is done with it
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        grad_scores = grad * weight  # dC/d|s| (straight-through), then through |s|:
        scratch = ctx.selector.scratch  # free between select() calls
        if (scratch is not None and scratch.numel() == scores.numel()
                and scratch.dtype == scores.dtype and scratch.device == scores.device):
            sign = torch.sgn(scores, out=scratch.view(scores.shape))
        else:
            sign = scores.sgn()
        return grad_scores.mul_(sign), None, None, None


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
        update_topk_mask(layer, layer.scores)

    def eval_inputs(self, layer: MaskedLayer) -> tuple[Tensor, ...]:
        return (layer.weight, layer.scores, layer.mask)

    def effective_weight(self, layer: MaskedLayer) -> Tensor:
        if not layer.training:  # once per eval phase (the layer caches the result)
            selector = update_topk_mask(layer, layer.scores)
            return layer.weight * selector.float_mask.view(layer.weight.shape)
        scores, weight = layer.scores, layer.weight
        selector = update_topk_mask(layer, scores)
        buffer = eff_buffer(layer)
        out, new = buffer.take(weight, torch.is_grad_enabled() and scores.requires_grad)
        token = buffer.token
        w = weight.detach()
        if (not new and token is not None and selector.changed is not None
                and token[0] is selector and token[1] == selector.generation - 1
                and token[2] is weight and token[3] == weight._version):
            idx = selector.changed  # frozen weights: only the changed mask entries move
            if idx.numel():
                out.view(-1).index_put_((idx,), w.reshape(-1).index_select(0, idx)
                                        * selector.float_mask.index_select(0, idx))
        else:
            torch.mul(w, selector.float_mask.view(w.shape), out=out)
        buffer.token = (selector, selector.generation, weight, weight._version)
        return _ScoreStraightThrough.apply(scores, weight, buffer, selector)
