"""The results store: searches, their trials, per-epoch metrics, summaries and wiring graphs.

A real database through SQLAlchemy: a SQLite file by default (:func:`default_store_url`),
any SQLAlchemy URL otherwise (``postgresql+psycopg://user@host/db``, the ``snas[postgres]``
extra; plain ``postgresql://`` uses psycopg when psycopg2 is absent). The Tune callback
writes it from the driver process; ``snas show``, export and the dashboard read it from
other processes while a search runs.

Guarantees:

* Every public write is one transaction and is idempotent: a resumed search re-sends
  results for epochs it already sent, so rows are keyed by unique constraints
  (search name; (search, trial id); (trial, epoch); one summary and one graph per trial) and
  written as upserts. Re-recording replaces, it never duplicates.
* SQLite runs in WAL mode with a busy timeout, so readers never block the writer and the
  writer never blocks readers. Writes take the write lock at BEGIN (``BEGIN IMMEDIATE``)
  so two writers queue on the busy timeout instead of failing on a lock upgrade.
* Readers never write: ``ResultsStore(url, read_only=True)`` (what every reading command
  opens) uses SQLite ``mode=ro`` connections with ``query_only`` and no journal-mode switch,
  or PostgreSQL read-only sessions; a missing file or a database that is not a snas store is
  a one-line StoreError and is left as it was. Only writers create tables.
* The schema carries a version (``snas_meta``; :data:`SCHEMA_VERSION`): a store without it
  is version 1 (read as it is, migrated by writers), a higher one is refused.
* One driver per search: a running search holds a lease (table ``leases``: owner, host,
  pid, heartbeat by the database clock; ``snas.store._lease``), renewed every 10 s, stale
  after :data:`LEASE_TIMEOUT_S` (60 s) or at once when its pid is dead on the same host.
* Names (search names, trial ids) are bound parameters, never SQL text.
* Failures are :class:`~snas.core.errors.StoreError` (or :class:`~snas.core.errors.SearchError` for a
  search that exists / does not exist) with one line naming the URL, password masked.
  Bad arguments from calling code are ``ValueError`` naming the argument.
* JSON has no NaN or infinity: non-finite floats are stored as null (a diverged loss reads
  back as ``None``/NaN). numpy/torch scalars and arrays are stored as plain numbers/lists.

The parts: ``_schema`` (tables, column types, statuses), ``_values`` (argument checks and
JSON conversion), ``_engine`` (URLs, engines, error messages, upserts) and
``_results_store`` (:class:`ResultsStore`).

This package imports neither torch nor ray (pandas only inside the ``*_frame`` methods).
"""

from snas.store._engine import default_store_url
from snas.store._lease import LEASE_TIMEOUT_S, LeaseHeld
from snas.store._results_store import ResultsStore
from snas.store._schema import (
           EPOCH_COLUMNS,
           SCHEMA_VERSION,
           SEARCH_STATUSES,
           SUMMARY_COLUMNS,
           TRIAL_STATUSES,
)
from snas.store._values import search_objective

__all__ = ["EPOCH_COLUMNS", "LEASE_TIMEOUT_S", "SCHEMA_VERSION", "SEARCH_STATUSES",
           "SUMMARY_COLUMNS", "TRIAL_STATUSES", "LeaseHeld", "ResultsStore",
           "default_store_url", "search_objective"]
