"""The parsing mechanism of search-space files: frozen dataclasses parsed strictly.

:func:`parse_section` builds a dataclass from a mapping; every key is checked against the
class's fields (unknown keys are errors), every value is coerced to the field's type
annotation, and numeric fields declared with :func:`spec` are range-checked. Every problem
is a one-line :class:`~snas.core.errors.ConfigError` naming the key, e.g.
``model.width must be an integer >= 1, got -3``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field
from typing import Any, Literal

from snas.core.errors import ConfigError


def spec(default: Any, *, min: float | None = None, max: float | None = None,
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


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` as type ``tp`` or raise a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        if isinstance(value, Mapping):  # a section: its own error names the bad key
            for arg in typing.get_args(tp):
                if dataclasses.is_dataclass(arg):
                    return parse_section(arg, value, where)
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, where)
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
        return tuple(coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value))
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
        kwargs[name] = coerce(value, hints[name], key_where)
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


__all__ = ["coerce", "parse_section", "spec", "to_dict"]
