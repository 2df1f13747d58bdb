"""Search-space files: strict parsing into frozen, validated config dataclasses.

A search-space file is YAML with the sections ``dataset``, ``model``, ``kernel``,
``training``, ``density``, ``search``, ``scheduler``, ``resources``, ``budget`` and
``tracking``. Every section becomes one frozen dataclass; unknown keys, wrong types and
out-of-range values raise :class:`~snas.core.errors.ConfigError` with a one-line message
naming the key (``model.width must be an integer >= 1, got -3``); the mechanism is
:mod:`snas.core.schema`.

The ``model`` and ``kernel`` sections, and ``search.searcher``, name a plug-in and carry
that plug-in's own options (``model: {name: mlp, width: 64}``, ``search: {searcher: {name:
bayesopt, kappa: 5}}``): the names and their options classes come from the registries in
:mod:`snas.core.catalog`, so a new plug-in needs no change here.

This module does not import torch: the CLI validates files before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from snas.core import metrics as M
from snas.core.catalog import DATASETS, KERNELS, MODELS, SEARCHERS
from snas.core.errors import ConfigError
from snas.core.registry import Registry
from snas.core.schema import coerce, parse_section, spec, to_dict


@dataclass(frozen=True)
class DatasetConfig:
    """Which data, how it is split and augmented. Splits are seeded and deterministic."""

    name: str = "digits"
    data_root: str | None = None
    download: bool = False
    val_fraction: float = spec(0.1, min=0.0, max=0.5)
    test_fraction: float = spec(0.2, min=0.0, max=0.5, min_open=True)
    split_seed: int = spec(0, min=0)
    max_train: int | None = spec(None, min=1)
    augment: bool = False
    crop_padding: int = spec(4, min=0, max=16)
    hflip: bool = True
    synthetic_shape: tuple[int, ...] = spec((1, 8, 8), min=1)
    synthetic_classes: int = spec(10, min=2)
    synthetic_size: int = spec(512, min=16)

    def __post_init__(self) -> None:
        DATASETS.check(self.name)
        if len(self.synthetic_shape) not in (1, 3):
            raise ConfigError("dataset.synthetic_shape must be [features] or [channels, "
                              f"height, width], got {list(self.synthetic_shape)!r}")


@dataclass(frozen=True)
class PluginChoice:
    """A section (or key) that names a registered plug-in: ``name`` picks it from
    :attr:`REGISTRY`, ``options`` is that plug-in's options dataclass (its defaults when
    not given). Written in files as ``{name: ..., **options}``."""

    REGISTRY: ClassVar[Registry]
    name: str = ""
    options: Any = None

    def __post_init__(self) -> None:
        self.REGISTRY.check(self.name)
        if self.options is None:
            object.__setattr__(self, "options", self.REGISTRY.options(self.name)())

    @classmethod
    def parse(cls, data: Any, where: str) -> PluginChoice:
        """Parse ``{name: ..., **options}`` (or a bare name) into ``cls(name, options)``."""
        if data is None:
            data = {}
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
        data = dict(data)
        name = coerce(data.pop("name", cls.name), str, f"{where}.name")
        cls.REGISTRY.check(name)
        options = parse_section(cls.REGISTRY.options(name), data, where)
        return cls(name=name, options=options)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **to_dict(self.options)}


@dataclass(frozen=True)
class ModelConfig(PluginChoice):
    """``name`` picks the model (:data:`~snas.core.catalog.MODELS`); ``options`` its options."""

    REGISTRY: ClassVar[Registry] = MODELS
    name: str = "mlp"


@dataclass(frozen=True)
class KernelConfig(PluginChoice):
    """``name`` picks the masking kernel (:data:`~snas.core.catalog.KERNELS`)."""

    REGISTRY: ClassVar[Registry] = KERNELS
    name: str = "random"


@dataclass(frozen=True)
class SearcherConfig(PluginChoice):
    """``search.searcher``: the searcher (:data:`~snas.core.catalog.SEARCHERS`) and its
    options, e.g. ``{name: bayesopt, kappa: 5}`` or just ``bayesopt``."""

    REGISTRY: ClassVar[Registry] = SEARCHERS
    name: str = "random"


@dataclass(frozen=True)
class TrainingConfig:
    """How one trial trains. ``device: auto`` means cuda when available, else cpu.

    ``max_seconds`` (training time) and ``max_memory_mb`` (the trial process's resident
    memory) end a trial that exceeds them as failed, with the limit named in its error.
    """

    epochs: int = spec(20, min=1, max=100000)
    batch_size: int = spec(128, min=1, max=1 << 20)
    eval_batch_size: int = spec(2048, min=1, max=1 << 20)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = spec(0.1, min=0.0, min_open=True, max=10.0)
    momentum: float = spec(0.9, min=0.0, max=0.999)
    nesterov: bool = False
    weight_decay: float = spec(0.0, min=0.0, max=1.0)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    step_size: int = spec(30, min=1)
    gamma: float = spec(0.1, min=0.0, min_open=True, max=1.0)
    label_smoothing: float = spec(0.0, min=0.0, max=0.5)
    seed: int = spec(0, min=0)
    device: str = "auto"
    # Limits that end a trial as failed, with the reason recorded (None: no limit).
    max_seconds: float | None = spec(None, min=0.0, min_open=True)
    max_memory_mb: int | None = spec(None, min=1)

    def __post_init__(self) -> None:
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError(f"training.device must be auto, cpu or cuda[:N], got {self.device!r}")


@dataclass(frozen=True)
class DensityConfig:
    """The range a search draws each layer's density from, ``low <= d <= high``.
    ``uniform: true`` searches one scalar used for every layer."""

    low: float = spec(0.05, min=0.0, min_open=True, max=1.0)
    high: float = spec(1.0, min=0.0, min_open=True, max=1.0)
    uniform: bool = False

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ConfigError(f"density.low must be <= density.high, got low={self.low} "
                              f"high={self.high}")


#: Keys of the ``search`` section that older files (and stored searches) give beside
#: ``searcher``; they are options of a searcher and are moved into ``search.searcher`` when
#: that searcher takes them (validated either way, so a typo still fails).
LEGACY_SEARCHER_KEYS = ("kappa", "sampler")


def _check_allocations(names: tuple[str, ...], where: str) -> None:
    from snas.core.allocations import ALLOCATIONS

    for i, name in enumerate(names):
        if name not in ALLOCATIONS:
            raise ConfigError(f"{where}[{i}] must be one of {', '.join(ALLOCATIONS.names())}, "
                              f"got {name!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{where} lists an allocation twice: {list(names)!r}")


@dataclass(frozen=True)
class ConfirmConfig:
    """``search.confirm``: retrain the ``top`` vectors of the search and, at each one's cost,
    every reference allocation in ``references``, ``seeds`` training seeds each, full epochs,
    when the search ends (what ``snas confirm`` does; see :mod:`snas.confirm`)."""

    top: int = spec(3, min=1, max=100)
    seeds: int = spec(3, min=2, max=100)
    references: tuple[str, ...] = ("uniform", "erk", "dense")

    def __post_init__(self) -> None:
        _check_allocations(self.references, "search.confirm.references")


@dataclass(frozen=True)
class SearchConfig:
    """The search loop: which searcher (with its options), how many trials, what to rank by."""

    searcher: SearcherConfig = field(default_factory=SearcherConfig)
    num_samples: int = spec(24, min=1, max=100000)
    seed: int = spec(0, min=0)
    metric: str = "val_accuracy"
    mode: Literal["max", "min"] = "max"
    max_concurrent: int = spec(2, min=1, max=4096)
    with_dense_baseline: bool = True
    # Maximise ``metric`` and minimise the cost (``budget.resource``) together: Optuna's
    # multi-objective samplers; the result is a Pareto front, not one best trial.
    multi_objective: bool = False
    # Reference allocations (snas.core.allocations) evaluated as the first trials after the
    # dense baseline, at the budget's cost, or at ``warm_start_fraction`` of the dense cost
    # without a budget; every searcher learns from them.
    warm_start: tuple[str, ...] = ()
    warm_start_fraction: float | None = spec(None, min=0.0, min_open=True, max=1.0)
    # Confirm the result over seeds when the search ends (null: do not).
    confirm: ConfirmConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.searcher, str):
            object.__setattr__(self, "searcher", SearcherConfig(name=self.searcher))
        _check_allocations(self.warm_start, "search.warm_start")
        if self.metric not in M.SEARCH_METRICS:
            raise ConfigError(f"search.metric {self.metric!r} is not reported by every epoch "
                              f"of a trial; choose one of {', '.join(M.SEARCH_METRICS)}")
        if "global_magnitude" in self.warm_start:
            raise ConfigError("search.warm_start cannot use global_magnitude: it needs the "
                              "trained dense network, which is trained by the same search")
        if self.multi_objective and not SEARCHERS.meta(self.searcher.name, "multi_objective"):
            able = [n for n in SEARCHERS if SEARCHERS.meta(n, "multi_objective")]
            raise ConfigError(f"search.multi_objective needs search.searcher one of "
                              f"{', '.join(sorted(able, key=lambda n: n != 'optuna'))}, got "
                              f"{self.searcher.name!r}")

    @classmethod
    def parse(cls, data: Any, where: str = "search") -> SearchConfig:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
        data = dict(data)
        searcher = data.pop("searcher", None)
        legacy = {k: data.pop(k) for k in LEGACY_SEARCHER_KEYS if k in data}
        choice = SearcherConfig.parse(searcher, f"{where}.searcher")
        if legacy:
            # Validate every legacy key (a bad one is an error whichever searcher runs),
            # keep those the chosen searcher takes; searcher options given explicitly win.
            for key, value in legacy.items():
                owner = next(n for n in SEARCHERS
                             if key in {f.name for f in dataclasses.fields(SEARCHERS.options(n))})
                parse_section(SEARCHERS.options(owner), {key: value}, where)
            own = {f.name for f in dataclasses.fields(choice.options)}
            explicit = searcher if isinstance(searcher, Mapping) else {}
            taken = {k: v for k, v in legacy.items() if k in own and k not in explicit}
            if taken:
                choice = SearcherConfig.parse({**(explicit or {"name": choice.name}), **taken},
                                              f"{where}.searcher")
        section = parse_section(cls, data, where)
        return dataclasses.replace(section, searcher=choice)


@dataclass(frozen=True)
class BudgetConfig:
    """A cap on what a trial may cost, as a fraction of the dense network.

    ``resource``: ``weights`` (active weights of the maskable layers) or ``flops``
    (multiply-accumulates of the maskable layers per example: active weights x output
    positions). ``max_fraction``: the cap, e.g. 0.25 = a quarter of the dense network's
    cost; null = no cap. Searchers project suggestions over the cap onto it
    (:mod:`snas.core.budget`). ``resource`` is also the cost that ``search.multi_objective``
    minimises.
    """

    resource: Literal["weights", "flops"] = "weights"
    max_fraction: float | None = spec(None, min=0.0, min_open=True, max=1.0)


@dataclass(frozen=True)
class SchedulerConfig:
    """Early stopping. ``asha`` stops poor trials at rungs grace_period * rf^k epochs."""

    name: Literal["asha", "fifo"] = "asha"
    grace_period: int = spec(1, min=1)
    reduction_factor: float = spec(3.0, min=1.0, min_open=True)


@dataclass(frozen=True)
class ResourcesConfig:
    """Per-trial resources given to Ray Tune. ``max_failures``: how many times a failed trial
    (its node lost, its worker killed, an error) restarts from its last checkpoint before
    it counts as an error; 0 = never. ``checkpoint_every_s``: besides the epochs where
    ASHA may stop it and its last, a trial checkpoints after the first epoch that ends this
    many seconds or more after its last checkpoint: what a restarted trial repeats at most;
    0 = after every epoch."""

    cpus_per_trial: float = spec(1.0, min=0.0, min_open=True, max=1024)
    gpus_per_trial: float = spec(0.0, min=0.0, max=64)
    max_failures: int = spec(2, min=0, max=1000)
    checkpoint_every_s: float = spec(30.0, min=0.0, max=1e9)


@dataclass(frozen=True)
class MlflowConfig:
    """``tracking.mlflow``: log every trial (its config as params, each epoch's metrics) to
    an MLflow tracking store. ``uri``: the store (``sqlite:///mlflow.db``,
    ``http://host:5000``; MLflow 3 opens ``file:///dir`` only with
    ``MLFLOW_ALLOW_FILE_STORE=true``); null: MLflow's default (``MLFLOW_TRACKING_URI`` when
    set, else ``sqlite:///mlflow.db`` in the working directory). ``experiment``: the MLflow
    experiment; null: the search's name."""

    uri: str | None = None
    experiment: str | None = None

    def __post_init__(self) -> None:
        for key in ("uri", "experiment"):
            value = getattr(self, key)
            if value is not None and not value.strip():
                raise ConfigError(f"tracking.mlflow.{key} must be a non-empty string or "
                                  f"null, got {value!r}")


@dataclass(frozen=True)
class TrackingConfig:
    """Experiment tracking through Ray Tune's own logger callbacks (:mod:`snas.tracking`):
    ``mlflow`` (null: off; ``true``: on with its defaults) and ``tensorboard`` (event files
    in each trial's folder under the experiment folder). Both need ``snas[tracking]``."""

    mlflow: MlflowConfig | None = None
    tensorboard: bool = False

    @classmethod
    def parse(cls, data: Any, where: str = "tracking") -> TrackingConfig:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
        data = dict(data)
        mlflow = data.get("mlflow")
        if mlflow is True:
            data["mlflow"] = {}
        elif mlflow is False:
            data["mlflow"] = None
        elif mlflow is not None and not isinstance(mlflow, Mapping):
            raise ConfigError(f"{where}.mlflow must be a mapping {{uri: ..., experiment: ...}}, "
                              f"true or null, got {mlflow!r}")
        return parse_section(cls, data, where)


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
    "tracking": TrackingConfig,
}


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
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    description: str = ""

    def __post_init__(self) -> None:
        search = self.search
        if search.warm_start:
            if "dense" in search.warm_start:
                raise ConfigError("search.warm_start: dense is the dense baseline "
                                  "(search.with_dense_baseline), not a warm start")
            if self.budget.max_fraction is None and search.warm_start_fraction is None:
                raise ConfigError("search.warm_start needs a cost to allocate at: set "
                                  "budget.max_fraction or search.warm_start_fraction")

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
                kwargs[name] = coerce(value, str, "description")
            elif name in ("model", "kernel", "search", "tracking"):
                kwargs[name] = SECTIONS[name].parse(value, name)
            else:
                kwargs[name] = parse_section(SECTIONS[name], value, name)
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` turns back into an equal SpaceConfig."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PluginChoice):
                out[f.name] = value.to_dict()
            elif isinstance(value, SearchConfig):
                out[f.name] = {**to_dict(value), "searcher": value.searcher.to_dict()}
            else:
                out[f.name] = to_dict(value)
        return out

    def replace(self, **sections: Any) -> SpaceConfig:
        """A copy with whole sections replaced, e.g. ``space.replace(training=...)``."""
        return dataclasses.replace(self, **sections)


# --------------------------------------------------------------------------------------
# Files and overrides


#: ``--set`` paths with three parts: ``section.key.option``.
_NESTED_OVERRIDES = {("search", "searcher"), ("tracking", "mlflow")}


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (value parsed as YAML) to raw file data.

    ``search.searcher.KEY=value`` sets one option of the searcher (``search.searcher.kappa=5``);
    a bare ``search.searcher=NAME`` picks another searcher with its default options.
    ``tracking.mlflow.KEY=value`` sets one key of ``tracking.mlflow`` (turning it on).
    """
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    for item in overrides:
        path, sep, raw = item.partition("=")
        parts = path.strip().split(".")
        nested = len(parts) == 3 and tuple(parts[:2]) in _NESTED_OVERRIDES
        if not sep or not (len(parts) == 2 or nested) or not all(parts):
            raise ConfigError(f"--set takes section.key=value (e.g. training.epochs=5, "
                              f"search.searcher.kappa=5 or tracking.mlflow.uri=...), got "
                              f"{item!r}")
        section, key = parts[0], parts[1]
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
        if nested:
            inner = current.get(key)
            if isinstance(inner, str):  # search.searcher: NAME
                inner = {"name": inner}
            elif inner is None or isinstance(inner, bool):  # also tracking.mlflow: true
                inner = {}
            elif not isinstance(inner, Mapping):
                raise ConfigError(f"{section}.{key} must be a mapping of keys to values, got "
                                  f"{inner!r}")
            value = {**inner, parts[2]: value}
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
