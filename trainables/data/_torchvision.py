"""Torchvision datasets read from ``data_root``: mnist, fashion_mnist, kmnist, cifar10,
cifar100, each with its official train/test split.

Nothing is downloaded unless ``dataset.download`` is true. When the files are missing, or
torchvision refuses them, the loader raises a one-line :class:`~snas.core.errors.DataError`
naming the dataset, the folder looked in and what torchvision expects there.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from snas.core.config import DatasetConfig
from snas.core.errors import ConfigError, DataError
from trainables.data._raw import RawDataset, readonly

_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class _Source:
    """Where torchvision keeps one dataset under its root, and how to build it."""

    class_name: str  # the torchvision.datasets class
    folder: str  # relative to data_root, as torchvision lays it out
    files: tuple[str, ...]  # inside ``folder``
    num_classes: int
    scale: float = 255.0

    def expected(self) -> str:
        return f"{self.folder}/ with {', '.join(self.files)}"


_SOURCES: dict[str, _Source] = {
    "mnist": _Source("MNIST", "MNIST/raw", _MNIST_FILES, 10),
    "fashion_mnist": _Source("FashionMNIST", "FashionMNIST/raw", _MNIST_FILES, 10),
    "kmnist": _Source("KMNIST", "KMNIST/raw", _MNIST_FILES, 10),
    "cifar10": _Source("CIFAR10", "cifar-10-batches-py",
                       ("data_batch_1..5", "test_batch", "batches.meta"), 10),
    "cifar100": _Source("CIFAR100", "cifar-100-python", ("train", "test", "meta"), 100),
}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _missing(root: str, source: _Source) -> list[str]:
    folder = os.path.join(root, source.folder)
    if not os.path.isdir(folder):
        return [source.folder + "/"]
    names = []
    for name in source.files:
        if name == "data_batch_1..5":
            names.extend(f"data_batch_{i}" for i in range(1, 6))
        else:
            names.append(name)
    return [f"{source.folder}/{n}" for n in names if not os.path.isfile(os.path.join(folder, n))]


def _arrays(dataset: object, source: _Source) -> tuple[np.ndarray, np.ndarray]:
    """(x as (N, C, H, W) uint8, y as int64) from a constructed torchvision dataset."""
    data = dataset.data  # type: ignore[attr-defined]
    targets = dataset.targets  # type: ignore[attr-defined]
    if source.class_name.startswith("CIFAR"):
        x = np.asarray(data).transpose(0, 3, 1, 2)  # stored as NHWC
    else:
        x = np.asarray(data.numpy())[:, None, :, :]  # (N, 28, 28) uint8 tensor
    y = np.asarray(targets.numpy() if hasattr(targets, "numpy") else targets, dtype=np.int64)
    return readonly(x.astype(np.uint8, copy=False)), readonly(y)


@functools.lru_cache(maxsize=2)
def _load(name: str, root: str, download: bool) -> RawDataset:
    source = _SOURCES[name]
    hint = (f"torchvision expects {source.expected()} under dataset.data_root; set "
            f"dataset.download: true to fetch them when a network is available")
    if not download:
        if not os.path.isdir(root):
            raise DataError(f"dataset {name!r}: data_root folder {root!r} does not exist; "
                            f"{hint}")
        missing = _missing(root, source)
        if missing:
            raise DataError(f"dataset {name!r}: missing {', '.join(missing)} in {root!r}; "
                            f"{hint}")
    import torchvision.datasets

    cls = getattr(torchvision.datasets, source.class_name)
    try:
        train = cls(root, train=True, download=download)
        test = cls(root, train=False, download=download)
        train_x, train_y = _arrays(train, source)
        test_x, test_y = _arrays(test, source)
    except Exception as exc:  # torchvision raises RuntimeError, OSError, URLError, ValueError...
        action = "download into" if download else "reading"
        raise DataError(f"dataset {name!r}: {action} {root!r} failed ({_one_line(exc)}); "
                        f"{hint}") from exc
    return RawDataset(train_x, train_y, num_classes=source.num_classes, scale=source.scale,
                      test_x=test_x, test_y=test_y)


def _loader(name: str):
    def load(cfg: DatasetConfig) -> RawDataset:
        if cfg.data_root is None:
            raise ConfigError(f"dataset.data_root must be set for dataset {name!r}: a folder "
                              f"holding {_SOURCES[name].folder}/ as torchvision lays it out")
        # Absolute, so the cache key and the error messages name one folder. A relative path
        # resolves against the current directory, which Ray Tune changes per trial.
        root = os.path.abspath(os.path.expanduser(cfg.data_root))
        return _load(name, root, cfg.download)

    load.__name__ = f"load_{name}"
    load.__qualname__ = load.__name__
    load.__doc__ = (f"torchvision {_SOURCES[name].class_name} from ``data_root`` with its "
                    f"official train/test split, as (N, C, H, W) uint8 arrays, pixel scale 255.")
    return load


load_mnist = _loader("mnist")
load_fashion_mnist = _loader("fashion_mnist")
load_kmnist = _loader("kmnist")
load_cifar10 = _loader("cifar10")
load_cifar100 = _loader("cifar100")
