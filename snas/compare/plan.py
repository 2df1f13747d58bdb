"""The plan of an SC-SDC comparison: ``--widths`` and ``--factor`` parsing, the validated
space of every factor level, and per level, width and seed the (dense, sparse) pair of
Tune trial configs (:func:`plan_pairs`, :func:`trial_configs`).

Everything but :func:`plan_pairs` (which builds the networks, so imports torch) needs
neither torch nor Ray.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from snas.core.errors import ConfigError

#: Search-space keys ``--factor`` may sweep: model and training keys except those SC-SDC
#: sets itself, plus data augmentation.
RESERVED_KEYS = {
    "model.name": "SC-SDC compares MLPs",
    "model.width": "the widths come from --widths and --max-width",
    "model.bias": "SC-SDC trains without Linear biases",
    "training.seed": "seeds come from --seeds",
}
EXTRA_FACTOR_KEYS = ("dataset.augment",)


def parse_widths(text: str) -> list[str]:
    """Split ``--widths`` into items and check their syntax (resolved later, when the max
    width is known): ``79`` (a width), ``10%`` (percent of the max width) or ``0.1`` (a
    fraction of it)."""
    items = [p.strip() for p in (text or "").split(",") if p.strip()]
    if not items:
        raise ConfigError(f"--widths needs at least one width, e.g. --widths 10%,30%,50% or "
                          f"--widths 79,236,394; got {text!r}")
    for item in items:
        _width_value(item, 100)
    return items


def _width_value(item: str, max_width: int) -> int:
    """One ``--widths`` item as an absolute width for ``max_width``."""
    bad = ConfigError(f"--widths items must be widths (integers >= 1), percentages of the max "
                      f"width (10%) or fractions of it (0.1), got {item!r}")
    try:
        if item.endswith("%"):
            value = float(item[:-1])
            if not 0 < value <= 100:
                raise ConfigError(f"--widths percentages must be in (0%, 100%], got {item!r}")
            fraction = value / 100
        elif any(c in item for c in ".eE"):
            fraction = float(item)
            if not 0 < fraction <= 1:
                raise ConfigError(f"--widths fractions must be in (0, 1], got {item!r}")
        else:
            width = int(item)
            if width < 1:
                raise bad
            return width
    except ValueError:
        raise bad from None
    if math.isnan(fraction):
        raise bad
    return max(1, math.floor(fraction * max_width + 0.5))


def resolve_widths(items: Sequence[str], max_width: int, max_width_from: str) -> list[int]:
    """Absolute comparison widths, ascending; each must be <= ``max_width``."""
    widths = []
    for item in items:
        width = _width_value(item, max_width)
        if width > max_width:
            raise ConfigError(f"--widths: {item} is above the max width {max_width} "
                              f"({max_width_from}); give widths <= {max_width} or raise "
                              "--max-width")
        if width in widths:
            raise ConfigError(f"--widths: {item} gives width {width} twice; give distinct "
                              "widths")
        widths.append(width)
    return sorted(widths)


def factor_keys() -> list[str]:
    """Every ``section.key`` ``--factor`` accepts."""
    import dataclasses

    from snas.core.catalog import MODELS
    from snas.core.config import SECTIONS

    keys = {f"model.{f.name}" for f in dataclasses.fields(MODELS.options("mlp"))}
    keys |= {f"training.{f.name}" for f in dataclasses.fields(SECTIONS["training"])}
    keys |= set(EXTRA_FACTOR_KEYS)
    return sorted(keys - set(RESERVED_KEYS))


def parse_factors(items: Sequence[str] | None) -> list[tuple[str, list[str]]]:
    """``["model.batch_norm=true,false", ...]`` -> ``[("model.batch_norm", ["true",
    "false"]), ...]`` (values checked later, against the space file)."""
    factors: list[tuple[str, list[str]]] = []
    allowed = factor_keys()
    for item in items or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in raw.split(",")]
        if not sep or not key or not all(values):
            raise ConfigError(f"--factor takes section.key=value1,value2,... (e.g. "
                              f"model.batch_norm=true,false), got {item!r}")
        if key in RESERVED_KEYS:
            raise ConfigError(f"--factor {key} cannot be swept: {RESERVED_KEYS[key]}; "
                              f"allowed keys: {', '.join(allowed)}")
        if key not in allowed:
            raise ConfigError(f"--factor: unknown key {key!r}; allowed keys: "
                              f"{', '.join(allowed)}")
        if any(key == k for k, _ in factors):
            raise ConfigError(f"--factor {key} is given twice; list all its values in one "
                              f"--factor {key}=a,b")
        if len(set(values)) != len(values):
            raise ConfigError(f"--factor {key} repeats a value: {raw!r}")
        factors.append((key, values))
    return factors


def factor_levels(factors: Sequence[tuple[str, Sequence[str]]]) -> list[dict[str, str]]:
    """The cross product of the factors' values: one ``{key: value}`` per level."""
    keys = [k for k, _ in factors]
    return [dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(values for _, values in factors))]


