"""Contract tests: every plug-in of every registry meets its family's contract.

The suites are parametrised over the registries' names (``MODELS``, ``KERNELS``,
``SEARCHERS``, ``DATASETS`` of :mod:`snas.core.catalog`), so a new entry is tested without
touching this file, plus one throw-away plug-in per family defined below exactly as
``docs/extending.md`` says: an options dataclass, an implementation, one ``register`` line
(registered for this module's tests only, then removed with ``Registry.unregister``).
A new model also needs a row of small options in ``tests/_small_models.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from _small_models import SLOW_MODELS, SMALL_MODELS
from torch import nn

from snas.core.catalog import DATASETS, KERNELS, MODELS, SEARCHERS
from snas.core.config import (
    DatasetConfig,
    KernelConfig,
    ModelConfig,
    SpaceConfig,
    parse_space_text,
)
from snas.core.density import kept_count
from snas.core.errors import ConfigError, DataError
from snas.core.schema import spec
from snas.searchers import DensitySearcher, DensitySpace, make_searcher
from trainables.data import RawDataset, load_dataset
from trainables.kernels import MaskedLinear, MaskKernel, dense_uniform_, make_kernel
from trainables.models import (
    build_model,
    expand_density,
    layer_specs,
    maskable_layers,
    output_positions,
)

# --------------------------------------------------------------------------------------
# Throw-away plug-ins, one per family, written the documented way.


@dataclass(frozen=True)
class StripeKernelOptions:
    """Where the kept stripe starts (a flat weight index)."""

    offset: int = spec(0, min=0)


class StripeKernel(MaskKernel):
    """Keeps the k consecutive weights from flat index ``offset`` on (wrapping round): a
    fixed mask; the active weights train."""

    name = "contract_stripe"

    def init_layer(self, layer, generator):
        dense_uniform_(layer.weight, layer.fan_in, generator)
        n = layer.weight.numel()
        mask = torch.zeros(n, dtype=torch.bool)
        mask[(torch.arange(layer.k) + self.options.offset) % n] = True
        layer.mask.copy_(mask.view(layer.weight.shape))

    def effective_weight(self, layer):
        return layer.weight * layer.mask


@dataclass(frozen=True)
class GridSearcherOptions:
    """How many evenly spaced values of ``[low, high]`` the grid has."""

    points: int = spec(3, min=2, max=1000)


class GridSearcher(DensitySearcher):
    """Suggests uniform vectors walking an evenly spaced grid of ``[low, high]``."""

    def __init__(self, space, *, points: int = 3, **kwargs):
        super().__init__(space, **kwargs)
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ConfigError(f"points must be an integer >= 2, got {points!r}")
        self.points = points
        self.step_ = 0

    def _suggest(self, trial_id):
        low, high = self.space.low, self.space.high
        value = low + (high - low) * (self.step_ % self.points) / (self.points - 1)
        self.step_ += 1
        return {name: value for name in self.space.names}

    def _observe(self, trial_id, params, score):
        """A grid learns nothing."""


@dataclass(frozen=True)
class TwoLayerOptions:
    hidden: int = spec(6, min=1, max=4096)


class TwoLayer(nn.Module):
    """Linear -> ReLU -> Linear, both masked."""

    def __init__(self, options, kernel, input_shape, num_classes):
        super().__init__()
        self.hidden = MaskedLinear(math.prod(input_shape), options.hidden, bias=True,
                                   kernel=kernel)
        self.head = MaskedLinear(options.hidden, num_classes, bias=True, kernel=kernel)

    def forward(self, x):
        return self.head(torch.relu(self.hidden(x.flatten(1))))


def build_two_layer(options, kernel, input_shape, num_classes):
    return TwoLayer(options, kernel, input_shape, num_classes)


def load_blobs(cfg):
    """90 samples of 4 features in 3 well separated classes (seeded by ``split_seed``)."""
    rng = np.random.default_rng(cfg.split_seed)
    y = np.arange(90) % 3
    x = (rng.normal(size=(90, 4)) + 4.0 * y[:, None]).astype(np.float32)
    return RawDataset(x, y.astype(np.int64), num_classes=3)


STRIPE, GRID, TWO_LAYER, BLOBS = "contract_stripe", "contract_grid", "contract_two_layer", \
    "contract_blobs"


@pytest.fixture(scope="module", autouse=True)
def throwaway_plugins():
    KERNELS.register(STRIPE, StripeKernel, options=StripeKernelOptions)
    SEARCHERS.register(GRID, GridSearcher, options=GridSearcherOptions)
    MODELS.register(TWO_LAYER, build_two_layer, options=TwoLayerOptions)
    DATASETS.register(BLOBS, load_blobs)
    yield
    for registry, name in ((KERNELS, STRIPE), (SEARCHERS, GRID), (MODELS, TWO_LAYER),
                           (DATASETS, BLOBS)):
        registry.unregister(name)


# Names are listed at collection, before the fixture registers the throw-away ones.
MODEL_NAMES = [*MODELS.names(), TWO_LAYER]
KERNEL_NAMES = [*KERNELS.names(), STRIPE]
SEARCHER_NAMES = [*SEARCHERS.names(), GRID]
DATASET_NAMES = [*DATASETS.names(), BLOBS]
SMALL = {**SMALL_MODELS, TWO_LAYER: (dict(hidden=6), (4,), 2)}
ALL = [("model", n) for n in MODEL_NAMES] + [("kernel", n) for n in KERNEL_NAMES] + \
    [("searcher", n) for n in SEARCHER_NAMES] + [("dataset", n) for n in DATASET_NAMES]
REGISTRIES = {"model": MODELS, "kernel": KERNELS, "searcher": SEARCHERS, "dataset": DATASETS}


def one_line(exc: BaseException) -> bool:
    return bool(str(exc)) and "\n" not in str(exc)


def synthetic(shape, classes=3, size=48):
    return load_dataset(DatasetConfig(name="synthetic", synthetic_shape=tuple(shape),
                                      synthetic_classes=classes, synthetic_size=size))


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One SGD step (with the model's own extra loss, e.g. the DAG's L1); the loss."""
    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    loss = nn.functional.cross_entropy(model(x), y)
    extra_loss = getattr(model, "extra_loss", None)
    if extra_loss is not None:
        loss = loss + extra_loss()
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach())


