"""Search-space files: strict parsing into frozen, validated config dataclasses.

A search-space file is YAML with the sections ``dataset``, ``model``, ``kernel``,
``training``, ``density``, ``search``, ``scheduler``, ``resources`` and ``budget``. Every section becomes
one frozen dataclass; unknown keys, wrong types and out-of-range values raise
:class:`~snas.errors.ConfigError` with a one-line message naming the key
(``model.width must be an integer >= 1, got -3``).

Model and kernel sections carry a ``name`` plus that model's or kernel's own options; the
option classes are registered in :data:`MODEL_OPTIONS` and :data:`KERNEL_OPTIONS` (the
torch-side builders in ``trainables`` are registered under the same names, which a contract
test checks).

This module does not import torch: the CLI validates files before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from snas.errors import ConfigError

# --------------------------------------------------------------------------------------
# The parsing mechanism


def _spec(default: Any, *, min: float | None = None, max: float | None = None,
          min_open: bool = False, doc: str = "") -> Any:
    """A dataclass field with a validated numeric range (``min``/``max`` inclusive unless open)."""
    return field(default=default, metadata={"min": min, "max": max, "min_open": min_open,
                                            "doc": doc})


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return "a list of " + _type_name(typing.get_args(tp)[0])
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` as type ``tp`` or raise a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(allowed[0]):
            return value
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")
        (item_tp, *_) = typing.get_args(tp)
        return tuple(_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        # YAML 1.1 reads "1e-3" as a string; accept numeric strings for float fields.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number, got {value!r}")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        return parse_section(tp, value, where)
    else:  # pragma: no cover - a programming error in a config class
        raise TypeError(f"unsupported config field type {tp!r} at {where}")
    raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}")


def _check_range(value: Any, meta: Mapping[str, Any], where: str) -> None:
    lo, hi, lo_open = meta.get("min"), meta.get("max"), meta.get("min_open", False)
    if value is None or (lo is None and hi is None):
        return
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        too_low = lo is not None and (v <= lo if lo_open else v < lo)
        too_high = hi is not None and v > hi
        if too_low or too_high:
            kind = "an integer" if isinstance(v, int) else "a number"
            if lo is not None and hi is not None:
                rng = f"in {'(' if lo_open else '['}{lo}, {hi}]"
            elif lo is not None:
                rng = f"{'>' if lo_open else '>='} {lo}"
            else:
                rng = f"<= {hi}"
            raise ConfigError(f"{where} must be {kind} {rng}, got {value!r}")


def parse_section(cls: type, data: Any, where: str) -> Any:
    """Build dataclass ``cls`` from mapping ``data``; every key is checked, none is dropped."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for key in data:
        if key not in fields:
            allowed = ", ".join(sorted(fields)) or "(none)"
            raise ConfigError(f"unknown key {where}.{key}; allowed keys: {allowed}")
    kwargs = {}
    for name, value in data.items():
        key_where = f"{where}.{name}"
        kwargs[name] = _coerce(value, hints[name], key_where)
        _check_range(kwargs[name], fields[name].metadata, key_where)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def to_dict(obj: Any) -> Any:
    """A config dataclass as plain YAML/JSON-able data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        out = {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return out
    if isinstance(obj, tuple):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


# --------------------------------------------------------------------------------------
# Sections

DATASET_NAMES = ("digits", "mnist5k", "mnist", "fashion_mnist", "kmnist", "cifar10",
                 "cifar100", "synthetic")


@dataclass(frozen=True)
class DatasetConfig:
    """Which data, how it is split and augmented. Splits are seeded and deterministic."""

    name: str = "digits"
    data_root: str | None = None
    download: bool = False
    val_fraction: float = _spec(0.1, min=0.0, max=0.5)
    test_fraction: float = _spec(0.2, min=0.0, max=0.5, min_open=True)
    split_seed: int = _spec(0, min=0)
    max_train: int | None = _spec(None, min=1)
    augment: bool = False
    crop_padding: int = _spec(4, min=0, max=16)
    hflip: bool = True
    synthetic_shape: tuple[int, ...] = _spec((1, 8, 8), min=1)
    synthetic_classes: int = _spec(10, min=2)
    synthetic_size: int = _spec(512, min=16)

    def __post_init__(self) -> None:
        if self.name not in DATASET_NAMES:
            raise ConfigError(f"dataset.name must be one of {', '.join(DATASET_NAMES)}, "
                              f"got {self.name!r}")
        if len(self.synthetic_shape) not in (1, 3):
            raise ConfigError("dataset.synthetic_shape must be [features] or [channels, "
                              f"height, width], got {list(self.synthetic_shape)!r}")


@dataclass(frozen=True)
class MLPOptions:
    """MLP of sparse ResNet-like cells (Tessera ch. 4): Linear -> BN -> activation, skip
    every two hidden layers. ``hidden_layers`` counts hidden activations; the network has
    ``hidden_layers + 1`` Linear layers, all maskable."""

    hidden_layers: int = _spec(4, min=1, max=64)
    width: int = _spec(256, min=1, max=65536)
    activation: Literal["relu", "prelu", "swish", "elu", "sigmoid"] = "prelu"
    batch_norm: bool = True
    skip: bool = True
    dropout: float = _spec(0.0, min=0.0, max=0.95)
    bias: bool = True


@dataclass(frozen=True)
class ResNetCifarOptions:
    """CIFAR ResNet (He et al. 2016, option A widths 16/32/64 times ``base_width / 16``):
    ``depth = 6n + 2``, three stages of n basic blocks. Every conv (including 1x1 projection
    shortcuts) and the final Linear are maskable, in module order; ``first_layer_dense`` /
    ``last_layer_dense`` make the stem conv / the head a plain dense layer instead."""

    depth: int = _spec(32, min=8, max=1202)
    base_width: int = _spec(16, min=1, max=1024)
    first_layer_dense: bool = False
    last_layer_dense: bool = False

    def __post_init__(self) -> None:
        if (self.depth - 2) % 6:
            raise ConfigError(f"model.depth must be 6n + 2 (8, 14, 20, 32, 44, 56, 110, ...), "
                              f"got {self.depth}")


@dataclass(frozen=True)
class WideResNetOptions:
    """Wide ResNet WRN-depth-k (Zagoruyko & Komodakis 2016): ``depth = 6n + 4``, widths
    16, 16k, 32k, 64k, pre-activation blocks; every conv and the final Linear maskable."""

    depth: int = _spec(28, min=10, max=1000)
    widen_factor: int = _spec(10, min=1, max=64)
    dropout: float = _spec(0.0, min=0.0, max=0.95)
    first_layer_dense: bool = False
    last_layer_dense: bool = False

    def __post_init__(self) -> None:
        if (self.depth - 4) % 6:
            raise ConfigError(f"model.depth must be 6n + 4 (10, 16, 22, 28, 40, ...), "
                              f"got {self.depth}")


@dataclass(frozen=True)
class ConvNOptions:
    """The VGG-like Conv2/4/6/8 of the edge-popup paper (table 1): pairs of 3x3 convs of
    64, 128, 256, 512 channels with 2x2 max-pooling after each pair, then FC 256, 256,
    classes; all widths times ``width_multiplier``. Every conv and FC layer is maskable."""

    width_multiplier: float = _spec(1.0, min=0.0, min_open=True, max=64.0)
    batch_norm: bool = False
    first_layer_dense: bool = False
    last_layer_dense: bool = False


@dataclass(frozen=True)
class TorchvisionResNetOptions:
    """A torchvision ImageNet ResNet (``weights=None``) with every conv and ``fc`` masked."""

    first_layer_dense: bool = False
    last_layer_dense: bool = False


@dataclass(frozen=True)
class DAGOptions:
    """Janik & Nowak's fully connected DAG network. Node i aggregates every earlier node j
    with weight tanh(w_ij) (all start at ``init_tanh``), then ReLU -> Conv3x3 -> BN plus a
    1x1-conv residual from the aggregate; ``stages`` equal resolution stages, each halving
    the resolution and doubling ``channels``. Loss adds ``l1_lambda * sum |tanh w|``; after
    training edges with |tanh w| < ``tau`` are dropped. Maskable layers: the node 3x3
    convs (nodes 1..n-1), one density entry each."""

    nodes: int = _spec(60, min=2, max=1000)
    stages: int = _spec(3, min=1, max=5)
    channels: int = _spec(16, min=1, max=1024)
    l1_lambda: float = _spec(1e-3, min=0.0, max=10.0)
    tau: float = _spec(0.006, min=0.0, max=1.0)
    init_tanh: float = _spec(0.5, min=0.0, min_open=True, max=0.99)

    def __post_init__(self) -> None:
        if self.nodes < 2 * self.stages:
            raise ConfigError(f"model.nodes must be >= 2 * model.stages ({2 * self.stages}), "
                              f"got {self.nodes}")


@dataclass(frozen=True)
class NeuralGraphOptions:
    """DNW static neural graph: channels are nodes, one graph per resolution stage, each
    split into ``blocks`` blocks of ``nodes_per_block`` nodes (edges only from an earlier
    block to a later one). Node op: norm -> ReLU -> 3x3 depthwise conv. The density vector
    has one entry per graph (the fraction of its allowed edges kept). ``random_graph``: the
    RG baseline, a fixed top-k of uniform random scores (weights still train)."""

    stages: int = _spec(3, min=1, max=6)
    blocks: int = _spec(5, min=2, max=64)
    nodes_per_block: int = _spec(32, min=1, max=4096)
    norm: Literal["batch", "instance"] = "batch"
    random_graph: bool = False


MODEL_OPTIONS: dict[str, type] = {
    "mlp": MLPOptions,
    "resnet_cifar": ResNetCifarOptions,
    "wide_resnet": WideResNetOptions,
    "conv2": ConvNOptions,
    "conv4": ConvNOptions,
    "conv6": ConvNOptions,
    "conv8": ConvNOptions,
    "resnet18": TorchvisionResNetOptions,
    "resnet50": TorchvisionResNetOptions,
    "wide_resnet50_2": TorchvisionResNetOptions,
    "dag": DAGOptions,
    "neural_graph": NeuralGraphOptions,
}


@dataclass(frozen=True)
class RandomKernelOptions:
    """Fixed random mask with the exact kept count (SNAS); the active weights train.
    ``init_fan_in`` overrides the fan-in used for the weight init (SC-SDC)."""

    init_fan_in: int | None = _spec(None, min=1)


@dataclass(frozen=True)
class DNWKernelOptions:
    """Discovering Neural Wirings: top-k |w| every forward, straight-through gradient."""


EDGE_POPUP_INITS = ("signed_constant", "kaiming_normal", "scaled_signed_constant",
                    "scaled_kaiming_normal")


@dataclass(frozen=True)
class EdgePopupKernelOptions:
    """Edge-popup: frozen random weights, top-k learned scores (straight-through)."""

    weight_init: Literal["signed_constant", "kaiming_normal", "scaled_signed_constant",
                         "scaled_kaiming_normal"] = "signed_constant"


@dataclass(frozen=True)
class SETKernelOptions:
    """Sparse Evolutionary Training: after every epoch drop the ``zeta`` fraction of active
    weights of smallest magnitude and regrow as many at random inactive positions."""

    zeta: float = _spec(0.3, min=0.0, max=1.0)


KERNEL_OPTIONS: dict[str, type] = {
    "random": RandomKernelOptions,
    "dnw": DNWKernelOptions,
    "edge_popup": EdgePopupKernelOptions,
    "set": SETKernelOptions,
}


@dataclass(frozen=True)
class ModelConfig:
    """``name`` picks the model; ``options`` is that model's options dataclass."""

    name: str = "mlp"
    options: Any = None

    def __post_init__(self) -> None:
        if self.options is None:
            object.__setattr__(self, "options", _options_cls(MODEL_OPTIONS, "model",
                                                             self.name)())


