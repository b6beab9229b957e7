"""The project's instances: the pooled SQLite event log of dagster.yaml, and the PostgreSQL variant
(deploy/postgres/dagster.yaml) on a real server. A real instance on each stores and reads every event. Every
private name of Dagster's classes the storages override or use still exists on the pinned Dagster, and the
overrides do what they are for (one pooled engine, the schema checks remembered, ``watch`` seeing writes)."""

from __future__ import annotations

import inspect
import shutil
import time
from collections import defaultdict
from pathlib import Path

import pytest
import sqlalchemy as db
import yaml
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    DailyPartitionsDefinition,
    Definitions,
    InMemoryIOManager,
    Output,
    asset,
    define_asset_job,
)
from dagster._core.storage import sqlite as dagster_sqlite
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage

from pm_assets import instance_storage
from pm_assets.instance_storage import PooledSqliteEventLogStorage

REPO = Path(__file__).resolve().parents[1]
DAYS = DailyPartitionsDefinition(start_date="2015-01-01", end_date="2015-02-01")


@asset(partitions_def=DAYS, backfill_policy=BackfillPolicy.single_run(), io_manager_key="memory")
def daily(context):
    for key in context.partition_keys:
        context.add_asset_metadata({"n": int(key[-2:])}, partition_key=key)
    return 1


def _ranged_run(asset_def, instance):
    """One run of ``asset_def`` over every partition of DAYS; it must succeed."""
    job = Definitions(
        assets=[asset_def], jobs=[define_asset_job("j")], resources={"memory": InMemoryIOManager()}
    ).resolve_job_def("j")
    keys = DAYS.get_partition_keys()
    result = job.execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    assert result.success
    return result


def _ranged_run_keeps_every_event(instance) -> None:
    _ranged_run(daily, instance)
    keys = DAYS.get_partition_keys()
    records = instance.fetch_materializations(AssetKey("daily"), limit=100).records
    assert sorted(r.partition_key for r in records) == keys
    assert {r.partition_key: r.asset_materialization.metadata["n"].value for r in records} == {
        k: int(k[-2:]) for k in keys
    }


def test_project_instance_uses_the_pooled_storage_and_keeps_every_event(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    assert (
        yaml.safe_load((home / "dagster.yaml").read_text())["event_log_storage"]["class"]
        == "PooledSqliteEventLogStorage"
    )
    monkeypatch.chdir(home)  # the storage paths in dagster.yaml are relative
    instance = DagsterInstance.from_config(str(home))
    try:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        _ranged_run_keeps_every_event(instance)
        assert (home / ".dagster_home" / "storage" / "event_log.db").exists()
        storage = instance.event_log_storage
        assert storage.has_table("asset_event_tags") and "asset_event_tags" in storage._tables_present
        assert (
            not storage.has_table("no_such_table") and "no_such_table" not in storage._tables_present
        )  # misses are asked again
    finally:
        instance.dispose()


@pytest.mark.postgres
def test_the_postgres_variant_pools_connections_and_keeps_every_event(postgres_home):
    from pm_assets.instance_postgres import (
        PooledPostgresEventLogStorage,
        PooledPostgresRunStorage,
        PooledPostgresScheduleStorage,
    )

    instance = DagsterInstance.from_config(str(postgres_home))
    try:
        assert isinstance(instance.event_log_storage, PooledPostgresEventLogStorage)
        assert isinstance(instance.run_storage, PooledPostgresRunStorage)
        assert isinstance(instance.schedule_storage, PooledPostgresScheduleStorage)
        opened = []
        for storage in (instance.event_log_storage, instance.run_storage):
            db.event.listen(storage._engine, "connect", lambda *_: opened.append(1))
        _ranged_run_keeps_every_event(instance)  # 31 partitions: 73 events
        events = len(instance.all_logs(instance.get_runs(limit=1)[0].run_id))
        assert events >= 70 and len(opened) <= 4, (events, len(opened))  # Dagster's NullPool: one connection each
        storage = instance.event_log_storage
        assert storage.has_table("asset_event_tags") and "asset_event_tags" in storage._tables_present
        assert not storage.has_table("no_such_table") and "no_such_table" not in storage._tables_present
    finally:
        instance.dispose()


@pytest.mark.postgres
def test_an_engine_is_never_shared_across_a_fork(postgres_home):
    import os

    instance = DagsterInstance.from_config(str(postgres_home))
    try:
        storage = instance.event_log_storage
        parent = storage._engine
        assert storage._engine is parent  # one per process, kept
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: its own engine, which works
            ok = storage._engine is not parent and storage.has_table("event_logs")
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 1) == b"1"
        assert storage._engine is parent and storage.has_table("event_logs")
    finally:
        instance.dispose()


@asset(
    partitions_def=DAYS,
    backfill_policy=BackfillPolicy.single_run(),
    io_manager_key="memory",
    check_specs=[AssetCheckSpec("positive", asset="checked")],
)
def checked(context):
    for key in context.partition_keys:
        context.add_asset_metadata({"n": int(key[-2:])}, partition_key=key)
    yield Output(1)
    yield AssetCheckResult(check_name="positive", passed=True)


