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

The parts: ``_schema`` (tables, column types, statuses), ``_values`` (argument checks and
JSON conversion), ``_engine`` (URLs, engines, error messages, upserts) and
``_results_store`` (:class:`ResultsStore`).

This package imports neither torch nor ray (pandas only inside the ``*_frame`` methods).
"""

from snas.store._engine import default_store_url
from snas.store._results_store import ResultsStore
from snas.store._schema import (
           EPOCH_COLUMNS,
           SEARCH_STATUSES,
           SUMMARY_COLUMNS,
           TRIAL_STATUSES,
)
from snas.store._values import search_objective

__all__ = ["EPOCH_COLUMNS", "SEARCH_STATUSES", "SUMMARY_COLUMNS", "TRIAL_STATUSES",
           "ResultsStore", "default_store_url", "search_objective"]
