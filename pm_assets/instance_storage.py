"""The SQLite event log this project's ``dagster.yaml`` uses: Dagster's consolidated SQLite storage, pooled.

Dagster's ``ConsolidatedSqliteEventLogStorage`` opens a new SQLAlchemy engine and connection for every statement
group. Per event that costs a statement compilation (the engine's cache dies with it), a commit with a full
fsync, a schema reflection, and, when the last connection closes, a WAL checkpoint with another fsync: 6.6 ms an
event on this machine when idle (16 ms under load), and a single-run backfill over 366 partitions writes
thousands of events (one planned and one materialization per asset and partition). This subclass keeps one
engine per process (a small pool of open connections), remembers the tables and columns Dagster checks for
before every asset event, and sets ``PRAGMA synchronous=NORMAL``, which SQLite documents as safe from corruption
in WAL mode (a power cut can lose the last commits, not damage the file): 0.8 ms an event (README, "Performance").

Everything else is Dagster's class: schema, migrations, queries. The webserver follows a running run's logs by
watching the database file; with connections kept open, writes land in the ``-wal`` file until a checkpoint, so
``watch`` listens to both.

The parent is Dagster's (documented as meant for tests, not a public API), and these classes override or use its
private names (``_connect``, ``_has_asset_key_col_on_connection``, ``_conn_string``, ``_obs``, ``_base_dir``,
``_watchers``, ``SQLITE_BUSY_TIMEOUT_SECONDS``, ...). A rename in a Dagster release would make an override dead
(silently slow) or break the import: ``pm_assets_tests/test_instance_storage.py`` checks every one of them on the
pinned version, and what the overrides do.
"""

import os
from contextlib import contextmanager

import sqlalchemy as db
from dagster import DagsterInvariantViolationError, serialize_value
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from watchdog.events import PatternMatchingEventHandler
from watchdog.observers import Observer


class RememberedSchema:
    """Mixin for Dagster's SQL event logs: the tables and asset-key columns found present are remembered. Dagster
    asks for both before every asset event (a schema reflection each time); a table or column, once there, stays.
    Only positive answers are kept, so a migration that adds one is seen."""

    def has_table(self, table_name: str) -> bool:
        present = self.__dict__.setdefault("_tables_present", set())
        if table_name not in present and self._has_table_now(table_name):
            present.add(table_name)
        return table_name in present

    def _has_table_now(self, table_name: str) -> bool:
        return super().has_table(table_name)

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        present = self.__dict__.setdefault("_asset_key_columns_present", set())
        if column_name not in present and super()._has_asset_key_col_on_connection(conn, column_name):
            present.add(column_name)
        return column_name in present


class PlannedChecksSerializedOnce:
    """Mixin for Dagster's SQL event logs: a check planned over a partition range (a ranged run plans each check
    on every partition) is one row per partition, each holding the serialized event. Dagster serializes the same
    event once per row and compiles one INSERT of all the rows (365 a check for the year's run: 176 ms a check
    here); here the event is serialized once and the rows go in as one executemany of a cached statement. The rows
    are the same."""

    def _store_asset_check_evaluation_planned(self, event, event_id) -> None:
        planned = event.dagster_event.event_specific_data
        partition_keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [row | {"partition": key} for key in partition_keys])


class BatchedEventWrites:
    """Mixin for Dagster's SQL event logs: ``store_event_batch`` in two transactions instead of two an event.

    Dagster calls it when ``DAGSTER_EVENT_BATCH_SIZE`` > 0 (set in ``pm_assets.settings``) for a ranged run's
    planned events and a step's materializations; its default implementation stores them one by one. Here:

    - the event rows go in as one executemany (a cached statement, ids returned in order);
    - each asset's row in the asset index is written once per event kind, with the batch's last event of that
      kind, in batch order: each event's write overwrites the same columns of the same row, so the row ends as
      ``store_event`` one by one would leave it (dagster-postgres's own batch writes only the last event's);
    - tags and check rows as ``store_event`` writes them.
    """

    def store_event_batch(self, events) -> None:
        if len({event.run_id for event in events}) != 1:
            return super().store_event_batch(events)
        table = SqlEventLogStorageTable
        with self.run_connection(events[0].run_id) as conn:
            result = conn.execute(
                table.insert().returning(table.c.id, sort_by_parameter_order=True),
                [self._event_to_row(event) for event in events],
            )
            ids = [row[0] for row in result.fetchall()]
        if len(ids) != len(events) or any(event_id is None for event_id in ids):
            raise DagsterInvariantViolationError("Cannot store asset events for a null event id.")
        asset = [
            (event, event_id)
            for event, event_id in zip(events, ids, strict=True)
            if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS and event.dagster_event.asset_key
        ]
        if asset:
            last = {
                (event.dagster_event.asset_key, event.dagster_event_type): (event, event_id)
                for event, event_id in asset
            }  # a dict keeps the first position of a key, so sort by id
            with self.index_transaction() as conn:
                self._store_asset_event_tags(conn, [event for event, _ in asset], [event_id for _, event_id in asset])
                for event, event_id in sorted(last.values(), key=lambda pair: pair[1]):
                    self._store_asset_event(conn, event, event_id)
        for event, event_id in zip(events, ids, strict=True):
            if event.is_dagster_event and event.dagster_event_type in ASSET_CHECK_EVENTS:
                self.store_asset_check_event(event, event_id)


class PooledSqliteEventLogStorage(
    PlannedChecksSerializedOnce, BatchedEventWrites, RememberedSchema, ConsolidatedSqliteEventLogStorage
):
    """Consolidated SQLite event log with one pooled engine per process (see the module docstring)."""

    _engine_pid: int | None = None
    _engine = None

    def _pooled_engine(self):
        if self._engine is None or self._engine_pid != os.getpid():  # engines must not cross a fork
            engine = db.create_engine(
                self._conn_string,
                pool_size=2,
                max_overflow=8,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            db.event.listen(engine, "connect", _set_pragmas)
            self._engine, self._engine_pid = engine, os.getpid()
        return self._engine

    @contextmanager
    def _connect(self):
        with self._pooled_engine().connect() as conn:
            with conn.begin():
                yield conn

    def _has_table_now(self, table_name: str) -> bool:
        engine = self._pooled_engine()
        with engine.connect() as conn:
            return engine.dialect.has_table(conn, table_name)

    def watch(self, run_id, cursor, callback):
        if not self._obs:
            self._obs = Observer()
            self._obs.start()
            self._obs.schedule(_DatabaseWatchdog(self), self._base_dir, recursive=True)
        self._watchers[run_id][callback] = cursor

    def dispose(self):
        super().dispose()
        if self._engine is not None and self._engine_pid == os.getpid():
            self._engine.dispose()
        self._engine = None


def _set_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class _DatabaseWatchdog(PatternMatchingEventHandler):
    """Calls the storage's watchers when the database or its write-ahead log changes."""

    def __init__(self, storage: PooledSqliteEventLogStorage):
        self._storage = storage
        path = storage.get_db_path()
        super().__init__(patterns=[path, f"{path}-wal"])

    def on_modified(self, event):
        self._storage.on_modified()