# --------------------------------------------------------------------------------------
# Every entry of every registry: options and its section of a search-space file.


def section(kind: str, name: str, **options) -> dict:
    """A search-space file (as data) that picks plug-in ``name`` of family ``kind``."""
    if kind == "searcher":
        return {"search": {"searcher": {"name": name, **options}}}
    return {kind: {"name": name, **options}}


def chosen(space: SpaceConfig, kind: str):
    return space.search.searcher if kind == "searcher" else getattr(space, kind)


@pytest.mark.parametrize("kind,name", ALL)
def test_options_are_a_frozen_dataclass_with_defaults(kind, name):
    options = REGISTRIES[kind].options(name)
    assert dataclasses.is_dataclass(options) and options.__dataclass_params__.frozen
    options()  # every field has a default: a section may give just the name


@pytest.mark.parametrize("kind,name", ALL)
def test_section_parses_round_trips_and_refuses_unknown_keys(kind, name):
    space = SpaceConfig.from_dict(section(kind, name))
    assert chosen(space, kind).name == name
    if kind != "dataset":  # dataset options are DatasetConfig's own fields
        assert chosen(space, kind).options == REGISTRIES[kind].options(name)()
    assert SpaceConfig.from_dict(space.to_dict()) == space
    with pytest.raises(ConfigError, match="no_such_option") as info:
        SpaceConfig.from_dict(section(kind, name, no_such_option=1))
    assert one_line(info.value)


def test_throwaway_options_parse_from_a_file():
    space = parse_space_text(f"kernel: {{name: {STRIPE}, offset: 3}}\n"
                             f"search: {{searcher: {{name: {GRID}, points: 5}}}}\n"
                             f"model: {{name: {TWO_LAYER}, hidden: 9}}\n"
                             f"dataset: {{name: {BLOBS}}}\n")
    assert space.kernel.options == StripeKernelOptions(offset=3)
    assert space.search.searcher.options == GridSearcherOptions(points=5)
    assert space.model.options == TwoLayerOptions(hidden=9)
    with pytest.raises(ConfigError, match=r"kernel.offset must be .*>= 0, got -1"):
        parse_space_text(f"kernel: {{name: {STRIPE}, offset: -1}}")


def test_unregister_removes_the_entry():
    KERNELS.register("contract_gone", StripeKernel, options=StripeKernelOptions)
    KERNELS.unregister("contract_gone")
    assert "contract_gone" not in KERNELS
    with pytest.raises(ConfigError, match="kernel.name must be one of .*got 'contract_gone'"):
        KernelConfig(name="contract_gone")