@dataclass(frozen=True)
class KernelConfig:
    """``name`` picks the masking kernel; ``options`` is that kernel's options dataclass."""

    name: str = "random"
    options: Any = None

    def __post_init__(self) -> None:
        if self.options is None:
            object.__setattr__(self, "options", _options_cls(KERNEL_OPTIONS, "kernel",
                                                             self.name)())


@dataclass(frozen=True)
class TrainingConfig:
    """How one trial trains. ``device: auto`` means cuda when available, else cpu.

    ``max_seconds`` (training time) and ``max_memory_mb`` (the trial process's resident
    memory) end a trial that exceeds them as failed, with the limit named in its error.
    """

    epochs: int = _spec(20, min=1, max=100000)
    batch_size: int = _spec(128, min=1, max=1 << 20)
    eval_batch_size: int = _spec(2048, min=1, max=1 << 20)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = _spec(0.1, min=0.0, min_open=True, max=10.0)
    momentum: float = _spec(0.9, min=0.0, max=0.999)
    nesterov: bool = False
    weight_decay: float = _spec(0.0, min=0.0, max=1.0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_size: int = _spec(30, min=1)
    gamma: float = _spec(0.1, min=0.0, min_open=True, max=1.0)
    label_smoothing: float = _spec(0.0, min=0.0, max=0.5)
    seed: int = _spec(0, min=0)
    device: str = "auto"
    # Limits that end a trial as failed, with the reason recorded (None: no limit).
    max_seconds: float | None = _spec(None, min=0.0, min_open=True)
    max_memory_mb: int | None = _spec(None, min=1)

    def __post_init__(self) -> None:
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"training.device must be auto, cpu or cuda[:N], got {self.device!r}")


