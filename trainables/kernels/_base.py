"""Masked layers and the masking-kernel interface.

A *maskable layer* is one Linear or Conv2d weight tensor. :class:`MaskedLinear` and
:class:`MaskedConv2d` hold the weight, an optional bias and a ``mask`` buffer (bool, same
shape as the weight, True = active); a :class:`MaskKernel` decides how the mask is chosen, how
the weight is initialised and where gradients go. The forward pass always uses the
*effective weight* ``weight * mask`` (a bool mask multiplies in one pass).

Lifecycle: a model is built with every masked layer unconfigured, then
``layer.configure(density, generator)`` is called once per layer in the model's fixed
order; it initialises the weight (the init may depend on the density) and the mask.

Eval mode: the first eval forward computes the effective weight from the *current* values
(DNW and edge-popup select the top-k of the current |weights| / |scores| there, so the
evaluated network is never the mask of the values before the last optimizer step) and
caches it; later eval forwards reuse it. The cache is dropped on ``train()``, on
``load_state_dict`` and by :meth:`MaskedLayer.invalidate_cache`, and rebuilt when one of the
tensors it was computed from (:meth:`MaskKernel.eval_inputs`) was replaced or changed in
place since (its version counter: an optimizer step or ``copy_`` bumps it), e.g. a step
taken while the model stays in eval mode. In-place edits through ``p.data`` do not bump the
counter and are not seen: call ``invalidate_cache()`` after such edits.

Speed (CPU): masks are multiplied as 0/1 floats (:func:`float_mask`, or the top-k selector's
own float copy), several times faster than bool masks; kernels that recompute the effective
weight every step write it into reused storage (:class:`EffBuffer`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.kernels._topk import kept_count


class MaskKernel(ABC):
    """How masked layers choose their mask, initialise and train (one instance per model).

    Subclasses set the class attributes and implement :meth:`init_layer` and
    :meth:`effective_weight`. ``options`` is the kernel's options dataclass from
    :mod:`snas.core.config`.
    """

    name: ClassVar[str]
    #: Whether the layer weights get gradients (False: edge-popup trains scores only).
    trains_weights: ClassVar[bool] = True
    #: Whether normalisation layers of models using this kernel have gamma/beta.
    affine_norm: ClassVar[bool] = True
    #: Whether layers may have biases.
    allows_bias: ClassVar[bool] = True
    #: Whether the eval-mode effective weight depends only on :meth:`eval_inputs`, so eval
    #: may cache it until one of them changes.
    cacheable: ClassVar[bool] = True

    def __init__(self, options: Any = None):
        self.options = options

    @abstractmethod
    def init_layer(self, layer: MaskedLayer, generator: torch.Generator) -> None:
        """Initialise weight, mask and any extra parameters of a configured layer."""

    @abstractmethod
    def effective_weight(self, layer: MaskedLayer) -> Tensor:
        """The weight the training-mode forward uses; may update ``layer.mask``."""

    def eval_inputs(self, layer: MaskedLayer) -> tuple[Tensor, ...]:
        """The tensors the eval-mode effective weight is computed from (read after it was
        computed): the eval cache is rebuilt when one of them is replaced or changed in
        place. Default: the weight and the mask."""
        return (layer.weight, layer.mask)

    def epoch_end(self, layer: MaskedLayer, generator: torch.Generator) -> None:
        """Called after every training epoch (SET rewires here). Default: nothing."""

    def after_load(self, layer: MaskedLayer) -> None:
        """Called after ``load_state_dict`` filled the layer. Default: nothing."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.options!r})"


def dense_uniform_(weight: Tensor, fan_in: int, generator: torch.Generator) -> None:
    """PyTorch's default Linear/Conv init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), with an
    explicit fan-in (SC-SDC gives sparse layers the dense layer's fan-in)."""
    bound = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        weight.uniform_(-bound, bound, generator=generator)


def float_mask(layer: MaskedLayer) -> Tensor:
    """``layer.mask`` as 0/1 in the weight's dtype, cached until the mask changes.

    Multiplying by a float mask is several times faster than by a bool one on CPU (and gives
    bitwise the same product). The cache is keyed on the mask's storage and version counter,
    so in-place edits of ``layer.mask`` (SET rewiring, ``load_state_dict``) are seen.
    """
    mask, dtype = layer.mask, layer.weight.dtype
    key = layer._maskf_key
    if key is None or key[0] is not mask or key[1] != mask._version or key[2] != dtype:
        # bool -> float through uint8: the same values, a much faster copy kernel on CPU
        layer._maskf = mask.view(torch.uint8).to(dtype)
        layer._maskf_key = (mask, mask._version, dtype)
    return layer._maskf


class EffBuffer:
    """Reused storage for a training forward's effective weight (saves a large allocation
    per step).

    The storage is handed out as a *view* inside a custom autograd Function; views share the
    base's version counter, so a graph that still holds an old effective weight fails loudly
    (instead of computing with changed values) if the storage is rewritten under it. To keep
    that from happening in normal use, the storage is reused only after the Function's
    backward ran (:meth:`release`), or when the last hand-out built no graph; otherwise
    :meth:`take` allocates a new one (e.g. two forwards before one backward).
    """

    __slots__ = ("free", "tensor", "token")

    def __init__(self) -> None:
        self.tensor: Tensor | None = None
        self.free = True
        self.token: object = None  # what the content was computed from (owner's choice)

    def take(self, like: Tensor, builds_graph: bool) -> tuple[Tensor, bool]:
        """(storage shaped like ``like``, whether it is new, i.e. holds no previous content)."""
        t = self.tensor
        new = (t is None or not self.free or t.shape != like.shape or t.dtype != like.dtype
               or t.device != like.device)
        if new:
            t = self.tensor = torch.empty_like(like, memory_format=torch.contiguous_format)
            self.token = None
        self.free = not builds_graph
        return t, new

    def release(self) -> None:
        self.free = True


