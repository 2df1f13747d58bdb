"""Pieces every ``snas`` subcommand shares: the store option, output files, data paths.

Command modules import these from here (never from :mod:`snas.cli`, the entry point).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from snas.core.errors import ConfigError

STORE_HELP = ("results store: any SQLAlchemy URL (default sqlite:///$SNAS_HOME/results.db, "
              "SNAS_HOME=~/.snas)")


def open_store(url: str | None, *, read_only: bool = False) -> Any:
    """The results store at ``url`` (default: :func:`snas.store.default_store_url`), for
    writing (commands that run trials: its tables are created if absent) or, with
    ``read_only``, for reading (:func:`open_reader`)."""
    from snas.store import ResultsStore, default_store_url

    return ResultsStore(url or default_store_url(create=not read_only), read_only=read_only)


def open_reader(url: str | None) -> Any:
    """The results store at ``url`` opened read-only: every command that only reads
    (list, show, export, report, dashboard, analyze, topology) opens it here. It never
    creates a database, a table or a file and never switches the journal mode; a missing
    or foreign database is a one-line StoreError."""
    return open_store(url, read_only=True)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict)
                   else {f"{prefix}{key}": value})
    return out


def check_same_space(name: str, record: dict[str, Any], space: Any,
                     storage_path: str | None = None) -> None:
    """Refuse to resume search ``name`` (its stored ``record``) with a space (the file,
    ``--set`` and the flags that override it) or an explicit ``--storage-path`` other than
    the stored ones; the ConfigError names every key that differs."""
    from snas.core.config import SpaceConfig

    stored = _flat(SpaceConfig.from_dict(record["space"]).to_dict())
    given = _flat(space.to_dict())
    missing = object()
    keys = sorted(k for k in stored.keys() | given.keys()
                  if stored.get(k, missing) != given.get(k, missing))
    diffs = [f"{k} (stored {stored.get(k)!r}, given {given.get(k)!r})" for k in keys]
    if storage_path is not None:
        folder = Path(storage_path).expanduser().resolve() / name
        if Path(record["storage_path"]) != folder:
            diffs.append(f"--storage-path (stored {str(Path(record['storage_path']).parent)!r}, "
                         f"given {str(folder.parent)!r})")
    if diffs:
        shown = "; ".join(diffs[:6]) + (f"; and {len(diffs) - 6} more" if len(diffs) > 6 else "")
        raise ConfigError(f"search {name!r} was started with other settings, so --resume "
                          f"would not continue it as asked: {shown}; give the stored values "
                          f"(or run `snas resume {name}`), or pick another --name")


def fmt_number(value: Any, spec: str = ".4f") -> str:
    """``value`` formatted with ``spec``; ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


# trainables.checkpoint.CHECKPOINT_FILE, named here because that module imports torch.
_CHECKPOINT_FILE = "trial.pt"


def store_files(url: str | None) -> tuple[Path, ...]:
    """The files of the results store at ``url`` (default store if None): the SQLite
    database and its journal files; none for in-memory or server databases."""
    import sqlalchemy as sa

    from snas.store import default_store_url
    from snas.store._engine import sqlite_file

    try:
        file = sqlite_file(sa.make_url(url or default_store_url()))
    except (sa.exc.ArgumentError, ValueError):
        return ()  # not a URL: opening the store says so
    if file is None:
        return ()
    return tuple(Path(f"{file}{suffix}") for suffix in ("", "-wal", "-shm", "-journal"))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:  # one of them does not exist (yet)
        pass
    return a.resolve() == b.resolve()


def check_output_path(path: str | Path, flag: str, *,
                      protected: Iterable[str | Path | None] = ()) -> Path:
    """Refuse an output path that cannot be written, before any work is done.

    The output replaces ``path`` (:func:`write_json_atomic`), so it must not be an input:
    not a symlink or special file (FIFO, device, socket), not one of ``protected`` (the
    results store's files, the search-space file, ...), not a trial checkpoint's file.
    """
    path = Path(path)
    if path.is_symlink():
        raise ConfigError(f"{flag} {str(path)!r} is a symbolic link; give a regular file path")
    if path.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a directory; give a file path")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{flag} {str(path)!r} is not a regular file (a FIFO, device or "
                          "socket); give a regular file path")
    if not path.parent.is_dir():
        raise ConfigError(f"{flag} folder does not exist: {str(path.parent)!r}")
    for source in protected:
        if source is not None and _same_file(path, Path(source)):
            raise ConfigError(f"{flag} {str(path)!r} is an input of this command ({source}); "
                              "give another output file")
    if path.name == _CHECKPOINT_FILE or (path.parent / _CHECKPOINT_FILE).exists():
        raise ConfigError(f"{flag} {str(path)!r} is in a trial checkpoint folder; give "
                          "another output file")
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


__all__ = ["STORE_HELP", "absolute_data_root", "check_output_path", "check_same_space",
           "fmt_number", "open_reader", "open_store", "store_files", "write_json_atomic"]
