"""The on-device dataset: split tensors on one device, batching and augmentation there.

No DataLoader and no worker processes: the whole dataset is a handful of tensors on the
trial's device, a batch is an index into them, and augmentation (random crop with padding,
horizontal flip) runs on the whole batch with vectorised ops. All randomness comes from the
``torch.Generator`` the caller passes, so a seed fixes the batch order and the augmentation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from snas.core.errors import ConfigError

SPLITS = ("train", "val", "test")


class DeviceDataset:
    """Train/val/test tensors on one device with seeded batching and augmentation.

    ``*_x`` are float32 of shape ``(N, *input_shape)``, already normalised with the
    per-channel ``mean``/``std`` of the train split; ``*_y`` are int64 labels in
    ``[0, num_classes)``. ``augment``, ``crop_padding`` and ``hflip`` are the defaults
    :meth:`batches` uses for the train split. Augmentation needs image samples
    ``(channels, height, width)``. ``config`` is the :class:`~snas.core.config.DatasetConfig` the
    dataset was loaded from, or ``None`` when built directly from tensors.
    """

    def __init__(self, train_x: Tensor, train_y: Tensor, val_x: Tensor, val_y: Tensor,
                 test_x: Tensor, test_y: Tensor, *, num_classes: int, mean: Tensor | None = None,
                 std: Tensor | None = None, name: str = "custom", augment: bool = False,
                 crop_padding: int = 0, hflip: bool = False, config: Any = None) -> None:
        tensors = {"train": (train_x, train_y), "val": (val_x, val_y), "test": (test_x, test_y)}
        shape = tuple(train_x.shape[1:])
        for split, (x, y) in tensors.items():
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"{split}_x and {split}_y must have the same length, got "
                                 f"{x.shape[0]} and {y.shape[0]}")
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"{split}_x samples have shape {tuple(x.shape[1:])}, "
                                 f"train_x samples {shape}")
            if x.device != train_x.device or y.device != train_x.device:
                raise ValueError(f"all tensors must be on one device, {split} is on {x.device} "
                                 f"and {y.device}, train_x on {train_x.device}")
        if len(shape) not in (1, 3):
            raise ValueError(f"samples must have shape (features,) or (channels, height, "
                             f"width), got {shape}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding!r}")
        channels = shape[0] if len(shape) == 3 else 1
        if mean is None:
            mean = torch.zeros(channels, device=train_x.device)
        if std is None:
            std = torch.ones(channels, device=train_x.device)
        if mean.shape != (channels,) or std.shape != (channels,):
            raise ValueError(f"mean and std must have shape ({channels},), got "
                             f"{tuple(mean.shape)} and {tuple(std.shape)}")

        self.train_x, self.train_y = train_x, train_y
        self.val_x, self.val_y = val_x, val_y
        self.test_x, self.test_y = test_x, test_y
        self.num_classes = int(num_classes)
        self.input_shape: tuple[int, ...] = shape
        self.mean = mean.to(device=train_x.device, dtype=torch.float32)
        self.std = std.to(device=train_x.device, dtype=torch.float32)
        self.name = name
        self.augment = bool(augment)
        self.crop_padding = int(crop_padding)
        self.hflip = bool(hflip)
        self.config = config
        if self.augment:
            self._check_augmentable()
        # Zero padding means black pixels in [0, 1] space, i.e. -mean/std once normalised.
        self._pad_value = (-self.mean / self.std).view(-1, 1, 1)

    # ------------------------------------------------------------------------------------
    # Inspection

    @property
    def device(self) -> torch.device:
        """The device every tensor lives on."""
        return self.train_x.device

    def split(self, split: str) -> tuple[Tensor, Tensor]:
        """The ``(x, y)`` tensors of ``split`` (train, val or test)."""
        if split == "train":
            return self.train_x, self.train_y
        if split == "val":
            return self.val_x, self.val_y
        if split == "test":
            return self.test_x, self.test_y
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")

    def split_sizes(self) -> dict[str, int]:
        """The number of samples in each split, ``{"train": ..., "val": ..., "test": ...}``."""
        return {split: int(self.split(split)[1].shape[0]) for split in SPLITS}

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.split_sizes().items())
        return (f"DeviceDataset(name={self.name!r}, input_shape={self.input_shape}, "
                f"num_classes={self.num_classes}, {sizes}, device={self.device})")

    # ------------------------------------------------------------------------------------
    # Batching

    def batches(self, split: str, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None,
                augment: bool | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """Iterate over ``split`` in batches of ``batch_size``; the last partial batch is kept.

        With ``shuffle`` the order is ``torch.randperm`` drawn from ``generator`` when this
        method is called; without it, batches follow the stored order and are views of the
        split tensors (do not modify them in place). ``augment`` defaults to the dataset's
        ``augment`` for the train split and to False otherwise; augmentation draws from
        ``generator`` batch by batch. A generator may live on the CPU or on the dataset's
        device; a CPU generator gives the same batches on every device.
        """
        x, y = self.split(split)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ConfigError(f"generator must be a torch.Generator or None, got "
                              f"{type(generator).__name__}")
        if augment is None:
            augment = self.augment and split == "train"
        if augment:
            self._check_augmentable()
        order = None
        if shuffle:
            order = torch.randperm(x.shape[0], generator=generator,
                                   device=_random_device(generator, self.device))
            order = order.to(self.device)
        return self._iterate(x, y, batch_size, order, generator, bool(augment))

    def _iterate(self, x: Tensor, y: Tensor, batch_size: int, order: Tensor | None,
                 generator: torch.Generator | None, augment: bool
                 ) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, x.shape[0], batch_size):
            if order is None:
                xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                xb, yb = x.index_select(0, idx), y.index_select(0, idx)
            if augment:
                xb = self.augment_batch(xb, generator)
            yield xb, yb

    # ------------------------------------------------------------------------------------
    # Augmentation

    def _check_augmentable(self) -> None:
        if len(self.input_shape) != 3:
            raise ConfigError(f"augmentation needs image samples (channels, height, width), "
                              f"dataset {self.name!r} has samples of shape {self.input_shape}; "
                              f"set dataset.augment: false")

    def augment_batch(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A new batch: each image of ``x`` (B, C, H, W) randomly cropped and flipped.

        Crop: pad by ``crop_padding`` with black pixels (the normalised value of 0) and
        take a random H x W window, i.e. shift the image by up to ``crop_padding`` pixels in
        each direction. Flip: mirror left-right with probability 1/2 when ``hflip``. The crop
        offsets are drawn from ``generator`` first, then the flips.
        """
        self._check_augmentable()
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")
        out = x
        batch, channels, height, width = x.shape
        rand_device = _random_device(generator, self.device)
        pad = self.crop_padding
        if pad > 0 and batch > 0:
            offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator,
                                    device=rand_device).to(x.device)
            padded = self._pad_value.to(x.dtype).expand(channels, height + 2 * pad,
                                                        width + 2 * pad)
            padded = padded.unsqueeze(0).repeat(batch, 1, 1, 1)
            padded[:, :, pad:pad + height, pad:pad + width] = x
            # Two gathers pick each sample's window: rows, then columns.
            rows = offsets[0].view(batch, 1, 1, 1) + torch.arange(height, device=x.device
                                                                  ).view(1, 1, height, 1)
            out = padded.gather(2, rows.expand(batch, channels, height, width + 2 * pad))
            cols = offsets[1].view(batch, 1, 1, 1) + torch.arange(width, device=x.device
                                                                  ).view(1, 1, 1, width)
            out = out.gather(3, cols.expand(batch, channels, height, width))
        if self.hflip and batch > 0:
            flip = torch.rand(batch, generator=generator, device=rand_device).to(x.device) < 0.5
            out = torch.where(flip.view(batch, 1, 1, 1), out.flip(3), out)
        if out is x:
            out = x.clone()
        return out


def _random_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    """Where random numbers are drawn: on the generator's device, or the data's without one."""
    return generator.device if generator is not None else device
