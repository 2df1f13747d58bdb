"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes).

The data ships inside scikit-learn, so nothing is read from ``data_root``. There is no
official test split; :func:`~trainables.data.load_dataset` carves one with
``test_fraction``.
"""

from __future__ import annotations

import functools

import numpy as np

from snas.core.config import DatasetConfig
from trainables.data._raw import RawDataset, readonly


@functools.lru_cache(maxsize=1)
def _load_digits() -> RawDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # Pixel values are the integers 0..16; uint8 keeps the cache small.
    x = bunch.data.astype(np.uint8).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    return RawDataset(readonly(x), readonly(y), num_classes=10, scale=16.0)


def load_digits(cfg: DatasetConfig) -> RawDataset:
    """The 1797 sklearn digits as ``(N, 1, 8, 8)`` uint8 arrays, pixel scale 16."""
    return _load_digits()
