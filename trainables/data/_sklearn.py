"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes).

The data ships inside scikit-learn, so nothing is read from ``data_root``. There is no
official test split; :func:`~trainables.data.load_dataset` carves one with
``test_fraction``.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from snas.core.config import DatasetConfig
from snas.core.errors import DataError
from trainables.data._raw import RawDataset, readonly


@functools.lru_cache(maxsize=1)
def _load_digits() -> RawDataset:
    # The file ``sklearn.datasets.load_digits`` reads (64 pixels and the label per row),
    # read directly: importing scikit-learn costs ~2 s, in the driver and in every new
    # trial actor, for a 0.03 s read. The same arrays (a test compares them).
    package = importlib.util.find_spec("sklearn")
    if package is None or not package.submodule_search_locations:
        raise DataError("dataset digits needs scikit-learn, which is not installed")
    path = Path(package.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    values = np.loadtxt(path, delimiter=",")
    # Pixel values are the integers 0..16; uint8 keeps the cache small.
    x = values[:, :-1].astype(np.uint8).reshape(-1, 1, 8, 8)
    y = values[:, -1].astype(np.int64)
    return RawDataset(readonly(x), readonly(y), num_classes=10, scale=16.0)


def load_digits(cfg: DatasetConfig) -> RawDataset:
    """The 1797 sklearn digits as ``(N, 1, 8, 8)`` uint8 arrays, pixel scale 16."""
    return _load_digits()
