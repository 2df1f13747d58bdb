"""Datasets for trials, held whole on the trial's device.

:func:`load_dataset` turns a :class:`~snas.core.config.DatasetConfig` into a
:class:`DeviceDataset`: seeded, stratified train/val/test splits as normalised tensors on
one device, batched and augmented there without a DataLoader. :data:`DATASETS` (the
registry in :mod:`snas.core.catalog`) maps each dataset name to its loader; a new source is
one private file with a loader plus one registry line (``docs/extending.md``).
"""

from snas.core.catalog import DATASETS
from trainables.data._build import channel_stats, load_dataset, stratified_split
from trainables.data._device import SPLITS, DeviceDataset
from trainables.data._raw import RawDataset

__all__ = [
    "DATASETS",
    "SPLITS",
    "DeviceDataset",
    "RawDataset",
    "channel_stats",
    "load_dataset",
    "stratified_split",
]