def random_exact_mask(shape: torch.Size, k: int, generator: torch.Generator) -> Tensor:
    """A boolean mask with exactly ``k`` True entries at uniformly random positions (seeded)."""
    numel = math.prod(shape)
    idx = torch.randperm(numel, generator=generator)[:k]
    mask = torch.zeros(numel, dtype=torch.bool)
    mask[idx] = True
    return mask.view(shape)


class MaskedLayer(nn.Module):
    """Common state of masked Linear/Conv2d layers: weight, bias, mask, kernel, density."""

    def __init__(self, weight_shape: tuple[int, ...], fan_in: int, bias: bool,
                 kernel: MaskKernel):
        super().__init__()
        if bias and not kernel.allows_bias:
            bias = False
        self.kernel = kernel
        self.fan_in = fan_in
        self.weight = nn.Parameter(torch.empty(weight_shape), requires_grad=kernel.trains_weights)
        self.bias = nn.Parameter(torch.zeros(weight_shape[0])) if bias else None
        self.register_buffer("mask", torch.ones(weight_shape, dtype=torch.bool))
        self.density: float | None = None
        self.k: int | None = None
        self.track_gradient = True
        self._eff: Tensor | None = None  # last training forward's effective weight
        self._cached_eff: Tensor | None = None
        self._cached_from: tuple[tuple[Tensor, int], ...] = ()  # (input, version) of the cache
        self._maskf: Tensor | None = None  # float_mask() cache
        self._maskf_key: tuple | None = None

    # ---- configuration -------------------------------------------------------------
    def configure(self, density: float, generator: torch.Generator,
                  init_fan_in: int | None = None) -> None:
        """Set the density (fraction kept), then initialise weight and mask through the kernel."""
        self.density = float(density)
        self.k = kept_count(self.density, self.weight.numel())
        if init_fan_in is not None:
            self.fan_in = init_fan_in
        self.kernel.init_layer(self, generator)
        self.invalidate_cache()

    @property
    def active_weights(self) -> int:
        return int(self.mask.count_nonzero())

    @property
    def realized_density(self) -> float:
        return self.active_weights / self.weight.numel()

    # ---- forward -----------------------------------------------------------------
    def effective_weight(self) -> Tensor:
        if self.training or not self.kernel.cacheable:
            self._cached_eff = None
            eff = self.kernel.effective_weight(self)
            # Under no_grad a kernel may hand back the weight Parameter itself: keeping it
            # would register ``_eff`` as a parameter of the module.
            if (self.training and self.track_gradient and torch.is_grad_enabled()
                    and eff.requires_grad and not isinstance(eff, nn.Parameter)):
                eff.retain_grad()
                self._eff = eff
            return eff
        if self._cached_eff is None or not self._cache_is_current():
            with torch.no_grad():
                self._cached_eff = self.kernel.effective_weight(self).detach()
            # read after the computation: DNW/edge-popup replace the mask while computing
            self._cached_from = tuple((t, t._version) for t in self.kernel.eval_inputs(self))
        return self._cached_eff

    def _cache_is_current(self) -> bool:
        """Whether the eval cache's inputs are the same tensors, unchanged since."""
        inputs = self.kernel.eval_inputs(self)
        cached = self._cached_from
        if len(inputs) != len(cached):
            return False
        for t, (was, version) in zip(inputs, cached, strict=True):
            if t is not was or t._version != version:
                return False
        return True

    def masked_gradient(self) -> Tensor | None:
        """dC/dW_eff * mask from the last backward (EGF's g_l), or None before any backward.

        For every kernel this equals the layer gradient times the mask: random/SET weight
        gradients are already masked, DNW's straight-through weight gradient is dC/dW_eff,
        and edge-popup's relevant gradient is the effective weight's (docs/definitions.md).
        """
        if self._eff is None or self._eff.grad is None:
            return None
        return self._eff.grad * float_mask(self)

    def invalidate_cache(self) -> None:
        self._cached_eff = None
        self._cached_from = ()

    def train(self, mode: bool = True) -> MaskedLayer:
        self.invalidate_cache()
        return super().train(mode)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        if self.k is not None:
            self.kernel.after_load(self)
        self.invalidate_cache()
        selector = getattr(self, "selector", None)
        if selector is not None:
            selector.reset()

    def extra_repr(self) -> str:
        return f"kernel={self.kernel.name}, density={self.density}, k={self.k}"


class MaskedLinear(MaskedLayer):
    """A Linear layer whose forward uses ``kernel``'s effective weight."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool, kernel: MaskKernel):
        super().__init__((out_features, in_features), in_features, bias, kernel)
        self.in_features = in_features
        self.out_features = out_features

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.effective_weight(), self.bias)


class MaskedConv2d(MaskedLayer):
    """A Conv2d layer whose forward uses ``kernel``'s effective weight."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, stride: int = 1,
                 padding: int = 0, groups: int = 1, bias: bool, kernel: MaskKernel):
        shape = (out_channels, in_channels // groups, kernel_size, kernel_size)
        super().__init__(shape, shape[1] * kernel_size * kernel_size, bias, kernel)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding, self.groups = (
            kernel_size, stride, padding, groups)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.effective_weight(), self.bias, self.stride, self.padding, 1,
                        self.groups)
