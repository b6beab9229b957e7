"""PostgreSQL storages for ``dagster.postgres.yaml``: Dagster's own (``dagster-postgres``), with pooled connections.

Dagster's Postgres storages open a new database connection for every statement group (SQLAlchemy's ``NullPool``,
chosen so that idle instances hold no connections): 17-37 ms an event here, and a ranged run writes one event per
asset and partition before its first step (4,758 for the year). These subclasses keep one small pool of open
connections per process instead (``pool_size`` 1, more when threads need them, recycled hourly and pinged before
use, so a restarted server costs a reconnect, not a failed run). Schema, migrations and queries stay Dagster's.

The webserver already replaces the engine with a pooled one (``optimize_for_webserver``, with its statement
timeout); that engine is kept. Engines never cross a fork: a process that finds an engine of another process makes
its own.

Needs the ``postgres`` extra: ``pip install -e '.[postgres]'``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import sqlalchemy.pool as db_pool
from dagster._serdes import ConfigurableClassData
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from pm_assets.instance_storage import PlannedChecksSerializedOnce, RememberedSchema

#: Open connections kept per process and storage; threads beyond it get extra ones, closed when returned.
POOL = {"pool_size": 1, "max_overflow": 8, "pool_recycle": 3600, "pool_pre_ping": True}


class _PerProcessPool:
    """``self._engine`` is a pooled engine of this process (Dagster's classes assign their NullPool one to it)."""

    @property
    def _engine(self):
        owned = self.__dict__.get("_pooled")
        if owned is None or owned[0] != os.getpid():
            engine = create_pg_engine(self.postgres_url, self._token_provider, isolation_level="AUTOCOMMIT", **POOL)
            owned = self.__dict__["_pooled"] = (os.getpid(), engine)
        return owned[1]

    @_engine.setter
    def _engine(self, engine) -> None:
        if isinstance(engine.pool, db_pool.NullPool):  # Dagster's default: holds nothing, nothing to dispose
            return
        self.__dict__["_pooled"] = (os.getpid(), engine)  # the webserver's pooled engine, with its timeout

    def dispose(self) -> None:
        super().dispose()
        owned = self.__dict__.pop("_pooled", None)
        if owned is not None and owned[0] == os.getpid():
            owned[1].dispose()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]):
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )


class PooledPostgresEventLogStorage(
    _PerProcessPool, PlannedChecksSerializedOnce, RememberedSchema, PostgresEventLogStorage
):
    """Dagster's Postgres event log with pooled connections, remembering the schema it checks before every event.
    Its own ``store_event_batch`` (and ``store_event``, which notifies the webserver's log watchers) stay."""


class PooledPostgresRunStorage(_PerProcessPool, PostgresRunStorage):
    """Dagster's Postgres run storage with pooled connections."""


class PooledPostgresScheduleStorage(_PerProcessPool, PostgresScheduleStorage):
    """Dagster's Postgres schedule storage with pooled connections."""
