"""Pieces every ``snas`` subcommand shares: the store option, output files, data paths.

Command modules import these from here (never from :mod:`snas.cli`, the entry point).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from snas.core.errors import ConfigError

STORE_HELP = ("results store: any SQLAlchemy URL (default sqlite:///$SNAS_HOME/results.db, "
              "SNAS_HOME=~/.snas)")


def open_store(url: str | None) -> Any:
    """The results store at ``url`` (default: :func:`snas.store.default_store_url`)."""
    from snas.store import ResultsStore, default_store_url

    return ResultsStore(url or default_store_url())


def fmt_number(value: Any, spec: str = ".4f") -> str:
    """``value`` formatted with ``spec``; ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def check_output_path(path: str | Path, flag: str) -> Path:
    """Refuse an output path that cannot be written, before any work is done."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a directory; give a file path")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} folder does not exist: {str(path.parent)!r}")
    return path


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON to ``path`` via a temporary file and rename: never half-written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=float) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def absolute_data_root(space: Any, base: Path) -> Any:
    """Trials run in other working directories: make a relative data_root absolute."""
    root = space.dataset.data_root
    if root and not Path(root).expanduser().is_absolute():
        import dataclasses

        absolute = str((base / root).resolve()) if (base / root).exists() else str(
            Path(root).resolve())
        return space.replace(dataset=dataclasses.replace(space.dataset, data_root=absolute))
    return space


__all__ = ["STORE_HELP", "absolute_data_root", "check_output_path", "fmt_number", "open_store",
           "write_json_atomic"]
