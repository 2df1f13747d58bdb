"""Density rules, in one place.

``density`` always means the fraction of a layer's weights that are **kept**. A layer of
``n`` weights at density ``d`` keeps exactly :func:`kept_count` ``(d, n) = max(1, round(d *
n))`` weights (Python's ``round``, ties to even), never more than ``n``: the kernels realise
this count and the budget code charges it.

The density vector travels to a Tune trial as flat config keys (the *wire format*): one key
per maskable layer, :func:`density_key` ``(i)`` = ``d_00``, ``d_01``, ..., in model order, or
the single key :data:`DENSITY_KEY` (``density``) when one scalar is searched for every layer.
:func:`density_from_config` reads either back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from snas.core.errors import ConfigError

DENSITY_KEY = "density"
_PREFIX = "d_"


def kept_count(density: float, numel: int) -> int:
    """Weights kept in a layer of ``numel`` weights at ``density``: ``max(1, round(d * n))``
    with Python's ``round`` (ties to even), never more than ``numel``."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    return min(numel, max(1, round(density * numel)))


def density_key(index: int) -> str:
    """Config key of the ``index``-th maskable layer's density (``d_00``, ``d_01``, ...)."""
    return f"{_PREFIX}{index:02d}"


def density_keys(n_layers: int, uniform: bool = False) -> tuple[str, ...]:
    """The config keys of a search over ``n_layers`` layers (one scalar key when uniform)."""
    return (DENSITY_KEY,) if uniform else tuple(density_key(i) for i in range(n_layers))


def is_density_key(key: str) -> bool:
    return key == DENSITY_KEY or (key.startswith(_PREFIX) and key[len(_PREFIX):].isdigit())


def density_from_config(config: Mapping[str, Any]) -> float | list[float]:
    """The density (scalar or vector) a trial's config asks for; 1.0 (dense) when it has no
    density key."""
    if DENSITY_KEY in config:
        return float(config[DENSITY_KEY])
    keys = sorted(k for k in config if k.startswith(_PREFIX) and k[len(_PREFIX):].isdigit())
    if not keys:
        return 1.0
    return [float(config[k]) for k in keys]


def density_list(config: Mapping[str, Any]) -> list[float]:
    """:func:`density_from_config` as a list (a scalar becomes a one-entry list)."""
    d = density_from_config(config)
    return [d] if isinstance(d, float) else d


def is_dense(config: Mapping[str, Any]) -> bool:
    """Whether a trial config is the dense baseline (every density 1.0)."""
    density = density_list(config)
    return bool(density) and all(d == 1.0 for d in density)


def check_density(value: Any, where: str = "density") -> float:
    """``value`` as a density in (0, 1] or a one-line ConfigError naming ``where``."""
    try:
        d = float(value)
    except (TypeError, ValueError):
        d = math.nan
    if isinstance(value, bool) or not 0.0 < d <= 1.0:  # also rejects NaN
        raise ConfigError(f"{where} must be in (0, 1] (fraction of weights kept), got {value!r}")
    return d


def expand_density(density: float | Sequence[float], n_layers: int,
                   names: Sequence[str] = ()) -> list[float]:
    """A scalar density means the same density for every layer; a vector must have one
    entry per layer. Every entry is checked with :func:`check_density`."""
    if isinstance(density, (int, float)) and not isinstance(density, bool):
        values = [density] * n_layers
    else:
        values = list(density)
        if len(values) != n_layers:
            listed = f" ({', '.join(names)})" if names else ""
            raise ConfigError(f"density vector has {len(values)} entries but the model has "
                              f"{n_layers} maskable layers{listed}; give one per layer or a "
                              "single scalar")
    return [check_density(d, f"density[{i}]") for i, d in enumerate(values)]


def parse_density(text: str, flag: str = "--density") -> float | list[float]:
    """``0.5`` -> 0.5 (every layer); ``0.5,0.3,1`` -> one density per maskable layer."""
    values = []
    for part in (p.strip() for p in text.split(",")):
        try:
            float(part)
        except ValueError:
            raise ConfigError(f"{flag} takes a number in (0, 1] or a comma-separated list "
                              f"of them, got {text!r}") from None
        values.append(check_density(float(part), f"{flag} entries"))
    return values[0] if len(values) == 1 else values


__all__ = ["DENSITY_KEY", "check_density", "density_from_config", "density_key", "density_keys",
           "density_list", "expand_density", "is_dense", "is_density_key", "kept_count",
           "parse_density"]