@dataclass(frozen=True)
class DensityConfig:
    """The range a search draws each layer's density from, ``low <= d <= high``.
    ``uniform: true`` searches one scalar used for every layer."""

    low: float = _spec(0.05, min=0.0, min_open=True, max=1.0)
    high: float = _spec(1.0, min=0.0, min_open=True, max=1.0)
    uniform: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ConfigError(f"density.low must be <= density.high, got low={self.low} "
                              f"high={self.high}")


SEARCHER_NAMES = ("random", "bayesopt", "optuna")
MULTI_OBJECTIVE_SEARCHERS = ("optuna", "random")


@dataclass(frozen=True)
class SearchConfig:
    """The search loop: which searcher, how many trials, what to rank by."""

    searcher: str = "random"
    num_samples: int = _spec(24, min=1, max=100000)
    seed: int = _spec(0, min=0)
    metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    max_concurrent: int = _spec(2, min=1, max=4096)
    with_dense_baseline: bool = True
    kappa: float = _spec(10.0, min=0.0)
    sampler: Literal["tpe", "random", "qmc", "nsga2"] = "tpe"
    # Maximise ``metric`` and minimise the cost (``budget.resource``) together: Optuna's
    # multi-objective samplers; the result is a Pareto front, not one best trial.
    multi_objective: bool = False

    def __post_init__(self) -> None:
        if self.searcher not in SEARCHER_NAMES:
            raise ConfigError(f"search.searcher must be one of {', '.join(SEARCHER_NAMES)}, "
                              f"got {self.searcher!r}")
        if self.multi_objective and self.searcher not in MULTI_OBJECTIVE_SEARCHERS:
            raise ConfigError(f"search.multi_objective needs search.searcher one of "
                              f"{', '.join(MULTI_OBJECTIVE_SEARCHERS)}, got {self.searcher!r}")


