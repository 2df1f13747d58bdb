"""The results store's tables (SQLAlchemy Core), their column types and the statuses and
metric columns they hold.

Rows are keyed by unique constraints (search name; (search, trial id); (trial, epoch); one
summary and one graph per trial) so that every write can be an upsert. Datetimes are
timezone-aware UTC on every backend; JSON columns are JSONB on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as _pg

from snas.core import metrics as M

SEARCH_STATUSES = ("running", "finished", "interrupted", "failed")
# "stopped" = early-stopped by the scheduler (ASHA); "terminated" = ran to its last epoch.
TRIAL_STATUSES = ("pending", "running", "terminated", "stopped", "error")

# Metrics kept as real columns besides the full JSON dict (what readers sort and filter on).
EPOCH_COLUMNS = (M.VAL_ACCURACY, M.VAL_LOSS, M.TRAIN_LOSS, M.TRAIN_ACCURACY, M.EGF_1, M.EGF_2,
                 M.ACTIVE_WEIGHTS)
SUMMARY_COLUMNS = (M.TEST_ACCURACY, M.TEST_LOSS, M.VAL_ACCURACY,
                   M.ACTIVE_WEIGHTS)

NAME_MAX = 255


class UTCDateTime(sa.TypeDecorator):
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


JSON_DATA = sa.JSON(none_as_null=True).with_variant(_pg.JSONB(none_as_null=True), "postgresql")

metadata = sa.MetaData(naming_convention={
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
})

searches = sa.Table(
    "searches", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(NAME_MAX), nullable=False, unique=True),
    sa.Column("space_text", sa.Text, nullable=False),
    sa.Column("space", JSON_DATA, nullable=False),
    sa.Column("searcher", sa.String(64), nullable=False),
    sa.Column("num_samples", sa.Integer, nullable=False),
    sa.Column("storage_path", sa.Text, nullable=False),
    sa.Column("params", JSON_DATA, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
)

trials = sa.Table(
    "trials", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("search_id", sa.ForeignKey("searches.id", ondelete="CASCADE"), nullable=False),
    sa.Column("trial_id", sa.String(NAME_MAX), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("density", JSON_DATA),
    sa.Column("config", JSON_DATA),
    sa.Column("error", sa.Text),
    sa.Column("checkpoint_path", sa.Text),
    sa.Column("node_id", sa.String(NAME_MAX)),
    sa.Column("is_baseline", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("search_id", "trial_id"),
)

epochs = sa.Table(
    "epochs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_pk", sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False),
    sa.Column("epoch", sa.Integer, nullable=False),
    *(sa.Column(name, sa.Float) for name in EPOCH_COLUMNS),
    sa.Column("metrics", JSON_DATA, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("trial_pk", "epoch"),
)

summaries = sa.Table(
    "summaries", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_pk", sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False,
              unique=True),
    *(sa.Column(name, sa.Float) for name in SUMMARY_COLUMNS),
    sa.Column("metrics", JSON_DATA, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

graphs = sa.Table(
    "graphs", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("trial_pk", sa.ForeignKey("trials.id", ondelete="CASCADE"), nullable=False,
              unique=True),
    sa.Column("graph", JSON_DATA, nullable=False),
    sa.Column("statistics", JSON_DATA, nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False),
)

# -- schema version 2: the version itself and the driver leases --------------------------

#: The layout this snas writes. Version 1 is the layout before the version existed (the
#: five tables above, no ``snas_meta``); a store without ``snas_meta`` reads as version 1
#: and a writer migrates it (adds the tables below). A higher version is refused.
SCHEMA_VERSION = 2
SCHEMA_VERSION_KEY = "schema_version"

#: The tables of version 1: a store holds all five (with at least these columns) or is not
#: a snas results store.
V1_TABLES = (searches, trials, epochs, summaries, graphs)

meta = sa.Table(
    "snas_meta", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

#: One row per search being run: which driver process runs it, and when it last said so.
#: ``heartbeat_at`` is the database's clock (``CURRENT_TIMESTAMP``), so drivers and readers
#: on hosts with different clocks agree on a lease's age.
leases = sa.Table(
    "leases", metadata,
    sa.Column("search_id", sa.ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    sa.Column("host", sa.String(NAME_MAX), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
)
