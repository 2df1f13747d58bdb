"""Masking kernels: how a masked layer chooses which weights are active.

Registered kernels (names as used in ``kernel.name`` of a search-space file):

- ``random``: fixed exact-count random mask, weights train (SNAS).
- ``dnw``: top-k |w| every forward, straight-through gradient to all weights (DNW).
- ``edge_popup``: frozen random weights, top-k learned scores (edge-popup).
- ``set``: random mask rewired after every epoch, prune-smallest/regrow-random (SET).

Adding a kernel = one private file with a :class:`MaskKernel` subclass, one options class
in :mod:`snas.config` and one line in :data:`KERNELS`; the contract tests pick it up.
"""

from __future__ import annotations

from snas.config import KernelConfig
from snas.errors import ConfigError
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
from trainables.kernels._topk import IncrementalTopK, kept_count, reference_topk_mask

KERNELS: dict[str, type[MaskKernel]] = {}


def register_kernel(cls: type[MaskKernel]) -> type[MaskKernel]:
    """Add a kernel class under ``cls.name``; a duplicate name is an error."""
    if cls.name in KERNELS:
        raise ValueError(f"kernel {cls.name!r} is already registered")
    KERNELS[cls.name] = cls
    return cls


for _cls in (RandomKernel, DNWKernel, EdgePopupKernel, SETKernel):
    register_kernel(_cls)


def make_kernel(config: KernelConfig) -> MaskKernel:
    """The kernel named by ``config.name`` with its options."""
    try:
        cls = KERNELS[config.name]
    except KeyError:
        raise ConfigError(f"kernel.name must be one of {', '.join(sorted(KERNELS))}, "
                          f"got {config.name!r}") from None
    return cls(config.options)


__all__ = [
    "KERNELS", "DNWKernel", "EdgePopupKernel", "IncrementalTopK", "MaskKernel", "MaskedConv2d",
    "MaskedLayer", "MaskedLinear", "RandomKernel", "SETKernel", "dense_uniform_", "kept_count",
    "make_kernel", "random_exact_mask", "reference_topk_mask", "register_kernel",
]