@dataclass(frozen=True)
class BudgetConfig:
    """A cap on what a trial may cost, as a fraction of the dense network.

    ``resource``: ``weights`` (active weights of the maskable layers) or ``flops``
    (multiply-accumulates of the maskable layers per example: active weights x output
    positions). ``max_fraction``: the cap, e.g. 0.25 = a quarter of the dense network's
    cost; null = no cap. Searchers project suggestions over the cap onto it
    (:mod:`snas.budget`). ``resource`` is also the cost that ``search.multi_objective``
    minimises.
    """

    resource: Literal["weights", "flops"] = "weights"
    max_fraction: float | None = _spec(None, min=0.0, min_open=True, max=1.0)


@dataclass(frozen=True)
class SchedulerConfig:
    """Early stopping. ``asha`` stops poor trials at rungs grace_period * rf^k epochs."""

    name: Literal["asha", "fifo"] = "asha"
    grace_period: int = _spec(1, min=1)
    reduction_factor: float = _spec(3.0, min=1.0, min_open=True)


@dataclass(frozen=True)
class ResourcesConfig:
    """Per-trial resources given to Ray Tune. ``max_failures``: how many times a failed trial
    (its node lost, its worker killed, an error) restarts from its last checkpoint before
    it counts as an error; 0 = never."""

    cpus_per_trial: float = _spec(1.0, min=0.0, min_open=True, max=1024)
    gpus_per_trial: float = _spec(0.0, min=0.0, max=64)
    max_failures: int = _spec(2, min=0, max=1000)


