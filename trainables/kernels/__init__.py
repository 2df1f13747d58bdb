"""Masking kernels: how a masked layer chooses which weights are active.

Registered kernels (names as used in ``kernel.name`` of a search-space file):

- ``random``: fixed exact-count random mask, weights train (SNAS).
- ``dnw``: top-k |w| every forward, straight-through gradient to all weights (DNW).
- ``edge_popup``: frozen random weights, top-k learned scores (edge-popup).
- ``set``: random mask rewired after every epoch, prune-smallest/regrow-random (SET).

Adding a kernel = one private file with a :class:`MaskKernel` subclass plus one entry (its
options class and registry line) in :mod:`snas.core.catalog`; the contract tests over
:data:`KERNELS` pick it up (``docs/extending.md``).
"""

from __future__ import annotations

from snas.core.catalog import KERNELS
from snas.core.config import KernelConfig
from trainables.kernels._base import (
    MaskedConv2d,
    MaskedLayer,
    MaskedLinear,
    MaskKernel,
    dense_uniform_,
    random_exact_mask,
)
from trainables.kernels._dnw import DNWKernel
from trainables.kernels._edge_popup import EdgePopupKernel
from trainables.kernels._random import RandomKernel
from trainables.kernels._set import SETKernel
from trainables.kernels._topk import (
    DeviceTopK,
    IncrementalTopK,
    kept_count,
    reference_topk_mask,
    selector_class,
)


def make_kernel(config: KernelConfig) -> MaskKernel:
    """The kernel named by ``config.name`` with its options."""
    return KERNELS[config.name](config.options)


__all__ = [
    "KERNELS", "DNWKernel", "DeviceTopK", "EdgePopupKernel", "IncrementalTopK", "MaskKernel", "MaskedConv2d",
    "MaskedLayer", "MaskedLinear", "RandomKernel", "SETKernel", "dense_uniform_", "kept_count",
    "make_kernel", "random_exact_mask", "reference_topk_mask", "selector_class",
]