# --------------------------------------------------------------------------------------
# Models: build small, one density entry per maskable layer, one SGD step.


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS
                                  else n for n in MODEL_NAMES])
def test_model_builds_lists_its_layers_and_trains_one_step(name):
    assert name in SMALL, f"add small options for model {name!r} to tests/_small_models.py"
    options, shape, n_layers = SMALL[name]
    data = synthetic(shape)
    x, y = next(data.batches("train", 8))
    vector = [0.2 + 0.7 * i / max(1, n_layers - 1) for i in range(n_layers)]
    config = ModelConfig(name=name, options=MODELS.options(name)(**options))
    model = build_model(config, make_kernel(KernelConfig(name="random")), data.input_shape,
                        data.num_classes, vector, torch.Generator().manual_seed(0))

    specs = layer_specs(model)
    assert len(specs) == n_layers == len(maskable_layers(model))
    assert len({spec.name for spec in specs}) == n_layers
    assert all(spec.numel >= 1 and spec.fan_in >= 1 for spec in specs)
    with pytest.raises(ConfigError, match=f"{n_layers + 1} entries but the model has "
                                          f"{n_layers} maskable layers"):
        expand_density([0.5] * (n_layers + 1), specs)
    positions = output_positions(model, data.input_shape)
    assert len(positions) == n_layers and all(p >= 1 for p in positions)

    before = [layer.weight.detach().clone() for _, layer in maskable_layers(model)]
    assert math.isfinite(train_step(model, x, y))
    for (_, layer), d, old in zip(maskable_layers(model), vector, before, strict=True):
        assert layer.active_weights == kept_count(d, layer.weight.numel())
        assert not torch.equal(layer.weight.detach(), old), "a maskable layer did not train"
    out = model.eval()(x)
    assert out.shape == (len(y), data.num_classes) and torch.isfinite(out).all()


# --------------------------------------------------------------------------------------
# Kernels, on a small MLP: exact counts, masks in the state dict, one step, EGF, eval.


def mlp(kernel_name: str, density, seed=0) -> nn.Module:
    config = ModelConfig(name="mlp", options=MODELS.options("mlp")(hidden_layers=2, width=16))
    return build_model(config, make_kernel(KernelConfig(name=kernel_name)), (1, 8, 8), 3,
                       density, torch.Generator().manual_seed(seed))


def assert_exact_counts(model: nn.Module, densities) -> None:
    for (name, layer), d in zip(maskable_layers(model), densities, strict=True):
        assert layer.mask.dtype == torch.bool and layer.mask.shape == layer.weight.shape
        assert layer.active_weights == kept_count(d, layer.weight.numel()), name


@pytest.fixture(scope="module")
def mlp_data():
    return synthetic((1, 8, 8))


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernel_class_is_a_mask_kernel_named_like_its_entry(name):
    cls = KERNELS[name]
    assert issubclass(cls, MaskKernel) and cls.name == name
    assert isinstance(make_kernel(KernelConfig(name=name)), cls)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernel_keeps_exactly_kept_count_and_trains_one_step(name, mlp_data):
    model = mlp(name, 0.5)
    assert_exact_counts(model, [0.5] * 3)
    # edge cases: one weight kept (k = 1) and every weight kept (k = n)
    assert_exact_counts(mlp(name, [1e-6, 0.3, 1.0]), [1e-6, 0.3, 1.0])

    kernel = maskable_layers(model)[0][1].kernel
    trained = [p for p in model.parameters() if p.requires_grad]
    assert trained, "nothing to train"
    frozen = [layer.weight.detach().clone() for _, layer in maskable_layers(model)]
    x, y = next(mlp_data.batches("train", 16))
    assert math.isfinite(train_step(model, x, y))
    assert_exact_counts(model, [0.5] * 3)
    for (lname, layer), old in zip(maskable_layers(model), frozen, strict=True):
        gradient = layer.masked_gradient()  # what Effective Gradient Flow measures
        assert gradient is not None and gradient.shape == layer.weight.shape, lname
        assert not gradient[~layer.mask].any(), lname
        if not kernel.trains_weights:
            assert torch.equal(layer.weight.detach(), old), f"{lname}: frozen weights moved"
    for _, layer in maskable_layers(model):
        kernel.epoch_end(layer, torch.Generator().manual_seed(1))
    assert_exact_counts(model, [0.5] * 3)


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernel_eval_forward_and_state_dict_round_trip(name, mlp_data):
    model = mlp(name, 0.5)
    x, y = next(mlp_data.batches("train", 16))
    train_step(model, x, y)
    model.eval()
    with torch.no_grad():
        out = model(x)
        assert out.shape == (len(y), 3) and torch.isfinite(out).all()
        torch.testing.assert_close(model(x), out)  # eval is deterministic
    state = model.state_dict()
    for lname, _ in maskable_layers(model):
        assert f"{lname}.mask" in state, "the mask must travel in the state dict"
    restored = mlp(name, 0.5, seed=7)  # other weights and masks until loaded
    restored.load_state_dict(state)
    restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(x), out)
    for (_, a), (_, b) in zip(maskable_layers(model), maskable_layers(restored), strict=True):
        assert torch.equal(a.mask, b.mask)


