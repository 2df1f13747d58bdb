"""Values on their way into and out of the results store: argument checks (each
``ValueError`` names the argument), plain JSON data (non-finite floats become null;
numpy/torch scalars and arrays become numbers/lists), the number columns copied from a
metrics dict, and the objective a stored search optimises (:func:`search_objective`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

from snas.core import metrics as M
from snas.store._schema import NAME_MAX


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > NAME_MAX:
        raise ValueError(f"{what} must be a non-empty string of at most {NAME_MAX} "
                         f"characters, got {value!r}")
    return value


def check_choice(value: Any, allowed: Sequence[str], what: str) -> str:
    if value not in allowed or not isinstance(value, str):
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def optional_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON data; non-finite floats become None (JSON has no NaN)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {(k if isinstance(k, str) else str(k)): jsonable(v, f"{where}[{k!r}]")
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays, without importing either
        return jsonable(value.tolist(), where)
    if isinstance(value, numbers.Real):
        return jsonable(float(value), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ValueError(f"{where} must be JSON data (numbers, strings, lists, dicts), "
                     f"got {type(value).__name__}")


def json_dict(value: Any, where: str) -> dict[str, Any]:
    """``value`` (a mapping) as plain JSON data (:func:`jsonable`).

    Data that is plain JSON already (a wiring graph read back from its file) is returned as
    it is: ``json.dumps`` (C) checks it ~10x faster than the walk, and the store's JSON
    column writes the same text from it.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a dict, got {type(value).__name__}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):  # numpy values, NaN, objects: converted (or refused)
        return jsonable(value, where)
    return value


def number_columns(data: Mapping[str, Any], names: Sequence[str], where: str
                    ) -> dict[str, float | None]:
    """The column copies of ``data[name]``: a float, or None when absent or non-finite."""
    out: dict[str, float | None] = {}
    for name in names:
        value = data.get(name)
        if value is not None and (isinstance(value, bool)
                                  or not isinstance(value, numbers.Real)):
            raise ValueError(f"{where}[{name!r}] must be a number, got {value!r}")
        out[name] = None if value is None or not math.isfinite(value) else float(value)
    return out


def check_density(value: Any) -> list[float]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        if hasattr(value, "tolist"):
            return check_density(value.tolist())
        raise ValueError(f"density must be a list of numbers in [0, 1], got {value!r}")
    out = []
    for i, d in enumerate(value):
        d = d.item() if hasattr(d, "item") else d
        if isinstance(d, bool) or not isinstance(d, numbers.Real) or not 0.0 <= d <= 1.0:
            raise ValueError(f"density[{i}] must be a number in [0, 1], got {d!r}")
        out.append(float(d))
    return out


def search_objective(params: Any, space: Any) -> tuple[str, str]:
    """(metric, mode) a search optimises: from its ``params``, else the space's ``search``
    section, else ``val_accuracy``/``max``. Every reader takes them from here."""
    params = params if isinstance(params, Mapping) else {}
    section = space.get("search") if isinstance(space, Mapping) else None
    section = section if isinstance(section, Mapping) else {}
    metric = params.get("metric") or section.get("metric") or M.VAL_ACCURACY
    mode = params.get("mode") or section.get("mode") or "max"
    return metric, mode
