"""Will a trial's model fit in memory? Answered before anything is allocated.

The model is built on PyTorch's ``meta`` device (shapes only, no storage), and a trial's
resident tensors are counted from it: parameters and buffers (masks, scores, BatchNorm
statistics), one gradient per trainable parameter, and the optimizer's state (SGD with
momentum: one buffer per trainable parameter, AdamW: two). Activations are not counted:
they depend on the batch and are usually smaller for the models a search would refuse. A
model that cannot be built on ``meta`` (one whose construction reads tensor values) is not
estimated.
"""

from __future__ import annotations

import torch

from snas.core.config import SpaceConfig, to_dict
from snas.core.errors import ConfigError
from snas.core.machine import physical_memory
from trainables.kernels import make_kernel
from trainables.models import build_model


def training_bytes(space: SpaceConfig, input_shape: tuple[int, ...], num_classes: int
                   ) -> int | None:
    """Bytes a trial of ``space`` keeps resident (module docstring); None: not estimable."""
    try:
        with torch.device("meta"):
            model = build_model(space.model, make_kernel(space.kernel), input_shape,
                                num_classes, 1.0, torch.Generator().manual_seed(0))
    except (NotImplementedError, RuntimeError):
        return None
    tensors = [*model.parameters(), *model.buffers()]
    resident = sum(t.numel() * t.element_size() for t in tensors)
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    cfg = space.training
    states = 2 if cfg.optimizer == "adamw" else (1 if cfg.momentum > 0 else 0)
    return resident + trainable * (1 + states)


def device_memory(device: str) -> tuple[int | None, str]:
    """(bytes, description) of the memory a trial on ``device`` (``training.device``) has."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if wants_cuda and torch.cuda.is_available():
        index = int(device.split(":")[1]) if ":" in device else 0
        props = torch.cuda.get_device_properties(index)
        return int(props.total_memory), f"of GPU memory on {props.name}"
    return physical_memory(), "of memory on this machine"


def check_fits(space: SpaceConfig, input_shape: tuple[int, ...], num_classes: int) -> None:
    """A one-line ConfigError when one trial's model cannot fit in its device's memory."""
    needed = training_bytes(space, input_shape, num_classes)
    available, what = device_memory(space.training.device)
    if needed is None or available is None or needed <= available:
        return
    defaults = type(space.model.options)()
    given = to_dict(space.model.options)
    changed = ", ".join(f"model.{k}={v}" for k, v in given.items()
                        if v != getattr(defaults, k, object()))
    raise ConfigError(
        f"model {space.model.name} needs about {needed / 1e9:.1f} GB for its weights, "
        f"gradients and optimizer state, more than the {available / 1e9:.1f} GB {what}"
        + (f" ({changed})" if changed else "") + "; make it smaller")


__all__ = ["check_fits", "device_memory", "physical_memory", "training_bytes"]