# --------------------------------------------------------------------------------------
# Searchers: bounded suggestions, the dense baseline, completions of every kind, restore.

SPACE = DensitySpace(("d_00", "d_01", "d_02"), 0.2, 0.8)


def searcher(name: str, **kwargs) -> DensitySearcher:
    kwargs = {"metric": "val_accuracy", "mode": "max", "seed": 0, **kwargs}
    return make_searcher(name, SPACE, options=SEARCHERS.options(name)(), **kwargs)


@pytest.mark.parametrize("name", SEARCHER_NAMES)
def test_searcher_class_and_its_multi_objective_flag(name):
    cls = SEARCHERS[name]
    assert issubclass(cls, DensitySearcher)
    assert cls.MULTI_OBJECTIVE == bool(SEARCHERS.meta(name, "multi_objective", False))


@pytest.mark.parametrize("name", SEARCHER_NAMES)
def test_searcher_suggests_within_bounds_and_takes_every_completion(name):
    s = searcher(name)
    baseline = s.suggest("t0")
    assert baseline == SPACE.dense() and s.is_baseline("t0")
    s.on_trial_complete("t0", {"val_accuracy": 0.9, "training_iteration": 3})
    for i in range(1, 7):
        config = s.suggest(f"t{i}")
        assert SPACE.contains(config), config
        assert all(isinstance(v, float) for v in config.values())
        completion = [
            ({"val_accuracy": sum(config.values()) / 3, "training_iteration": 3}, False),
            (None, True),  # a failed trial
            ({"val_accuracy": float("nan")}, False),  # a diverged one
            ({}, False),  # no metric
        ][i % 4]
        s.on_trial_complete(f"t{i}", *completion)
    assert SPACE.contains(s.suggest("t7"))


@pytest.mark.parametrize("name", SEARCHER_NAMES)
def test_searcher_restore_continues_the_same_sequence(name, tmp_path):
    s = searcher(name, dense_baseline=False)
    for i in range(3):
        config = s.suggest(f"t{i}")
        s.on_trial_complete(f"t{i}", {"val_accuracy": config["d_00"], "training_iteration": 3})
    s.save(str(tmp_path / "searcher.pkl"))
    restored = searcher(name, dense_baseline=False)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.suggest("t3") == s.suggest("t3")


# --------------------------------------------------------------------------------------
# Datasets: load (or say in one line what is missing), then split into a DeviceDataset.


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_dataset_loads_or_names_what_is_missing(name, tmp_path):
    try:
        raw = DATASETS[name](DatasetConfig(name=name))
    except ConfigError as exc:
        # Read from files: without dataset.data_root it says so, with an empty one it says
        # what is missing; both in one line naming the dataset.
        assert one_line(exc) and "dataset.data_root" in str(exc) and repr(name) in str(exc)
        with pytest.raises(DataError) as info:
            DATASETS[name](DatasetConfig(name=name, data_root=str(tmp_path)))
        assert one_line(info.value) and repr(name) in str(info.value)
        return
    assert isinstance(raw, RawDataset)
    assert raw.num_classes >= 2 and len(raw.train_y) >= 2 and raw.train_x.ndim in (2, 4)
    assert raw.train_y.min() >= 0 and raw.train_y.max() < raw.num_classes
    data = load_dataset(DatasetConfig(name=name, max_train=64))
    assert data.input_shape == raw.train_x.shape[1:] and data.num_classes == raw.num_classes
    assert data.split_sizes()["train"] == min(64, data.split_sizes()["train"])
    x, y = next(data.batches("train", 8))
    assert x.dtype == torch.float32 and x.shape == (8, *data.input_shape)
    assert torch.isfinite(x).all() and y.dtype == torch.int64
