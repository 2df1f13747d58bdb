"""The :class:`ResultsStore`: searches, their trials, per-epoch metrics, summaries and
wiring graphs, read and written in transactions (see :mod:`snas.store` for the
guarantees); pandas loads only inside the ``*_frame`` methods.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import numbers
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from snas.core import faults
from snas.core import metrics as M
from snas.core.errors import SearchError, StoreError
from snas.store._engine import (
    error_reason,
    make_engine,
    mask_url,
    remove_sqlite_files,
    sqlite_file,
    sqlite_file_problem,
    upsert,
)
from snas.store._lease import (
    HEARTBEAT_S,
    LEASE_TIMEOUT_S,
    Lease,
    LeaseHeld,
    held_message,
    holder_is_alive,
    new_owner,
    this_host,
)
from snas.store._schema import (
    EPOCH_COLUMNS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    SEARCH_STATUSES,
    SUMMARY_COLUMNS,
    TRIAL_STATUSES,
    V1_TABLES,
    UTCDateTime,
    epochs,
    graphs,
    leases,
    meta,
    metadata,
    searches,
    summaries,
    trials,
)
from snas.store._values import (
    check_choice,
    check_density,
    check_name,
    json_dict,
    number_columns,
    optional_text,
    search_objective,
    utc_now,
)

# Fields of a trial dict; metrics with the same name do not overwrite them.
_TRIAL_FIELDS = ("trial_id", "status", "is_baseline", "node_id", "epochs", "density", "config",
                 "error", "checkpoint_path", "has_summary", "has_graph", "created_at",
                 "updated_at")


def _metric_order(names: set[str]) -> list[str]:
    """Known metrics in display order first, the others alphabetically."""
    known = [*M.EPOCH_SCALARS, M.TEST_LOSS, M.TEST_ACCURACY, M.REALIZED_DENSITY]
    first = [n for n in dict.fromkeys(known) if n in names]
    return first + sorted(names.difference(first))


#: Every store opened in this process (:meth:`ResultsStore.close_all`).
_OPEN_STORES: weakref.WeakSet[ResultsStore] = weakref.WeakSet()


class ResultsStore:
    """Searches, trials and their metrics in a SQL database.

    Parameters
    ----------
    url:
        A SQLAlchemy URL: ``sqlite:////abs/path/results.db``, ``sqlite:///relative.db``,
        ``sqlite://`` (in memory), ``postgresql+psycopg://user:password@host/db``...
        A writer creates the tables if the database has none (and migrates a version-1
        store); a reader (``read_only``) never creates or changes anything.
    read_only:
        Open for reading only: a SQLite file is opened ``mode=ro`` (a missing file is an
        error, never a new database; no journal-mode switch), PostgreSQL sessions are read
        only. Every write method then fails with a StoreError.

    Raises
    ------
    StoreError
        The URL is invalid, its driver is missing, the database is unreachable, the SQLite
        file cannot be created (or, for a reader, does not exist), the database is not a
        snas results store, or its schema is newer than this snas reads; the message names
        the URL with its password masked. A SQLite file this constructor created is
        removed again on failure.
    """

    def __init__(self, url: str | sa.URL, *, read_only: bool = False) -> None:
        if not isinstance(url, (str, sa.URL)):
            raise ValueError(f"url must be a string, got {url!r}")
        self.url = mask_url(url)
        self.read_only = bool(read_only)
        try:
            parsed = sa.make_url(url)
        except (sa_exc.ArgumentError, ValueError) as exc:  # ValueError: e.g. a bad port
            raise StoreError(f"cannot open results store {self.url}: not a database URL "
                             f"(expected e.g. sqlite:////path/to/results.db or "
                             f"postgresql+psycopg://user@host/db)") from exc
        self._url = parsed
        file = sqlite_file(parsed)
        if file is not None and self.read_only and not file.is_file():
            why = (f"{file} is a folder, not a database file" if file.is_dir() else
                   f"no database file {file} (a search creates it; check --store)")
            raise StoreError(f"cannot open results store {self.url}: {why}")
        if file is not None and (problem := sqlite_file_problem(file)):
            raise StoreError(f"cannot open results store {self.url}: {problem}")
        existed = file is None or file.exists()
        engine = None
        try:
            engine = make_engine(parsed, read_only=self.read_only)
            self._engine = engine
            self._writer = engine.execution_options(snas_write=True)
            if not self.read_only and file is not None and existed:
                self._probe(parsed)  # a foreign file is refused before the WAL switch
            self.schema_version = self._open_schema()
        # ValueError/TypeError: URL query arguments the driver cannot convert (timeout=abc).
        except (sa_exc.SQLAlchemyError, ImportError, ValueError, TypeError, StoreError) as exc:
            if engine is not None:
                engine.dispose()
            if not existed:
                remove_sqlite_files(file)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(f"cannot open results store {self.url}: "
                             f"{error_reason(exc, parsed)}") from exc
        _OPEN_STORES.add(self)

    @property
    def connect_url(self) -> str:
        """The URL as given, password included: what a driver process opens the store with."""
        return self._url.render_as_string(hide_password=False)

    # -- schema --------------------------------------------------------------------------

    def _not_ours(self, why: str) -> StoreError:
        return StoreError(f"cannot open results store {self.url}: not a snas results store "
                          f"({why}); name another --store")

    def _schema_state(self, conn: sa.Connection) -> tuple[int | None, set[str]]:
        """(the stored schema version, None for an empty database; the tables present).

        Raises the one-line StoreError of a foreign database (a ``searches`` table that is
        not ours, part of our tables) or of a newer schema.
        """
        inspector = sa.inspect(conn)
        names = set(inspector.get_table_names())
        ours = [t for t in V1_TABLES if t.name in names]
        if not ours:
            if meta.name in names:
                return self._stored_version(conn), names
            return None, names
        for table in V1_TABLES:
            if table.name not in names:
                raise self._not_ours(f"it has a {ours[0].name!r} table but no "
                                     f"{table.name!r} table")
            columns = {c["name"] for c in inspector.get_columns(table.name)}
            missing = [c for c in table.c.keys() if c not in columns]
            if missing:
                more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
                raise self._not_ours(f"its {table.name!r} table has no column "
                                     f"{', '.join(map(repr, missing[:3]))}{more}")
        return (self._stored_version(conn) if meta.name in names else 1), names

    def _stored_version(self, conn: sa.Connection) -> int:
        value = conn.scalar(sa.select(meta.c.value).where(meta.c.key == SCHEMA_VERSION_KEY))
        try:
            version = int(value)
        except (TypeError, ValueError):
            raise self._not_ours(f"its snas_meta table holds schema version {value!r}"
                                 ) from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"results store {self.url} has schema version {version}, "
                             f"written by a newer snas; this snas reads versions up to "
                             f"{SCHEMA_VERSION} (upgrade snas)")
        return version

    def _probe(self, url: sa.URL) -> None:
        """Check an existing SQLite file read-only before a writer's engine (which switches
        it to WAL) touches it: a foreign database stays byte-identical."""
        probe = make_engine(url, read_only=True)
        try:
            with probe.connect() as conn:
                version, names = self._schema_state(conn)
            if version is None and names:
                raise self._not_ours(f"its tables are {', '.join(sorted(names)[:5])}")
        finally:
            probe.dispose()

    def _open_schema(self) -> int:
        """Check the database is a snas store (readers and writers), create or migrate its
        tables (writers only, under the write lock); the schema version it then has."""
        with self._engine.connect() as conn:
            version, names = self._schema_state(conn)
        self._has_leases = leases.name in names
        if self.read_only:
            if version is None:
                raise self._not_ours("it has no 'searches' table" if not names else
                                     f"no 'searches' table among its {len(names)} tables")
            return version
        if version == SCHEMA_VERSION and self._has_leases:
            return version  # the common case: no write lock taken
        if version is None and names and self._engine.dialect.name == "sqlite":
            raise self._not_ours(f"its tables are {', '.join(sorted(names)[:5])}")
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":  # two first writers: one creates
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7411372519)")
            self._schema_state(conn)  # again, under the lock
            metadata.create_all(conn)
            upsert(conn, meta, {"key": SCHEMA_VERSION_KEY}, {"value": str(SCHEMA_VERSION)})
        self._has_leases = True
        return SCHEMA_VERSION

    def __repr__(self) -> str:
        return f"ResultsStore({self.url!r})"

    def close(self) -> None:
        """Close the store's connections (a later call reopens them)."""
        self._engine.dispose()

    @staticmethod
    def close_all() -> None:
        """Close the connections of every store this process opened (before a fast exit,
        :func:`snas.cli.entry`: SQLite folds its write-ahead log back into the file)."""
        for store in list(_OPEN_STORES):
            store.close()

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
                             f"{error_reason(exc, self._engine.url)}") from exc

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
        upsert(conn, trials, {"search_id": search_pk, "trial_id": trial_id},
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
        check_name(name, "name")
        if not isinstance(space_text, str):
            raise ValueError(f"space_text must be a string, got {type(space_text).__name__}")
        check_name(searcher, "searcher")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
        storage_path = optional_text(storage_path, "storage_path")
        if storage_path is None:
            raise ValueError("storage_path must be a string, got None")
        row = {"name": name, "space_text": space_text, "space": json_dict(space, "space"),
               "searcher": searcher, "num_samples": num_samples, "storage_path": storage_path,
               "params": json_dict(params, "params"), "status": "running"}
        exists = SearchError(f"a search named {name!r} already exists in {self.url}; use "
                             f"`snas resume {name}` to continue it or pick another --name")
        now = utc_now()
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
        check_choice(status, SEARCH_STATUSES, "status")
        now = utc_now()
        with self._write("set search status") as conn:
            pk = self._search_pk(conn, name)
            conn.execute(sa.update(searches).where(searches.c.id == pk).values(
                status=status, updated_at=now, finished_at=None if status == "running" else now))

    def update_search_params(self, name: str, updates: Mapping[str, Any]) -> None:
        """Merge ``updates`` into a search's ``params`` (e.g. its Pareto front at the end)."""
        data = json_dict(dict(updates), "updates")
        with self._write("update search params") as conn:
            pk = self._search_pk(conn, name)
            params = conn.execute(sa.select(searches.c.params).where(searches.c.id == pk)
                                  ).scalar_one()
            conn.execute(sa.update(searches).where(searches.c.id == pk).values(
                params={**(params or {}), **data}, updated_at=utc_now()))

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
            conn.execute(sa.delete(leases).where(leases.c.search_id == pk))
            conn.execute(sa.delete(searches).where(searches.c.id == pk))

    def delete_trials(self, search: str, trial_ids: Sequence[str]) -> int:
        """Delete trials (with their epochs, summary and graph); returns how many existed.

        Used when a resumed search finds trials its restored Tune state never saved (the
        driver died within Tune's state-saving period): Tune starts them afresh under new
        ids, so their partial rows would otherwise stay as orphans.
        """
        ids = [check_name(t, "trial_id") for t in trial_ids]
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

    # -- leases: one driver per search (see snas.store._lease) ---------------------------

    @staticmethod
    def _db_now(conn: sa.Connection) -> dt.datetime:
        return conn.scalar(sa.select(sa.type_coerce(sa.func.now(), UTCDateTime)))

    def _lease_row(self, conn: sa.Connection, search_pk: int) -> dict[str, Any] | None:
        row = conn.execute(sa.select(leases).where(leases.c.search_id == search_pk)).first()
        if row is None:
            return None
        age = (self._db_now(conn) - row.heartbeat_at).total_seconds()
        return {"owner": row.owner, "host": row.host, "pid": row.pid,
                "acquired_at": row.acquired_at, "heartbeat_at": row.heartbeat_at,
                "age_s": max(0.0, age)}

    def lease_of(self, name: str) -> dict[str, Any] | None:
        """The lease of a search: ``owner, host, pid, acquired_at, heartbeat_at, age_s``
        (seconds since the last heartbeat, by the database's clock); None if no driver
        holds it (or the store predates leases)."""
        if not self._has_leases:
            return None
        with self._read("read lease") as conn:
            return self._lease_row(conn, self._search_pk(conn, name))

    def _check_lease(self, conn: sa.Connection, name: str, owner: str,
                     timeout: float) -> dict[str, Any] | None:
        """The stale lease of another owner that taking it would replace (None: free or
        ours); LeaseHeld if another driver holds it alive."""
        lease = self._lease_row(conn, self._search_pk(conn, name))
        if lease is None or lease["owner"] == owner:
            return None
        if holder_is_alive(lease, timeout):
            raise LeaseHeld(held_message(name, lease, timeout))
        return lease

    def acquire_lease(self, name: str, owner: str, *, pid: int | None = None,
                      timeout: float = LEASE_TIMEOUT_S) -> dict[str, Any] | None:
        """Take the lease of search ``name`` for ``owner`` (this host, ``pid`` or this
        process); returns the stale lease it took over, if any.

        Raises LeaseHeld (one line: pid, host, heartbeat age) while another owner's lease is
        alive; nothing is written then (the check runs first in a read transaction).
        """
        import os

        check_name(owner, "owner")
        with self._read("read lease") as conn:
            self._check_lease(conn, name, owner, timeout)
        with self._write("take lease") as conn:
            stale = self._check_lease(conn, name, owner, timeout)  # again, under the lock
            now = sa.func.now()
            values = {"owner": owner, "host": this_host(),
                      "pid": os.getpid() if pid is None else int(pid),
                      "acquired_at": now, "heartbeat_at": now}
            upsert(conn, leases, {"search_id": self._search_pk(conn, name)}, values)
        return stale

    def renew_lease(self, name: str, owner: str) -> bool:
        """Stamp ``owner``'s lease with the database's time; False if it holds it no more."""
        with self._write("renew lease") as conn:
            result = conn.execute(sa.update(leases).where(
                leases.c.search_id == self._search_pk(conn, name), leases.c.owner == owner
            ).values(heartbeat_at=sa.func.now()))
            return result.rowcount > 0

    def release_lease(self, name: str, owner: str) -> None:
        """Give ``owner``'s lease of search ``name`` back (no-op if it holds none)."""
        with self._write("release lease") as conn:
            pk = conn.scalar(sa.select(searches.c.id).where(searches.c.name == name))
            if pk is not None:
                conn.execute(sa.delete(leases).where(leases.c.search_id == pk,
                                                     leases.c.owner == owner))

    def hold_lease(self, name: str, *, timeout: float = LEASE_TIMEOUT_S,
                   heartbeat: float = HEARTBEAT_S) -> Lease:
        """Take the lease of search ``name`` for this process (:meth:`acquire_lease`) and
        renew it every ``heartbeat`` seconds until the returned :class:`Lease` is released
        (use it as a context manager). Taking over a stale lease says so on stderr."""
        import sys

        owner = new_owner()
        stale = self.acquire_lease(name, owner, timeout=timeout)
        if stale is not None:
            print(f"snas: search {name!r}: taking over from pid {stale['pid']} on host "
                  f"{stale['host']} (heartbeat {stale['age_s']:.0f}s ago)", file=sys.stderr,
                  flush=True)
        return Lease(self, name, owner, heartbeat)

    # -- trial writes --------------------------------------------------------------------

    def upsert_trial(self, search: str, trial_id: str, *, density: Sequence[float] | None = None,
                     config: dict | None = None, status: str | None = None,
                     error: str | None = None, checkpoint_path: str | None = None,
                     node_id: str | None = None, is_baseline: bool | None = None) -> None:
        """Create the trial if absent and set the given fields; None leaves a field as it is.

        A new trial starts as ``pending`` and not a baseline unless told otherwise.
        """
        check_name(trial_id, "trial_id")
        fields: dict[str, Any] = {}
        if density is not None:
            fields["density"] = check_density(density)
        if config is not None:
            fields["config"] = json_dict(config, "config")
        if status is not None:
            fields["status"] = check_choice(status, TRIAL_STATUSES, "status")
        if error is not None:
            fields["error"] = optional_text(error, "error")
        if checkpoint_path is not None:
            fields["checkpoint_path"] = optional_text(checkpoint_path, "checkpoint_path")
        if node_id is not None:
            fields["node_id"] = optional_text(node_id, "node_id")
        if is_baseline is not None:
            if not isinstance(is_baseline, bool):
                raise ValueError(f"is_baseline must be True or False, got {is_baseline!r}")
            fields["is_baseline"] = is_baseline
        now = utc_now()
        with self._write("write trial") as conn:
            search_pk = self._search_pk(conn, search)
            insert = {"status": "pending", "is_baseline": False, **fields,
                      "created_at": now, "updated_at": now}
            upsert(conn, trials, {"search_id": search_pk, "trial_id": trial_id}, insert,
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
        check_name(trial_id, "trial_id")
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        data = json_dict(metrics, "metrics")
        values = {**number_columns(data, EPOCH_COLUMNS, "metrics"), "metrics": data}
        now = utc_now()
        with self._write("record epoch") as conn:
            trial_pk = self._trial_pk(conn, search, trial_id, now)
            stored = conn.scalar(sa.select(epochs.c.metrics).where(
                epochs.c.trial_pk == trial_pk, epochs.c.epoch == int(epoch)))
            if stored == data:
                return
            upsert(conn, epochs, {"trial_pk": trial_pk, "epoch": int(epoch)},
                    {**values, "recorded_at": now})

    def record_summary(self, search: str, trial_id: str, summary: Mapping[str, Any]) -> None:
        """Store a trial's final metrics (test accuracy, EGF, realised density...); replaces."""
        check_name(trial_id, "trial_id")
        data = json_dict(summary, "summary")
        values = {**number_columns(data, SUMMARY_COLUMNS, "summary"), "metrics": data}
        now = utc_now()
        with self._write("record summary") as conn:
            trial_pk = self._trial_pk(conn, search, trial_id, now)
            upsert(conn, summaries, {"trial_pk": trial_pk}, {**values, "recorded_at": now})

    def record_graph(self, search: str, trial_id: str, graph: Mapping[str, Any],
                     statistics: Mapping[str, Any]) -> None:
        """Store a trial's wiring graph (networkx node-link JSON) and its statistics; replaces."""
        check_name(trial_id, "trial_id")
        values = {"graph": json_dict(graph, "graph"),
                  "statistics": json_dict(statistics, "statistics")}
        now = utc_now()
        with self._write("record graph") as conn:
            trial_pk = self._trial_pk(conn, search, trial_id, now)
            upsert(conn, graphs, {"trial_pk": trial_pk}, {**values, "recorded_at": now})

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