def _tables(storage) -> dict[str, list[tuple]]:
    """Every row of the event log's tables, in id order, without the columns that differ between two stores of the
    same events (row creation times)."""
    engine = db.create_engine(f"sqlite:///{storage.get_db_path()}")
    out = {}
    with engine.connect() as conn:
        for table in ("event_logs", "asset_keys", "asset_event_tags", "asset_check_executions"):
            columns = [
                c["name"]
                for c in db.inspect(conn).get_columns(table)
                if c["name"] not in ("create_timestamp", "wipe_timestamp", "cached_status_data")
            ]
            out[table] = [
                tuple(row)
                for row in conn.execute(
                    db.text(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(columns[:3])}")
                )
            ]
    engine.dispose()
    return out


def test_a_batch_of_events_is_stored_as_storing_them_one_by_one(tmp_path, monkeypatch):
    """The events of a ranged run with a check (planned materializations and checks per partition, materializations
    with metadata per partition, a check result) written by store_event one by one, and by store_event_batch in
    the batches Dagster forms: every row of every table equal."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")
    source = DagsterInstance.ephemeral()
    result = _ranged_run(checked, source)
    keys = DAYS.get_partition_keys()
    entries = list(source.all_logs(result.run_id))
    one_by_one = PooledSqliteEventLogStorage(str(tmp_path / "one"))
    batched = PooledSqliteEventLogStorage(str(tmp_path / "batch"))
    for entry in entries:
        one_by_one.store_event(entry)
    batchable = {
        DagsterEventType.ASSET_MATERIALIZATION_PLANNED,
        DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED,
        DagsterEventType.ASSET_MATERIALIZATION,
    }
    batch, batches = [], 0
    for entry in entries + [None]:
        if (
            entry is not None
            and entry.dagster_event_type in batchable
            and (
                not batch
                or batch[-1].dagster_event_type == entry.dagster_event_type
                or {batch[-1].dagster_event_type, entry.dagster_event_type}
                <= batchable - {DagsterEventType.ASSET_MATERIALIZATION}
            )
        ):
            batch.append(entry)
            continue
        if batch:
            batched.store_event_batch(batch)
            batches += 1
            batch = []
        if entry is not None:
            batched.store_event(entry)
    assert batches == 2  # the planned events, the materializations
    try:
        expected, got = _tables(one_by_one), _tables(batched)
        assert len(expected["event_logs"]) == len(entries)
        assert len(expected["asset_check_executions"]) >= len(keys)  # a planned row per partition, and the result's
        assert got == expected
        records = batched.fetch_materializations(AssetKey("checked"), limit=100).records
        assert {r.partition_key: r.asset_materialization.metadata["n"].value for r in records} == {
            k: int(k[-2:]) for k in keys
        }
    finally:
        one_by_one.dispose()
        batched.dispose()


# --- Dagster's private names the storages rely on, on the pinned Dagster ----------------------------------------


def _params(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def _defined_by(cls, name: str) -> type:
    """The class of ``cls``'s MRO whose own body defines ``name``."""
    return next(c for c in cls.__mro__ if name in vars(c))


#: The parent's methods these classes override (in instance_storage.py's mixins and PooledSqliteEventLogStorage).
OVERRIDDEN = (
    "_connect",
    "has_table",
    "_has_asset_key_col_on_connection",
    "_store_asset_check_evaluation_planned",
    "store_event_batch",
    "watch",
    "dispose",
)

#: The parent's methods they call, with the parameters the calls assume.
CALLED = {
    "_event_insert_timestamp": ["self", "event"],
    "_event_to_row": ["self", "event"],
    "_store_asset_event_tags": ["self", "conn", "events", "event_ids"],
    "_store_asset_event": ["self", "conn", "event", "event_id"],
    "_has_asset_key_col_on_connection": ["self", "conn", "column_name"],
    "has_table": ["self", "table_name"],
    "index_connection": ["self"],
    "index_transaction": ["self"],
    "run_connection": ["self", "run_id"],
    "store_asset_check_event": ["self", "event", "event_id"],
    "get_db_path": ["self"],
    "on_modified": ["self"],
    "dispose": ["self"],
}


def test_every_overridden_dagster_method_exists_on_the_parent_with_the_override_s_parameters():
    parent = ConsolidatedSqliteEventLogStorage
    for name in OVERRIDDEN:
        ours = _defined_by(PooledSqliteEventLogStorage, name)
        assert ours.__module__ == instance_storage.__name__, (name, ours)  # the override is ours...
        theirs = _defined_by(parent, name)
        assert theirs.__module__.startswith("dagster."), (name, theirs)  # ...and replaces one of Dagster's
        assert _params(vars(ours)[name]) == _params(vars(theirs)[name]), name
    for name, params in CALLED.items():
        assert _params(getattr(parent, name)) == params, name


