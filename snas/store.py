"""The results store: searches, their trials, per-epoch metrics, summaries and wiring graphs.

A real database through SQLAlchemy: a SQLite file by default (:func:`default_store_url`),
any SQLAlchemy URL otherwise (``postgresql://user@host/db``). The Tune callback writes it
from the driver process; ``snas show``, export and the dashboard read it from other
processes while a search runs.

Guarantees:

* Every public write is one transaction and is idempotent: a resumed search re-sends
  results for epochs it already sent, so rows are keyed by unique constraints
  (search name; (search, trial id); (trial, epoch); one summary and one graph per trial) and
  written as upserts. Re-recording replaces, it never duplicates.
* SQLite runs in WAL mode with a busy timeout, so readers never block the writer and the
  writer never blocks readers. Writes take the write lock at BEGIN (``BEGIN IMMEDIATE``)
  so two writers queue on the busy timeout instead of failing on a lock upgrade.
* Names (search names, trial ids) are bound parameters, never SQL text.
* Failures are :class:`~snas.core.errors.StoreError` (or :class:`~snas.core.errors.SearchError` for a
  search that exists / does not exist) with one line naming the URL, password masked.
  Bad arguments from calling code are ``ValueError`` naming the argument.
* JSON has no NaN or infinity: non-finite floats are stored as null (a diverged loss reads
  back as ``None``/NaN). numpy/torch scalars and arrays are stored as plain numbers/lists.

This module imports neither torch nor ray (pandas only inside the ``*_frame`` methods).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import numbers
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as _pg
from sqlalchemy.dialects import sqlite as _sqlite

from snas.core import faults
from snas.core import metrics as M
from snas.core.errors import SearchError, StoreError
from snas.paths import snas_home

__all__ = ["SEARCH_STATUSES", "TRIAL_STATUSES", "ResultsStore", "default_store_url",
           "search_objective"]

SEARCH_STATUSES = ("running", "finished", "interrupted", "failed")
# "stopped" = early-stopped by the scheduler (ASHA); "terminated" = ran to its last epoch.
TRIAL_STATUSES = ("pending", "running", "terminated", "stopped", "error")

# Metrics kept as real columns besides the full JSON dict (what readers sort and filter on).
EPOCH_COLUMNS = (M.VAL_ACCURACY, M.VAL_LOSS, M.TRAIN_LOSS, M.TRAIN_ACCURACY, M.EGF_1, M.EGF_2,
                 M.ACTIVE_WEIGHTS)
SUMMARY_COLUMNS = (M.TEST_ACCURACY, M.TEST_LOSS, M.VAL_ACCURACY,
                   M.ACTIVE_WEIGHTS)

_NAME_MAX = 255
_SQLITE_BUSY_TIMEOUT_S = 30.0
_CONNECT_TIMEOUT_S = 10
# Fields of a trial dict; metrics with the same name do not overwrite them.
_TRIAL_FIELDS = ("trial_id", "status", "is_baseline", "node_id", "epochs", "density", "config",
                 "error", "checkpoint_path", "has_summary", "has_graph", "created_at",
                 "updated_at")

# --------------------------------------------------------------------------------------
# Schema


class _UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


_JSON = sa.JSON(none_as_null=True).with_variant(_pg.JSONB(none_as_null=True), "postgresql")

_metadata = sa.MetaData(naming_convention={
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
})

searches = sa.Table(
    "searches", _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(_NAME_MAX), nullable=False, unique=True),
    sa.Column("space_text", sa.Text, nullable=False),
    sa.Column("space", _JSON, nullable=False),
    sa.Column("searcher", sa.String(64), nullable=False),
    sa.Column("num_samples", sa.Integer, nullable=False),
    sa.Column("storage_path", sa.Text, nullable=False),
    sa.Column("params", _JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", _UTCDateTime, nullable=False),
    sa.Column("updated_at", _UTCDateTime, nullable=False),
    sa.Column("finished_at", _UTCDateTime),
)

trials = sa.Table(
    "trials", _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("search_id", sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False),
    sa.Column("trial_id", sa.String(_NAME_MAX), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("density", _JSON),
    sa.Column("config", _JSON),
    sa.Column("error", sa.Text),
    sa.Column("checkpoint_path", sa.Text),
    sa.Column("node_id", sa.String(_NAME_MAX)),
    sa.Column("is_baseline", sa.Boolean, nullable=False),
    sa.Column("created_at", _UTCDateTime, nullable=False),
    sa.Column("updated_at", _UTCDateTime, nullable=False),
    sa.UniqueConstraint("search_id", "trial_id"),
)

epochs = sa.Table(
    "epochs", _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_pk", sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Float) for name in EPOCH_COLUMNS),
    sa.Column("metrics", _JSON, nullable=False),
    sa.Column("recorded_at", _UTCDateTime, nullable=False),
    sa.UniqueConstraint("trial_pk", "epoch"),
)

summaries = sa.Table(
    "summaries", _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_pk", sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False,
              unique=True),
    *(sa.Column(name, sa.Float) for name in SUMMARY_COLUMNS),
    sa.Column("metrics", _JSON, nullable=False),
    sa.Column("recorded_at", _UTCDateTime, nullable=False),
)

graphs = sa.Table(
    "graphs", _metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_pk", sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False,
              unique=True),
    sa.Column("graph", _JSON, nullable=False),
    sa.Column("statistics", _JSON, nullable=False),
    sa.Column("recorded_at", _UTCDateTime, nullable=False),
)

# --------------------------------------------------------------------------------------
# Input checks and conversions


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _check_name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _NAME_MAX:
        raise ValueError(f"{what} must be a non-empty string of at most {_NAME_MAX} "
                         f"characters, got {value!r}")
    return value


def _check_choice(value: Any, allowed: Sequence[str], what: str) -> str:
    if value not in allowed or not isinstance(value, str):
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _optional_text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return value


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON data; non-finite floats become None (JSON has no NaN)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {(k if isinstance(k, str) else str(k)): _jsonable(v, f"{where}[{k!r}]")
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # numpy / torch scalars and arrays, without importing either
        return _jsonable(value.tolist(), where)
    if isinstance(value, numbers.Real):
        return _jsonable(float(value), where)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ValueError(f"{where} must be JSON data (numbers, strings, lists, dicts), "
                     f"got {type(value).__name__}")


def _json_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a dict, got {type(value).__name__}")
    return _jsonable(value, where)


def _number_columns(data: Mapping[str, Any], names: Sequence[str], where: str
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


def _density(value: Any) -> list[float]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        if hasattr(value, "tolist"):
            return _density(value.tolist())
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


# --------------------------------------------------------------------------------------
# URLs and error messages


def default_store_url() -> str:
    """``sqlite:///$SNAS_HOME/results.db`` (``SNAS_HOME`` defaults to ``~/.snas``).

    Creates the folder, so the URL can be opened right away.
    """
    home = snas_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the snas home folder {home} (set SNAS_HOME to "
                         f"another folder): {exc.strerror or exc}") from exc
    return sa.URL.create("sqlite", database=str(home / "results.db")).render_as_string()


_PASSWORD_IN_URL = re.compile(r"(://[^:/@]*:)[^@]*@")


def _mask_url(url: str | sa.URL) -> str:
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


def _reason(exc: BaseException, url: sa.URL | None = None) -> str:
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


def _sqlite_file(url: sa.URL) -> Path | None:
    """The database file of a file-based SQLite URL, else None (memory, URI, other dialects)."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:") or url.query.get("mode") == "memory":
        return None
    return Path(db)


