"""Connecting to the results store's database: the default URL, SQLAlchemy engines (SQLite
in WAL mode with a busy timeout and ``BEGIN IMMEDIATE`` for writes), the one-line reason of
a database error with the password masked, and the upsert every write uses.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as _pg
from sqlalchemy.dialects import sqlite as _sqlite

from snas.core.errors import StoreError
from snas.paths import snas_home

_SQLITE_BUSY_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10


def default_store_url(create: bool = True) -> str:
    """``sqlite:///$SNAS_HOME/results.db`` (``SNAS_HOME`` defaults to ``~/.snas``).

    Creates the folder (unless ``create`` is false: readers), so the URL can be opened
    right away.
    """
    home = snas_home()
    if not create:
        return sa.URL.create("sqlite", database=str(home / "results.db")).render_as_string()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the snas home folder {home} (set SNAS_HOME to "
                         f"another folder): {exc.strerror or exc}") from exc
    return sa.URL.create("sqlite", database=str(home / "results.db")).render_as_string()


_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def mask_url(url: str | sa.URL) -> str:
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: mask what looks like user:password@
        return _PASSWORD_IN_URL.sub(r"\1***@", url)


def _one_line(text: str, secret: str | None = None) -> str:
    text = text.split("(Background on this error at:")[0]
    if secret:
        text = text.replace(secret, "***")
    return " ".join(text.split()).rstrip(".")


def error_reason(exc: BaseException, url: sa.URL | None = None) -> str:
    """Why ``exc`` happened, in one line, without SQL, traceback hints or the password."""
    secret = url.password if url is not None else None
    if isinstance(exc, sa_exc.NoSuchModuleError):
        name = url.drivername if url is not None else "?"
        builtin = ", ".join(sorted(getattr(sa.dialects, "__all__", ())))
        return f"unknown database dialect or driver {name!r} (built-in dialects: {builtin})"
    if isinstance(exc, ImportError):
        driver = exc.name or str(exc)
        return (f"the database driver {driver!r} is not installed (pip install it, or name "
                f"another installed driver in the URL: dialect+driver://...)")
    if isinstance(exc, (ValueError, TypeError)):
        return f"invalid URL argument ({_one_line(str(exc), secret)})"
    if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None:
        return _one_line(str(exc.orig) or type(exc.orig).__name__, secret)
    return _one_line(str(exc) or type(exc).__name__, secret)


def sqlite_file(url: sa.URL) -> Path | None:
    """The database file of a file-based SQLite URL, else None (memory, URI, other dialects)."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(db)


def sqlite_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a SQLite database, or None if it can (or already does)."""
    if path.exists():
        return f"{path} is a folder, not a database file" if path.is_dir() else None
    parent = path.absolute().parent
    if not parent.is_dir():
        return f"folder {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder {parent} is not writable"
    return None


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _sqlite_read_only_creator(path: Path) -> Any:
    """Connections to ``path`` opened ``mode=ro``: SQLite itself refuses every write, and a
    missing file is an error instead of a new empty database."""
    import sqlite3
    from urllib.parse import quote

    uri = f"file:{quote(str(path.absolute()))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, timeout=_SQLITE_BUSY_TIMEOUT_S,
                               check_same_thread=False)

    return connect


def postgres_driver(url: sa.URL) -> sa.URL:
    """``postgresql://`` means SQLAlchemy's default driver, psycopg2; where only psycopg
    (v3, the ``snas[postgres]`` extra) is installed, use that one."""
    if url.drivername != "postgresql":
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg"):
        return url.set(drivername="postgresql+psycopg")
    return url


def make_engine(url: sa.URL, read_only: bool = False) -> sa.Engine:
    """An engine for ``url``; ``read_only``: one that cannot write (SQLite ``mode=ro`` with
    ``query_only``, PostgreSQL read-only sessions, no journal-mode switch)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"timeout": _SQLITE_BUSY_TIMEOUT_S}}
        file = sqlite_file(url)
        if file is None:  # in-memory: one shared connection, else each is empty
            kwargs["connect_args"]["check_same_thread"] = False
            kwargs["poolclass"] = sa.pool.StaticPool
        elif read_only:
            kwargs = {"creator": _sqlite_read_only_creator(file),
                      "poolclass": sa.pool.QueuePool}
        engine = sa.create_engine(url, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            # sqlite3 would BEGIN lazily (deferred); we emit BEGIN ourselves, see _on_begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if read_only:  # no WAL switch: a reader leaves the file as it found it
                cursor.execute("PRAGMA query_only=ON")
            else:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes in WAL
                cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # A deferred write transaction that started as a read fails at once with
            # "database is locked" if another writer committed meanwhile; IMMEDIATE waits.
            write = conn.get_execution_options().get("snas_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write and not read_only else "BEGIN")

        return engine
    url = postgres_driver(url)
    kwargs = {"pool_pre_ping": True}
    if backend == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    engine = sa.create_engine(url, **kwargs)
    if read_only and backend == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _read_only_session(dbapi_connection: Any, record: Any) -> None:
            # Every transaction of the session is READ ONLY: the server refuses writes.
            cursor = dbapi_connection.cursor()
            cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cursor.close()
            dbapi_connection.commit()
    return engine


def upsert(conn: sa.Connection, table: sa.Table, key: dict[str, Any],
            values: dict[str, Any], update: dict[str, Any] | None = None) -> None:
    """Insert ``key | values``; if ``key`` exists (unique constraint), set ``update``."""
    update = values if update is None else update
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (_sqlite if dialect == "sqlite" else _pg).insert(table).values(**key, **values)
        conn.execute(insert.on_conflict_do_update(index_elements=list(key), set_=update))
        return
    # Other backends: the write transaction makes update-else-insert atomic enough for the
    # one writer a search has (the Tune driver).
    where = [table.c[k] == v for k, v in key.items()]
    if not conn.execute(sa.update(table).where(*where).values(**update)).rowcount:
        conn.execute(sa.insert(table).values(**key, **values))