def test_dagster_s_code_still_goes_through_the_overridden_private_methods():
    """An override only helps if Dagster's own methods call it by that name."""
    from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage

    assert "self._connect()" in inspect.getsource(ConsolidatedSqliteEventLogStorage.run_connection)
    assert "self._connect()" in inspect.getsource(ConsolidatedSqliteEventLogStorage.index_connection)
    assert "self._has_asset_key_col_on_connection(" in inspect.getsource(SqlEventLogStorage.has_asset_key_col)
    assert "self._store_asset_check_evaluation_planned(" in inspect.getsource(
        SqlEventLogStorage.store_asset_check_event
    )


def test_the_parent_s_attributes_are_set_as_the_storage_uses_them(tmp_path):
    assert isinstance(dagster_sqlite.SQLITE_BUSY_TIMEOUT_SECONDS, int | float)
    assert instance_storage.SQLITE_BUSY_TIMEOUT_SECONDS is dagster_sqlite.SQLITE_BUSY_TIMEOUT_SECONDS
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        assert storage._base_dir == str(tmp_path) and storage._obs is None
        assert isinstance(storage._watchers, defaultdict) and storage._watchers.default_factory is dict
        with db.create_engine(storage._conn_string).connect() as conn:  # the connection string opens the database
            (path,) = [row[2] for row in conn.exec_driver_sql("PRAGMA database_list") if row[1] == "main"]
        assert Path(path) == Path(storage.get_db_path()) == tmp_path / "event_log.db"
        with storage._pooled_engine().connect() as conn:  # the pooled engine waits on a lock as Dagster's does
            assert (
                conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                == dagster_sqlite.SQLITE_BUSY_TIMEOUT_SECONDS * 1000
            )
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        storage.dispose()


def test_the_postgres_parents_have_the_names_the_shared_mixins_override():
    event_log = pytest.importorskip("dagster_postgres.event_log")
    parent = event_log.PostgresEventLogStorage
    for name in ("has_table", "_has_asset_key_col_on_connection", "_store_asset_check_evaluation_planned"):
        assert _defined_by(parent, name).__module__.startswith("dagster"), name
        assert _params(getattr(parent, name)) == CALLED.get(
            name, _params(getattr(ConsolidatedSqliteEventLogStorage, name))
        )
    for name in ("_event_insert_timestamp", "index_connection"):
        assert _params(getattr(parent, name)) == CALLED[name], name
    assert {"inst_data", "postgres_url", "should_autocreate_tables"} <= set(_params(parent.__init__))


# --- what the overrides do ---------------------------------------------------------------------------------------


def _reflections(storage) -> list[str]:
    """The schema reflections (SQLite ``PRAGMA table_info`` / ``table_xinfo``) the storage's engine runs from now."""
    seen = []
    db.event.listen(
        storage._pooled_engine(),
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_: seen.append(statement) if "PRAGMA main.table_" in statement else None,
    )
    return seen


def test_the_column_and_table_checks_are_remembered_and_misses_asked_again(tmp_path):
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        seen = _reflections(storage)
        assert [storage.has_asset_key_col("last_materialization_timestamp") for _ in range(3)] == [True] * 3
        assert len(seen) == 1  # reflected once, then remembered
        assert [storage.has_asset_key_col("no_such_column") for _ in range(2)] == [False] * 2
        assert len(seen) == 3  # a missing column is asked again each time (a migration may add it)
        assert [storage.has_table("event_logs") for _ in range(3)] == [True] * 3 and len(seen) == 4
        assert not storage.has_table("no_such_table") and not storage.has_table("no_such_table") and len(seen) == 6
    finally:
        storage.dispose()


def test_storing_a_run_s_events_reflects_the_schema_a_few_times_not_per_event(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "0")
    source = DagsterInstance.ephemeral()
    entries = list(source.all_logs(_ranged_run(daily, source).run_id))
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    try:
        seen = _reflections(storage)
        for entry in entries:
            storage.store_event(entry)
        materialized = sum(e.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION for e in entries)
        assert materialized == len(DAYS.get_partition_keys()) and len(set(seen)) == len(seen) <= 5, seen
    finally:
        storage.dispose()


def test_watch_delivers_the_events_written_through_the_pooled_engine(tmp_path):
    """The pooled engine's writes stay in the -wal file until a checkpoint: the watcher sees them there."""
    source = DagsterInstance.ephemeral()
    entries = list(source.all_logs(_ranged_run(daily, source).run_id))
    storage = PooledSqliteEventLogStorage(str(tmp_path))
    received = []
    try:
        storage.watch(entries[0].run_id, None, lambda entry, cursor: received.append((entry, cursor)))
        assert storage._obs is not None and storage._obs.is_alive()
        for entry in entries:
            storage.store_event(entry)
        deadline = time.monotonic() + 30
        while len(received) < len(entries) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (
            Path(f"{storage.get_db_path()}-wal").stat().st_size > 0
        )  # the writes are in the log, not yet checkpointed
        assert [entry.message for entry, _ in received] == [entry.message for entry in entries]
        assert [entry.timestamp for entry, _ in received] == [entry.timestamp for entry in entries]
        assert len({cursor for _, cursor in received}) == len(entries)  # each with its own cursor
    finally:
        storage.dispose()
    assert not storage._obs.is_alive()  # dispose stops the observer thread
