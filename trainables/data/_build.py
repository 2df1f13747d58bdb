"""From a :class:`~snas.core.config.DatasetConfig` to a :class:`DeviceDataset`: split, cap,
move to the device, normalise.

Splits are seeded by ``split_seed`` only, with one numpy random stream per step, so each
step is unaffected by the options of the later ones (changing ``val_fraction`` keeps the
test split; changing ``max_train`` keeps val and test):

1. test: the official test split when the dataset has one, else a stratified
   ``test_fraction`` of the pool (``test_fraction`` is then ignored);
2. val: a stratified ``val_fraction`` of what remains; the rest is the training split;
3. ``max_train``: a stratified seeded subset of the training split.

Pixel data is scaled to [0, 1], then every split is normalised with the per-channel mean
and std of the training split alone (samples of shape ``(features,)`` count as one
channel).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from snas.core.catalog import DATASETS
from snas.core.config import DatasetConfig
from snas.core.errors import ConfigError, DataError
from trainables.data._device import DeviceDataset

# Distinct streams of the split seed, one per step.
_TEST_STREAM, _VAL_STREAM, _CAP_STREAM = 1, 2, 3
# Samples per chunk when reducing statistics (bounds the float64 temporaries).
_STATS_CHUNK = 4096


def stratified_split(y: np.ndarray, count: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(len(y))`` into sorted ``(rest, taken)`` with exactly ``count`` taken.

    Each class contributes ``floor`` or ``ceil`` of its share ``count * n_class / n``; the
    leftover units go to the classes with the largest fractional shares (ties broken at
    random), and the members taken from each class are a random subset.
    """
    n = len(y)
    if not 0 <= count <= n:
        raise ValueError(f"count must be in [0, {n}], got {count!r}")
    classes, inverse = np.unique(np.asarray(y), return_inverse=True)
    sizes = np.bincount(inverse, minlength=len(classes))
    share = sizes * count / n if n else sizes.astype(float)
    take = np.floor(share).astype(np.int64)
    leftover = count - int(take.sum())
    if leftover:
        order = np.lexsort((rng.random(len(classes)), -(share - take)))
        take[order[:leftover]] += 1
    taken = [rng.permutation(np.flatnonzero(inverse == c))[:k] for c, k in enumerate(take)]
    taken_idx = np.sort(np.concatenate(taken)) if taken else np.zeros(0, np.int64)
    keep = np.ones(n, dtype=bool)
    keep[taken_idx] = False
    return np.flatnonzero(keep), taken_idx


def _fraction_count(n: int, fraction: float, key: str, name: str) -> int:
    """``round(fraction * n)``, at least 1 and at most ``n - 1`` when ``fraction > 0``."""
    if fraction <= 0:
        return 0
    if n < 2:
        raise DataError(f"dataset {name!r}: {n} sample(s) left, too few to split off "
                        f"dataset.{key}={fraction}")
    return min(max(1, round(fraction * n)), n - 1)


def _to_device(x: np.ndarray, y: np.ndarray, idx: np.ndarray, scale: float,
               device: torch.device) -> tuple[Tensor, Tensor]:
    # Index and transfer in the stored dtype (uint8 for pixels: 4x less to copy), then
    # convert on the device.
    xt = torch.from_numpy(np.ascontiguousarray(x[idx])).to(device)
    xt = xt.to(torch.float32)
    if scale != 1.0:
        xt.div_(scale)
    yt = torch.from_numpy(np.asarray(y[idx], dtype=np.int64)).to(device)
    return xt, yt


def _channel_view(x: Tensor) -> Tensor:
    """``x`` as (N, channels, values): images by channel, flat features as one channel."""
    if x.dim() == 4:
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
    return x.reshape(x.shape[0], 1, x.shape[1])


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) std of ``x``, reduced in float64 chunks.

    A channel with std below 1e-8 (constant, or a single sample) gets std 1.
    """
    view = _channel_view(x)
    channels = view.shape[1]
    count = view.shape[0] * view.shape[2]
    if count == 0:
        return (torch.zeros(channels, device=x.device), torch.ones(channels, device=x.device))
    total = torch.zeros(channels, dtype=torch.float64, device=x.device)
    for chunk in view.split(_STATS_CHUNK):
        total += chunk.to(torch.float64).sum(dim=(0, 2))
    mean = total / count
    sq = torch.zeros(channels, dtype=torch.float64, device=x.device)
    for chunk in view.split(_STATS_CHUNK):
        sq += (chunk.to(torch.float64) - mean.view(1, -1, 1)).square().sum(dim=(0, 2))
    std = (sq / count).sqrt()
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return mean.to(torch.float32), std.to(torch.float32)


def _normalise_(x: Tensor, mean: Tensor, std: Tensor) -> None:
    view = _channel_view(x)
    view.sub_(mean.view(1, -1, 1)).div_(std.view(1, -1, 1))


def _resolve_device(device: torch.device | str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device must be a torch device such as cpu or cuda:0, got "
                          f"{device!r}") from exc


def load_dataset(cfg: DatasetConfig, device: torch.device | str = "cpu") -> DeviceDataset:
    """Load, split and normalise the dataset ``cfg`` describes, as tensors on ``device``.

    The same ``cfg`` gives identical tensors on every call. The decoded raw arrays are
    cached per process, so repeated calls (trials in one worker) do not reparse files.
    """
    if not isinstance(cfg, DatasetConfig):
        raise ConfigError(f"load_dataset takes a DatasetConfig, got {type(cfg).__name__}")
    device = _resolve_device(device)
    raw = DATASETS[cfg.name](cfg)
    name = cfg.name

    pool = np.arange(len(raw.train_y))
    if raw.test_x is None:
        rng = np.random.default_rng((cfg.split_seed, _TEST_STREAM))
        count = _fraction_count(len(pool), cfg.test_fraction, "test_fraction", name)
        pool, test_idx = stratified_split(raw.train_y, count, rng)
        test_src = (raw.train_x, raw.train_y)
    else:
        test_idx = np.arange(len(raw.test_y))
        test_src = (raw.test_x, raw.test_y)

    rng = np.random.default_rng((cfg.split_seed, _VAL_STREAM))
    count = _fraction_count(len(pool), cfg.val_fraction, "val_fraction", name)
    rest, val = stratified_split(raw.train_y[pool], count, rng)
    train_idx, val_idx = pool[rest], pool[val]

    if cfg.max_train is not None and cfg.max_train < len(train_idx):
        rng = np.random.default_rng((cfg.split_seed, _CAP_STREAM))
        _, keep = stratified_split(raw.train_y[train_idx], cfg.max_train, rng)
        train_idx = train_idx[keep]

    train_x, train_y = _to_device(raw.train_x, raw.train_y, train_idx, raw.scale, device)
    val_x, val_y = _to_device(raw.train_x, raw.train_y, val_idx, raw.scale, device)
    test_x, test_y = _to_device(*test_src, test_idx, raw.scale, device)

    mean, std = channel_stats(train_x)
    for x in (train_x, val_x, test_x):
        _normalise_(x, mean, std)

    return DeviceDataset(train_x, train_y, val_x, val_y, test_x, test_y,
                         num_classes=raw.num_classes, mean=mean, std=std, name=name,
                         augment=cfg.augment, crop_padding=cfg.crop_padding, hflip=cfg.hflip,
                         config=cfg)