def level_label(level: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in level.items()) or "as in the space file"


def check_compare_space(space: Any, where: str) -> None:
    """The space must describe an SC-SDC MLP: model mlp, kernel random, no biases."""
    if space.model.name != "mlp":
        raise ConfigError(f"{where}: snas compare needs model.name: mlp (SC-SDC compares "
                          f"MLPs), got {space.model.name!r}")
    if space.kernel.name != "random":
        raise ConfigError(f"{where}: snas compare needs kernel.name: random (fixed "
                          f"exact-count masks), got {space.kernel.name!r}")
    if getattr(space.kernel.options, "init_fan_in", None) is not None:
        raise ConfigError(f"{where}: remove kernel.init_fan_in: snas compare gives every "
                          "sparse layer the dense layer's fan-in itself")
    if space.model.options.bias:
        raise ConfigError(f"{where}: SC-SDC trains without Linear biases: set model.bias: "
                          "false in the file or add --set model.bias=false")


def level_spaces(text: str, source: str, overrides: Sequence[str],
                 levels: Sequence[Mapping[str, str]]) -> list[Any]:
    """The validated space of every level: the file + ``--set`` overrides + the level's
    factor values (a bad value is a ConfigError naming the level)."""
    from snas.core.config import parse_space_text

    spaces = []
    for level in levels:
        level_overrides = [f"{k}={v}" for k, v in level.items()]
        try:
            space = parse_space_text(text, [*overrides, *level_overrides], source=source)
        except ConfigError as exc:
            if not level:
                raise
            raise ConfigError(f"--factor level {level_label(level)}: {exc}") from None
        check_compare_space(space, source if not level else
                            f"{source} with {level_label(level)}")
        spaces.append(space)
    return spaces


def _with_seed(space: Any, seed: int) -> Any:
    import dataclasses

    return space.replace(training=dataclasses.replace(space.training, seed=seed))


def plan_pairs(spaces: Sequence[Any], levels: Sequence[Mapping[str, str]],
               widths: Sequence[int], seeds: Sequence[int], max_width: int,
               input_shape: tuple[int, ...], num_classes: int) -> list[dict[str, Any]]:
    """Per factor level (its validated space) and width: the matched layers and the
    (dense, sparse) Tune configs, one pair per seed. Imports torch."""
    from trainables.sc_sdc import pair_configs, same_capacity_pair

    plan = []
    for index, (space, level) in enumerate(zip(spaces, levels, strict=True)):
        per_width = []
        for width in widths:
            dense, sparse, layers = same_capacity_pair(space, input_shape, num_classes, width,
                                                       max_width)
            configs = []
            for seed in seeds:
                role = {"level": index, "factors": dict(level), "seed": seed}
                configs.append(pair_configs(_with_seed(dense, seed), _with_seed(sparse, seed),
                                            layers, role))
            active = sum(layer.active_weights for layer in layers)
            total = sum(math.prod(layer.sparse_shape) for layer in layers)
            per_width.append({"width": width, "active_weights": active,
                              "sparse_density": active / total,
                              "layers": [{"name": layer.name,
                                          "dense_shape": list(layer.dense_shape),
                                          "sparse_shape": list(layer.sparse_shape),
                                          "active_weights": layer.active_weights,
                                          "sparse_density": layer.sparse_density,
                                          "init_fan_in": layer.init_fan_in}
                                         for layer in layers],
                              "configs": configs})
        plan.append({"factors": dict(level), "widths": per_width})
    return plan


def trial_configs(plan: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every Tune config of a plan, in run order: level, width, seed, then dense, sparse."""
    return [c for level in plan for w in level["widths"] for pair in w["configs"]
            for c in pair]


__all__ = ["EXTRA_FACTOR_KEYS", "RESERVED_KEYS", "check_compare_space", "factor_keys",
           "factor_levels", "level_label", "level_spaces", "parse_factors", "parse_widths",
           "plan_pairs", "resolve_widths", "trial_configs"]
