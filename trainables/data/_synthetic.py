"""``synthetic``: seeded random data with learnable labels, for shape and plumbing tests.

Each class has its own random mean pattern; a sample is its class mean plus unit Gaussian
noise, so a model can learn the labels. Shape, class count and size come from
``synthetic_shape``, ``synthetic_classes`` and ``synthetic_size``; ``split_seed`` seeds the
data as well as the splits. There is no official test split.
"""

from __future__ import annotations

import functools

import numpy as np

from snas.core.config import DatasetConfig
from trainables.data._raw import RawDataset, readonly

# Class means are N(0, MEAN_SCALE^2) per element; with unit noise the classes overlap a
# little in one element but are well separated over a whole sample.
MEAN_SCALE = 1.0


@functools.lru_cache(maxsize=4)
def _make_synthetic(shape: tuple[int, ...], classes: int, size: int, seed: int) -> RawDataset:
    rng = np.random.default_rng((seed, 0x5EED))
    means = rng.normal(0.0, MEAN_SCALE, size=(classes, *shape)).astype(np.float32)
    # Balanced labels (sizes differ by at most one), in random order.
    y = rng.permutation(np.arange(size) % classes).astype(np.int64)
    x = means[y] + rng.standard_normal(size=(size, *shape), dtype=np.float32)
    return RawDataset(readonly(x), readonly(y), num_classes=classes, scale=1.0)


def load_synthetic(cfg: DatasetConfig) -> RawDataset:
    """``synthetic_size`` float32 samples of ``synthetic_shape`` in ``synthetic_classes``."""
    return _make_synthetic(tuple(cfg.synthetic_shape), cfg.synthetic_classes,
                           cfg.synthetic_size, cfg.split_seed)
