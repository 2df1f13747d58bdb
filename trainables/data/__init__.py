"""Datasets for trials, held whole on the trial's device.

:func:`load_dataset` turns a :class:`~snas.config.DatasetConfig` into a
:class:`DeviceDataset`: seeded, stratified train/val/test splits as normalised tensors on
one device, batched and augmented there without a DataLoader. :data:`DATASETS` maps each
dataset name to its loader; a new source is one private file that calls
:func:`register_dataset`, plus one import line below.
"""

from trainables.data import _mlxtend, _sklearn, _synthetic, _torchvision  # noqa: F401  (register)
from trainables.data._build import channel_stats, load_dataset, stratified_split
from trainables.data._device import SPLITS, DeviceDataset
from trainables.data._registry import DATASETS, DatasetRegistry, RawDataset, register_dataset

__all__ = [
    "DATASETS",
    "SPLITS",
    "DatasetRegistry",
    "DeviceDataset",
    "RawDataset",
    "channel_stats",
    "load_dataset",
    "register_dataset",
    "stratified_split",
]
