"""Where snas keeps things on disk by default: one rule for ``SNAS_HOME``.

``SNAS_HOME`` (unset or empty: ``~/.snas``) holds the default results store
(``results.db``) and experiment folders (``experiments/NAME``). The variable is read when a
path is asked for, never at import, so a test or a caller may set it at any time.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = "~/.snas"


def snas_home() -> Path:
    """``$SNAS_HOME`` as an absolute path (``~/.snas`` when unset or empty)."""
    return Path(os.environ.get("SNAS_HOME") or DEFAULT_HOME).expanduser().absolute()


def default_storage_path() -> Path:
    """Where experiment folders live: ``$SNAS_HOME/experiments``."""
    return snas_home() / "experiments"


def ensure_storage_path(path: str | Path, flag: str = "--storage-path") -> Path:
    """Create the experiment folder root ``path`` (and its parents) if needed and check
    that snas can write there; a one-line ConfigError otherwise, before anything is stored."""
    from snas.core.errors import ConfigError

    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{flag} {str(folder)!r} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{flag} {str(folder)!r}: cannot create the folder "
                          f"({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {str(folder)!r} is not writable")
    return folder


def check_search_name(name: str) -> str:
    """A search name becomes a folder name: letters, digits, ``-``, ``_``, ``.`` only."""
    import re

    from snas.core.errors import SearchError

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name or ""):
        raise SearchError(f"search name must be 1-100 characters of letters, digits, '.', '_' "
                          f"or '-' starting with a letter or digit, got {name!r}")
    return name


def check_new_experiment(store, name: str, storage_path: str | Path, *,
                         taken_hint: str = "pick another --name") -> Path:
    """Refuse a name the store or the experiment folders already hold; the run's folder.

    Cheap: callers with expensive preparation call it first, :func:`snas.runner.run`
    again.
    """
    from snas.core.errors import SearchError

    check_search_name(name)
    if store.get_search(name) is not None:
        raise SearchError(f"a search named {name!r} already exists in {store.url}; "
                          f"{taken_hint}")
    folder = Path(storage_path) / name
    if folder.exists():
        raise SearchError(f"experiment folder {str(folder)!r} already exists; pick another "
                          "--name or remove the folder")
    return folder


__all__ = ["check_new_experiment", "check_search_name", "default_storage_path",
           "ensure_storage_path", "snas_home"]