def _sqlite_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold a SQLite database, or None if it can (or already does)."""
    if path.exists():
        return f"{path} is a folder, not a database file" if path.is_dir() else None
    parent = path.absolute().parent
    if not parent.is_dir():
        return f"folder {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"folder {parent} is not writable"
    return None


def _remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def _create_engine(url: sa.URL) -> sa.Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"timeout": _SQLITE_BUSY_TIMEOUT_S}}
        if _sqlite_file(url) is None:  # in-memory: one shared connection, else each is empty
            kwargs["connect_args"]["check_same_thread"] = False
            kwargs["poolclass"] = sa.pool.StaticPool
        engine = sa.create_engine(url, **kwargs)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, record: Any) -> None:
            # sqlite3 would BEGIN lazily (deferred); we emit BEGIN ourselves, see _on_begin.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable across crashes in WAL mode
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # A deferred write transaction that started as a read fails at once with
            # "database is locked" if another writer committed meanwhile; IMMEDIATE waits.
            write = conn.get_execution_options().get("snas_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    kwargs = {"pool_pre_ping": True}
    if backend == "postgresql" and "connect_timeout" not in url.query:
        kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    return sa.create_engine(url, **kwargs)


def _upsert(conn: sa.Connection, table: sa.Table, key: dict[str, Any],
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


def _metric_order(names: set[str]) -> list[str]:
    """Known metrics in display order first, the others alphabetically."""
    known = [*M.EPOCH_SCALARS, M.TEST_LOSS, M.TEST_ACCURACY, M.REALIZED_DENSITY]
    first = [n for n in dict.fromkeys(known) if n in names]
    return first + sorted(names.difference(first))


# --------------------------------------------------------------------------------------
# The store


class ResultsStore:
    """Searches, trials and their metrics in a SQL database.

    Parameters
    ----------
    url:
        A SQLAlchemy URL: ``sqlite:////abs/path/results.db``, ``sqlite:///relative.db``,
        ``sqlite://`` (in memory), ``postgresql://user:password@host/db``...
        Tables are created if absent.

    Raises
    ------
    StoreError
        The URL is invalid, its driver is missing, the database is unreachable or the
        SQLite file cannot be created; the message names the URL with its password masked.
        A SQLite file this constructor created is removed again on failure.
    """

    def __init__(self, url: str | sa.URL) -> None:
        if not isinstance(url, (str, sa.URL)):
            raise ValueError(f"url must be a string, got {url!r}")
        self.url = _mask_url(url)
        try:
            parsed = sa.make_url(url)
        except (sa_exc.ArgumentError, ValueError) as exc:  # ValueError: e.g. a bad port
            raise StoreError(f"cannot open results store {self.url}: not a database URL "
                             f"(expected e.g. sqlite:////path/to/results.db or "
                             f"postgresql://user@host/db)") from exc
        file = _sqlite_file(parsed)
        if file is not None and (problem := _sqlite_file_problem(file)):
            raise StoreError(f"cannot open results store {self.url}: {problem}")
        existed = file is None or file.exists()
        engine = None
        try:
            engine = _create_engine(parsed)
            self._engine = engine
            self._writer = engine.execution_options(snas_write=True)
            self._create_tables()
        # ValueError/TypeError: URL query arguments the driver cannot convert (timeout=abc).
        except (sa_exc.SQLAlchemyError, ImportError, ValueError, TypeError) as exc:
            if engine is not None:
                engine.dispose()
            if not existed:
                _remove_sqlite_files(file)
            raise StoreError(f"cannot open results store {self.url}: "
                             f"{_reason(exc, parsed)}") from exc

    def _create_tables(self) -> None:
        with self._engine.connect() as conn:
            inspector = sa.inspect(conn)
            if all(inspector.has_table(t.name) for t in _metadata.sorted_tables):
                return  # the common case for readers: no write lock taken
        with self._writer.begin() as conn:
            _metadata.create_all(conn)

    def __repr__(self) -> str:
        return f"ResultsStore({self.url!r})"

    def close(self) -> None:
        """Close the store's connections (a later call reopens them)."""
        self._engine.dispose()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # -- transactions --------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sa_exc.SQLAlchemyError as exc:
            raise StoreError(f"results store {self.url}: cannot {action}: "
                             f"{_reason(exc, self._engine.url)}") from exc

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sa.Connection]:
        with self._errors(action), self._writer.begin() as conn:
            yield conn
            faults.point("store_write")  # inside the transaction, before its commit

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[sa.Connection]:
        # One transaction so that multi-query reads see one snapshot.
        with self._errors(action), self._engine.begin() as conn:
            yield conn

    def no_search(self, name: str) -> SearchError:
        """The one error for a search name that is not in this store."""
        return SearchError(f"no search named {name!r} in the results store {self.url}; "
                           "`snas list` shows the searches")

    def _search_pk(self, conn: sa.Connection, name: str) -> int:
        pk = conn.scalar(sa.select(searches.c.id).where(searches.c.name == name))
        if pk is None:
            raise self.no_search(name)
        return pk

    def _trial_pk(self, conn: sa.Connection, search: str, trial_id: str, now: dt.datetime
                  ) -> int:
        """The trial's row id; a trial that reports before it was announced is created."""
        search_pk = self._search_pk(conn, search)
        _upsert(conn, trials, {"search_id": search_pk, "trial_id": trial_id},
                {"status": "running", "is_baseline": False, "created_at": now,
                 "updated_at": now},
                {"updated_at": now})
        conn.execute(sa.update(searches).where(searches.c.id == search_pk)
                     .values(updated_at=now))
        return conn.scalar(sa.select(trials.c.id).where(trials.c.search_id == search_pk,
                                                        trials.c.trial_id == trial_id))

    # -- searches ------------------------------------------------------------------------

    def create_search(self, name: str, space_text: str, space: dict, searcher: str,
                      num_samples: int, storage_path: str, params: dict) -> None:
        """Store a new search with status ``running``.

        Raises SearchError if a search of that name exists (nothing is changed then).
        """
        _check_name(name, "name")
        if not isinstance(space_text, str):
            raise ValueError(f"space_text must be a string, got {type(space_text).__name__}")
        _check_name(searcher, "searcher")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        storage_path = _optional_text(storage_path, "storage_path")
        if storage_path is None:
            raise ValueError("storage_path must be a string, got None")
        row = {"name": name, "space_text": space_text, "space": _json_dict(space, "space"),
               "searcher": searcher, "num_samples": num_samples, "storage_path": storage_path,
               "params": _json_dict(params, "params"), "status": "running"}
        exists = SearchError(f"a search named {name!r} already exists in {self.url}; use "
                             f"`snas resume {name}` to continue it or pick another --name")
        now = _now()
        try:
            with self._write("create search") as conn:
                if conn.scalar(sa.select(searches.c.id).where(searches.c.name == name)):
                    raise exists
                conn.execute(sa.insert(searches).values(**row, created_at=now, updated_at=now))
        except StoreError as exc:  # a concurrent create won the race for the unique name
            if isinstance(exc.__cause__, sa_exc.IntegrityError):
                raise exists from None
            raise

    def get_search(self, name: str) -> dict[str, Any] | None:
        """The search's stored fields, or None if there is no search of that name."""
        with self._read("read search") as conn:
            row = conn.execute(sa.select(searches).where(searches.c.name == name)).first()
        return None if row is None else self._search_dict(row)

    def require_search(self, name: str) -> dict[str, Any]:
        """The search's stored fields; :meth:`no_search`'s SearchError if it is absent."""
        record = self.get_search(name)
        if record is None:
            raise self.no_search(name)
        return record

    def read_search(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """``(get_search fields, trials)`` of a search from one snapshot (one read
        transaction), for :class:`snas.view.SearchView`; SearchError if it is absent."""
        with self._read("read search") as conn:
            row = conn.execute(sa.select(searches).where(searches.c.name == name)).first()
            if row is None:
                raise self.no_search(name)
            return self._search_dict(row), self._trials(conn, row.id)

    @staticmethod
    def _search_dict(row: sa.Row) -> dict[str, Any]:
        data = dict(row._mapping)
        del data["id"]
        return data

    def list_searches(self) -> list[dict[str, Any]]:
        """All searches, newest first, with trial counts and the best value of their metric.

        Besides the :meth:`get_search` fields: ``n_trials``, ``trial_counts`` (status ->
        count, every status present), ``metric`` and ``mode`` (from ``params`` or the
        space's ``search`` section; default ``val_accuracy``/``max``), ``best_value`` (best
        over all recorded epochs, or over summaries for a summary-only metric; None if not
        a stored column or nothing recorded yet) and ``best_trial``.
        """
        with self._read("list searches") as conn:
            rows = conn.execute(sa.select(searches)
                                .order_by(searches.c.created_at.desc(), searches.c.id.desc())
                                ).all()
            counts: dict[int, dict[str, int]] = {}
            for search_id, status, n in conn.execute(
                    sa.select(trials.c.search_id, trials.c.status, sa.func.count())
                    .group_by(trials.c.search_id, trials.c.status)):
                counts.setdefault(search_id, {})[status] = n
            out = []
            for row in rows:
                data = self._search_dict(row)
                by_status = {s: counts.get(row.id, {}).get(s, 0) for s in TRIAL_STATUSES}
                data["n_trials"] = sum(counts.get(row.id, {}).values())
                data["trial_counts"] = by_status
                data.update(self._best(conn, row))
                out.append(data)
        return out

    @staticmethod
    def _best(conn: sa.Connection, row: sa.Row) -> dict[str, Any]:
        metric, mode = search_objective(row.params, row.space)
        best = {"metric": metric, "mode": mode, "best_value": None, "best_trial": None}
        table = (epochs if metric in EPOCH_COLUMNS
                 else summaries if metric in SUMMARY_COLUMNS else None)
        if table is None:
            return best
        column = table.c[metric]
        hit = conn.execute(
            sa.select(column, trials.c.trial_id)
            .join(trials, trials.c.id == table.c.trial_pk)
            .where(trials.c.search_id == row.id, column.is_not(None))
            .order_by(column.desc() if mode == "max" else column.asc()).limit(1)).first()
        if hit is not None:
            best["best_value"], best["best_trial"] = hit
        return best

    def set_search_status(self, name: str, status: str) -> None:
        """Set a search's status; a status other than ``running`` also sets ``finished_at``."""
        _check_choice(status, SEARCH_STATUSES, "status")
        now = _now()
        with self._write("set search status") as conn:
            pk = self._search_pk(conn, name)
            conn.execute(sa.update(searches).where(searches.c.id == pk).values(
                status=status, updated_at=now, finished_at=None if status == "running" else now))

    def update_search_params(self, name: str, updates: Mapping[str, Any]) -> None:
        """Merge ``updates`` into a search's ``params`` (e.g. its Pareto front at the end)."""
        data = _json_dict(dict(updates), "updates")
        with self._write("update search params") as conn:
            pk = self._search_pk(conn, name)
            params = conn.execute(sa.select(searches.c.params).where(searches.c.id == pk)
                                  ).scalar_one()
            conn.execute(sa.update(searches).where(searches.c.id == pk).values(
                params={**(params or {}), **data}, updated_at=_now()))

    def delete_search(self, name: str) -> None:
        """Delete a search with its trials, epochs, summaries and graphs."""
        with self._write("delete search") as conn:
            pk = self._search_pk(conn, name)
            # Explicit child deletes: ON DELETE CASCADE is declared too, but SQLite honours
            # it only with foreign_keys=ON, which another tool's connection may not set.
            trial_pks = sa.select(trials.c.id).where(trials.c.search_id == pk)
            for table in (epochs, summaries, graphs):
                conn.execute(sa.delete(table).where(table.c.trial_pk.in_(trial_pks)))
            conn.execute(sa.delete(trials).where(trials.c.search_id == pk))
            conn.execute(sa.delete(searches).where(searches.c.id == pk))

    def delete_trials(self, search: str, trial_ids: Sequence[str]) -> int:
        """Delete trials (with their epochs, summary and graph); returns how many existed.

        Used when a resumed search finds trials its restored Tune state never saved (the
        driver died within Tune's state-saving period): Tune starts them afresh under new
        ids, so their partial rows would otherwise stay as orphans.
        """
        ids = [_check_name(t, "trial_id") for t in trial_ids]
        if not ids:
            return 0
        with self._write("delete trials") as conn:
            pk = self._search_pk(conn, search)
            trial_pks = sa.select(trials.c.id).where(trials.c.search_id == pk,
                                                     trials.c.trial_id.in_(ids))
            for table in (epochs, summaries, graphs):
                conn.execute(sa.delete(table).where(table.c.trial_pk.in_(trial_pks)))
            result = conn.execute(sa.delete(trials).where(trials.c.search_id == pk,
                                                          trials.c.trial_id.in_(ids)))
            return result.rowcount

    # -- trial writes --------------------------------------------------------------------

    def upsert_trial(self, search: str, trial_id: str, *, density: Sequence[float] | None = None,
                     config: dict | None = None, status: str | None = None,
                     error: str | None = None, checkpoint_path: str | None = None,
                     node_id: str | None = None, is_baseline: bool | None = None) -> None:
        """Create the trial if absent and set the given fields; None leaves a field as it is.

        A new trial starts as ``pending`` and not a baseline unless told otherwise.
        """
        _check_name(trial_id, "trial_id")
        fields: dict[str, Any] = {}
        if density is not None:
            fields["density"] = _density(density)
        if config is not None:
            fields["config"] = _json_dict(config, "config")
        if status is not None:
            fields["status"] = _check_choice(status, TRIAL_STATUSES, "status")
        if error is not None:
            fields["error"] = _optional_text(error, "error")
        if checkpoint_path is not None:
            fields["checkpoint_path"] = _optional_text(checkpoint_path, "checkpoint_path")
        if node_id is not None:
            fields["node_id"] = _optional_text(node_id, "node_id")
        if is_baseline is not None:
            if not isinstance(is_baseline, bool):
                raise ValueError(f"is_baseline must be True or False, got {is_baseline!r}")
            fields["is_baseline"] = is_baseline
        now = _now()
        with self._write("write trial") as conn:
            search_pk = self._search_pk(conn, search)
            insert = {"status": "pending", "is_baseline": False, **fields,
                      "created_at": now, "updated_at": now}
            _upsert(conn, trials, {"search_id": search_pk, "trial_id": trial_id}, insert,
                    {**fields, "updated_at": now})
            conn.execute(sa.update(searches).where(searches.c.id == search_pk)
                         .values(updated_at=now))

    def record_epoch(self, search: str, trial_id: str, epoch: int,
                     metrics: Mapping[str, Any]) -> None:
        """Store one epoch's metrics (a flat JSON-able dict); re-recording an epoch replaces it.

        Re-recording identical metrics (a resumed trial replaying a result it had already
        reported) writes nothing, so ``recorded_at`` keeps the time the epoch really ended.
        The metrics in :data:`EPOCH_COLUMNS` are also stored as columns; they must be
        numbers when present. A trial not yet announced is created as ``running``.
        """
        _check_name(trial_id, "trial_id")
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        data = _json_dict(metrics, "metrics")
        values = {**_number_columns(data, EPOCH_COLUMNS, "metrics"), "metrics": data}
        now = _now()
        with self._write("record epoch") as conn:
            trial_pk = self._trial_pk(conn, search, trial_id, now)
            stored = conn.scalar(sa.select(epochs.c.metrics).where(
                epochs.c.trial_pk == trial_pk, epochs.c.epoch == int(epoch)))
            if stored == data:
                return
            _upsert(conn, epochs, {"trial_pk": trial_pk, "epoch": int(epoch)},
                    {**values, "recorded_at": now})

    def record_summary(self, search: str, trial_id: str, summary: Mapping[str, Any]) -> None:
        """Store a trial's final metrics (test accuracy, EGF, realised density...); replaces."""
        _check_name(trial_id, "trial_id")
        data = _json_dict(summary, "summary")
        values = {**_number_columns(data, SUMMARY_COLUMNS, "summary"), "metrics": data}
        now = _now()
        with self._write("record summary") as conn:
            trial_pk = self._trial_pk(conn, search, trial_id, now)
            _upsert(conn, summaries, {"trial_pk": trial_pk}, {**values, "recorded_at": now})

    def record_graph(self, search: str, trial_id: str, graph: Mapping[str, Any],
                     statistics: Mapping[str, Any]) -> None:
        """Store a trial's wiring graph (networkx node-link JSON) and its statistics; replaces."""
        _check_name(trial_id, "trial_id")
        values = {"graph": _json_dict(graph, "graph"),
                  "statistics": _json_dict(statistics, "statistics")}
        now = _now()
        with self._write("record graph") as conn:
            trial_pk = self._trial_pk(conn, search, trial_id, now)
            _upsert(conn, graphs, {"trial_pk": trial_pk}, {**values, "recorded_at": now})

    # -- reads ---------------------------------------------------------------------------

    def trials(self, search: str) -> list[dict[str, Any]]:
        """The search's trials in creation order.

        Each dict has ``trial_id, status, is_baseline, node_id, epochs`` (number of epoch
        rows), ``density, config, error, checkpoint_path, has_summary, has_graph,
        created_at, updated_at`` and, flat, the last epoch's metrics updated by the summary
        (a metric never overwrites one of those fields).
        """
        with self._read("read trials") as conn:
            return self._trials(conn, self._search_pk(conn, search))

    @staticmethod
    def _trials(conn: sa.Connection, search_pk: int) -> list[dict[str, Any]]:
        in_search = trials.c.search_id == search_pk
        rows = conn.execute(sa.select(trials).where(in_search).order_by(trials.c.id)).all()
        stats = sa.select(epochs.c.trial_pk, sa.func.count().label("n"),
                          sa.func.max(epochs.c.epoch).label("last")
                          ).join(trials, trials.c.id == epochs.c.trial_pk
                                 ).where(in_search).group_by(epochs.c.trial_pk).subquery()
        last = {pk: (n, metrics, epoch) for pk, n, metrics, epoch in conn.execute(
            sa.select(stats.c.trial_pk, stats.c.n, epochs.c.metrics, epochs.c.epoch)
            .join(epochs, (epochs.c.trial_pk == stats.c.trial_pk)
                  & (epochs.c.epoch == stats.c.last)))}
        summary = dict(conn.execute(
            sa.select(summaries.c.trial_pk, summaries.c.metrics)
            .join(trials, trials.c.id == summaries.c.trial_pk).where(in_search)).all())
        with_graph = set(conn.scalars(
            sa.select(graphs.c.trial_pk)
            .join(trials, trials.c.id == graphs.c.trial_pk).where(in_search)))
        out = []
        for row in rows:
            n, metrics, epoch = last.get(row.id, (0, {}, None))
            merged = {**({M.EPOCH: epoch} if epoch is not None else {}), **metrics,
                      **summary.get(row.id, {})}
            fields = {"trial_id": row.trial_id, "status": row.status,
                      "is_baseline": row.is_baseline, "node_id": row.node_id, "epochs": n,
                      "density": row.density, "config": row.config, "error": row.error,
                      "checkpoint_path": row.checkpoint_path,
                      "has_summary": row.id in summary, "has_graph": row.id in with_graph,
                      "created_at": row.created_at, "updated_at": row.updated_at}
            out.append({**merged, **fields})
        return out

    def trials_frame(self, search: str) -> Any:
        """One row per trial: the :meth:`trials` fields, ``density`` as a list and as
        ``d_0 .. d_{L-1}`` (L = longest vector; NaN where a trial has fewer or none), and
        one column per metric (always the :data:`EPOCH_COLUMNS`)."""
        import pandas as pd

        rows = self.trials(search)
        n_layers = max((len(r["density"]) for r in rows if r["density"]), default=0)
        layer_cols = [f"d_{i}" for i in range(n_layers)]
        metric_names = set(EPOCH_COLUMNS).union(*(r.keys() for r in rows)) - set(_TRIAL_FIELDS)
        records = []
        for r in rows:
            density = r["density"] or []
            records.append({**r, **{c: density[i] if i < len(density) else math.nan
                                    for i, c in enumerate(layer_cols)}})
        columns = [*_TRIAL_FIELDS[:6], *layer_cols, *_metric_order(metric_names),
                   *_TRIAL_FIELDS[6:]]
        return pd.DataFrame.from_records(records, columns=columns)

    def epochs_frame(self, search: str) -> Any:
        """One row per (trial, epoch), ordered by trial then epoch: ``trial_id, epoch``, one
        column per metric (always the :data:`EPOCH_COLUMNS`) and ``recorded_at``."""
        import pandas as pd

        with self._read("read epochs") as conn:
            search_pk = self._search_pk(conn, search)
            rows = conn.execute(
                sa.select(trials.c.trial_id, epochs.c.epoch, epochs.c.metrics,
                          epochs.c.recorded_at)
                .join(trials, trials.c.id == epochs.c.trial_pk)
                .where(trials.c.search_id == search_pk)
                .order_by(trials.c.id, epochs.c.epoch)).all()
        fixed = ("trial_id", M.EPOCH, "recorded_at")
        records = [{**metrics, "trial_id": trial_id, M.EPOCH: epoch, "recorded_at": at}
                   for trial_id, epoch, metrics, at in rows]
        metric_names = set(EPOCH_COLUMNS).union(*(r.keys() for r in records)) - set(fixed)
        columns = ["trial_id", M.EPOCH, *_metric_order(metric_names), "recorded_at"]
        return pd.DataFrame.from_records(records, columns=columns)

    def graph(self, search: str, trial_id: str) -> tuple[dict, dict] | None:
        """``(graph, statistics)`` of a trial, or None if the trial has no graph (yet)."""
        with self._read("read graph") as conn:
            search_pk = self._search_pk(conn, search)
            row = conn.execute(
                sa.select(graphs.c.graph, graphs.c.statistics)
                .join(trials, trials.c.id == graphs.c.trial_pk)
                .where(trials.c.search_id == search_pk, trials.c.trial_id == trial_id)).first()
        return None if row is None else (row.graph, row.statistics)

    def count_rows(self, search: str) -> dict[str, int]:
        """``{"trials": n, "epochs": n, "summaries": n, "graphs": n}`` of one search."""
        with self._read("count rows") as conn:
            search_pk = self._search_pk(conn, search)
            trial_pks = sa.select(trials.c.id).where(trials.c.search_id == search_pk)
            counts = {"trials": conn.scalar(sa.select(sa.func.count()).select_from(trials)
                                            .where(trials.c.search_id == search_pk))}
            for name, table in (("epochs", epochs), ("summaries", summaries),
                                ("graphs", graphs)):
                counts[name] = conn.scalar(sa.select(sa.func.count()).select_from(table)
                                           .where(table.c.trial_pk.in_(trial_pks)))
        return counts