SECTIONS: dict[str, type] = {
    "dataset": DatasetConfig,
    "model": ModelConfig,
    "kernel": KernelConfig,
    "training": TrainingConfig,
    "density": DensityConfig,
    "search": SearchConfig,
    "scheduler": SchedulerConfig,
    "resources": ResourcesConfig,
    "budget": BudgetConfig,
}


def _options_cls(registry: Mapping[str, type], section: str, name: Any) -> type:
    if name not in registry:
        raise ConfigError(f"{section}.name must be one of {', '.join(sorted(registry))}, "
                          f"got {name!r}")
    return registry[name]


def _parse_named(cls: type, registry: Mapping[str, type], data: Any, where: str) -> Any:
    """Parse ``{name: ..., **options}`` into ``cls(name, options)``."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
    data = dict(data)
    name = _coerce(data.pop("name", cls.name), str, f"{where}.name")
    options = parse_section(_options_cls(registry, where, name), data, where)
    return cls(name=name, options=options)


@dataclass(frozen=True)
class SpaceConfig:
    """A whole search-space file, validated. ``to_dict``/``from_dict`` round-trip it."""

    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    density: DensityConfig = field(default_factory=DensityConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    description: str = ""

    @classmethod
    def from_dict(cls, data: Any) -> SpaceConfig:
        """Validate plain data (a parsed YAML file) into a SpaceConfig."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a search-space file must be a mapping of sections, got {data!r}")
        allowed = (*SECTIONS, "description")
        for key in data:
            if key not in allowed:
                raise ConfigError(f"unknown section {key!r}; allowed sections: "
                                  f"{', '.join(allowed)}")
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name == "description":
                kwargs[name] = _coerce(value, str, "description")
            elif name == "model":
                kwargs[name] = _parse_named(ModelConfig, MODEL_OPTIONS, value, "model")
            elif name == "kernel":
                kwargs[name] = _parse_named(KernelConfig, KERNEL_OPTIONS, value, "kernel")
            else:
                kwargs[name] = parse_section(SECTIONS[name], value, name)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into an equal SpaceConfig."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (ModelConfig, KernelConfig)):
                out[f.name] = {"name": value.name, **to_dict(value.options)}
            else:
                out[f.name] = to_dict(value)
        return out

    def replace(self, **sections: Any) -> SpaceConfig:
        """A copy with whole sections replaced, e.g. ``space.replace(training=...)``."""
        return dataclasses.replace(self, **sections)


# --------------------------------------------------------------------------------------
# Files and overrides


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (value parsed as YAML) to raw file data."""
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    for item in overrides:
        path, sep, raw = item.partition("=")
        parts = path.strip().split(".")
        if not sep or len(parts) != 2 or not all(parts):
            raise ConfigError(f"--set takes section.key=value (e.g. training.epochs=5), "
                              f"got {item!r}")
        section, key = parts
        if section not in SECTIONS:
            raise ConfigError(f"--set {item!r}: unknown section {section!r}; allowed "
                              f"sections: {', '.join(SECTIONS)}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        current = out.get(section)
        if current is None:
            current = {}
        elif not isinstance(current, Mapping):
            raise ConfigError(f"{section} must be a mapping of keys to values, got {current!r}")
        out[section] = {**current, key: value}
    return out


def read_space_text(path: str | Path) -> str:
    """The text of a search-space file, or a one-line ConfigError if it cannot be read."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"search-space file not found: {str(p)!r}")
    try:
        return p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read search-space file {str(p)!r}: {exc}") from None


def parse_space_text(text: str, overrides: Sequence[str] = (), source: str = "<text>"
                     ) -> SpaceConfig:
    """Parse YAML text plus ``--set`` overrides into a validated SpaceConfig."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: malformed YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a search-space file must be a mapping of sections, "
                          f"got {type(data).__name__}")
    try:
        return SpaceConfig.from_dict(apply_overrides(data, overrides))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_space(path: str | Path, overrides: Sequence[str] = ()) -> SpaceConfig:
    """Read, parse and validate a search-space file (``--set`` overrides applied)."""
    return parse_space_text(read_space_text(path), overrides, source=str(path))
