"""Resources: the landing folder files arrive in, the model registry, report outputs, and the parquet IO manager."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from dagster import (
    ConfigurableIOManager,
    ConfigurableResource,
    DataVersion,
    InitResourceContext,
    InputContext,
    OutputContext,
)
from pydantic import Field

from pm_assets.core.atomic import sweep_orphans
from pm_assets.core.chunks import ChunkedFrames, StoredPartitions
from pm_assets.core.landing import LandedFile, Staging, list_landed
from pm_assets.core.locations import as_path, is_remote
from pm_assets.core.parquet_files import (
    arrow_table,
    read_parquet,
    read_partitions,
    write_parquet_atomic,
    write_partitions_atomic,
)
from pm_assets.core.partition_cache import RecentPartitions
from pm_assets.core.registry import LocalRegistry
from pm_assets.core.validation import Fleet, PlausibleTimes
from pm_assets.partitions import partition_rows
from pm_assets.run_workers import tag_worker
from pm_assets.settings import LANDING_DIR, MODELS_DIR, OUTPUTS_DIR, QUARANTINE_DIR, STAGING_DIR, WAREHOUSE_DIR


class LandingResource(ConfigurableResource):
    """The landing folder where Kaggle-format files arrive, the staging of their rows by day (with the ledger of
    every file seen), and where rejected rows are quarantined (see :mod:`pm_assets.core.landing`)."""

    landing_dir: str = Field(default=str(LANDING_DIR), description="Folder files arrive in (PdM_<table>*.csv[.gz]).")
    staging_dir: str = Field(default=str(STAGING_DIR), description="Staged rows per table and day, and the ledger.")
    quarantine_dir: str = Field(
        default=str(QUARANTINE_DIR),
        description="Rejected rows, one parquet per partition: "
        "a folder or a URL (az://container/quarantine; credentials from the environment).",
    )
    history_days: int = Field(
        default=365,
        description="How many days before the first partition a row may be dated "
        "(the opening maintenance history: the real file starts 214 days before 2015). An "
        "earlier row is quarantined as implausible, e.g. the 1970-01-01 of an unset clock.",
    )
    future_tolerance_hours: int = Field(
        default=24,
        description="How far after now (UTC) a row may be dated (clocks "
        "ahead, time zones): a later row is quarantined as implausible.",
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        _sweep(context, self.staging_dir, self.quarantine_dir)

    def staging(self) -> Staging:
        return Staging(self.staging_dir)

    def landed(self) -> tuple[list[LandedFile], list[str]]:
        """The table files in the landing folder, and the names of files that say no table (ignored)."""
        return list_landed(self.landing_dir)

    def plausible_times(self, first_partition: str, now: pd.Timestamp | None = None) -> PlausibleTimes:
        """The timestamps a landed row may have, as of ``now`` (default: the current UTC time)."""
        now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
        if now.tzinfo is not None:
            now = now.tz_convert("UTC").tz_localize(None)
        return PlausibleTimes(
            earliest=pd.Timestamp(first_partition) - pd.Timedelta(days=self.history_days),
            latest=(now + pd.Timedelta(hours=self.future_tolerance_hours)).floor("s"),
            earliest_why=f"{self.history_days} days before the first partition {first_partition}",
            latest_why=f"now + {self.future_tolerance_hours} h",
        )

    def fleet(self, machines: pd.DataFrame) -> Fleet:
        """The valid machine ids, and the machines the machines table rejected with why (its quarantine)."""
        path = self.quarantine_path("machines", "all")
        return Fleet.from_machines(machines, read_parquet(path) if path.exists() else None)

    def quarantine_path(self, table: str, partition: str):
        return as_path(self.quarantine_dir) / table / f"{partition}.parquet"


class ModelRegistryResource(ConfigurableResource):
    """The local model registry: versioned artifacts with model cards and a champion pointer
    (see :mod:`pm_assets.core.registry`)."""

    root: str = Field(
        default=str(MODELS_DIR),
        description="Registry folder, or a URL (az://container/models; credentials from the environment).",
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        _report_removed(context, self.registry().sweep())

    def registry(self) -> LocalRegistry:
        return LocalRegistry(self.root)


class OutputsResource(ConfigurableResource):
    """Where reports for people go (CSV, JSON, HTML)."""

    root: str = Field(
        default=str(OUTPUTS_DIR),
        description="Outputs folder, or a URL (az://container/outputs; credentials from the environment).",
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        _sweep(context, self.root)

    def monitoring_root(self):
        return as_path(self.root) / "monitoring"

    def monitoring_folder(self, partition: str):
        return self.monitoring_root() / partition


def _sweep(context: InitResourceContext, *roots: str) -> None:
    """At the start of every run: remove the temporary files that killed processes left (see ``sweep_orphans``)."""
    _report_removed(context, [path for root in roots for path in sweep_orphans(root)])


def _report_removed(context: InitResourceContext, removed: list[Path]) -> None:
    if removed:
        context.log.warning(
            f"removed {len(removed)} leftovers of interrupted writes: "
            + ", ".join(map(str, removed[:5]))
            + (" ..." if len(removed) > 5 else "")
        )


#: Per process: the frames this process wrote last, handed to downstream steps of the same run without re-reading.
_RECENT = RecentPartitions()


class ParquetIOManager(ConfigurableIOManager):
    """Stores each asset as parquet: ``<base_dir>/<asset>.parquet``, or one file per partition
    ``<base_dir>/<asset>/<partition>.parquet``.

    A run over a range of partitions (single-run backfills) hands over one frame; it is split into the daily
    files by the column named in the asset's ``partition_expr`` metadata. Every partition of the range is
    written, empty ones included, so a re-run replaces what an earlier run wrote. Writes are atomic. Within a
    process, a frame just written is handed to the next steps of the run without reading its files again, as long
    as they are unchanged (``RecentPartitions``).
    """

    base_dir: str = Field(
        default=str(WAREHOUSE_DIR),
        description="Root folder of the stored assets, or a URL "
        "(az://container/warehouse, s3://bucket/warehouse; credentials from the environment).",
    )

    def setup_for_execution(self, context: InitResourceContext) -> None:
        if context.instance is not None:  # every run stores through it: the run's worker is recorded here
            tag_worker(context.instance, context.run)
        _sweep(context, self.base_dir)

    def _path(self, asset_key, partition: str | None):
        name = "/".join(asset_key.path)
        return as_path(self.base_dir) / (f"{name}.parquet" if partition is None else f"{name}/{partition}.parquet")

    def handle_output(self, context: OutputContext, obj: pd.DataFrame | ChunkedFrames) -> None:
        """Write the frame; each partition's materialization gets ``content_sha256`` (of its file's bytes), and the
        output's data version is that content (the partitions' hashes combined for a range), so re-writing equal
        data changes no version and a real change always does. A :class:`ChunkedFrames` is computed and written
        chunk by chunk."""
        _RECENT.forget(self._name(context))
        if not context.has_asset_partitions:
            if isinstance(obj, ChunkedFrames):
                raise TypeError(f"{context.asset_key.to_user_string()}: chunked output of an unpartitioned asset")
            sha = write_parquet_atomic(obj, self._path(context.asset_key, None))
            context.add_output_metadata({"path": str(self._path(context.asset_key, None)), CONTENT_SHA: sha})
            _set_data_version(context, sha)
            return
        keys = context.asset_partition_keys
        if isinstance(obj, ChunkedFrames):
            shas, done = [], []
            # each chunk's files are written in a thread while the next chunk is computed (Arrow and file writes
            # release the interpreter lock): at most two chunks are held, the one written and the one computed
            with ThreadPoolExecutor(max_workers=1) as writer:
                writing = None
                for chunk_keys, frame in obj:
                    if chunk_keys != keys[len(done) : len(done) + len(chunk_keys)]:
                        raise ValueError(
                            f"{context.asset_key.to_user_string()}: chunk {chunk_keys[0]}..{chunk_keys[-1]} "
                            f"is not the next run of partitions after {done[-1] if done else 'the start'}"
                        )
                    if writing is not None:
                        shas += self._record(context, *writing.result())
                    remember = len(chunk_keys) == len(keys)
                    writing = writer.submit(self._write_files, context, frame, chunk_keys, remember)
                    done += chunk_keys
                if writing is not None:
                    shas += self._record(context, *writing.result())
            if done != keys:
                raise ValueError(
                    f"{context.asset_key.to_user_string()}: the chunks covered {len(done)} of {len(keys)} partitions"
                )
            context.add_output_metadata(obj.metadata())
        else:
            shas = self._write_partitions(context, obj, keys, remember=True)
        _set_data_version(context, shas[0] if len(shas) == 1 else hashlib.sha256("".join(shas).encode()).hexdigest())
        context.add_output_metadata({"path": str(self._path(context.asset_key, keys[0]).parent)})

    def _write_partitions(
        self, context: OutputContext, obj: pd.DataFrame, keys: list[str], remember: bool
    ) -> list[str]:
        """The partitions ``keys`` of the frame, one file each (split by the ``partition_expr`` column); their
        hashes, also recorded on each partition's materialization."""
        return self._record(context, *self._write_files(context, obj, keys, remember))

    @staticmethod
    def _record(context: OutputContext, keys: list[str], shas: list[str]) -> list[str]:
        """Each partition's file hash on its materialization (in the step's thread); the hashes."""
        for key, sha in zip(keys, shas, strict=True):
            context.step_context.add_asset_metadata({CONTENT_SHA: sha}, asset_key=context.asset_key, partition_key=key)
        return shas

    def _write_files(
        self, context: OutputContext, obj: pd.DataFrame, keys: list[str], remember: bool
    ) -> tuple[list[str], list[str]]:
        """The files of :meth:`_write_partitions`: (keys, hashes of their files)."""
        column = context.definition_metadata.get("partition_expr")
        if len(keys) > 1 and not column:
            raise ValueError(f"{context.asset_key.to_user_string()}: a multi-partition output needs partition_expr")
        if column:
            parts = list(partition_rows(obj, column, keys, context.asset_partitions_def))
        else:  # a single partition takes every row
            parts = [(keys[0], np.arange(len(obj)))]
        written = sum(len(rows) for _, rows in parts)
        if written != len(obj):
            raise ValueError(
                f"{context.asset_key.to_user_string()}: {len(obj) - written} rows fall outside partitions "
                f"{keys[0]}..{keys[-1]} (column {column})"
            )
        paths = [self._path(context.asset_key, key) for key in keys]
        table = arrow_table(obj)
        shas = write_partitions_atomic(table, ((path, rows) for path, (_, rows) in zip(paths, parts, strict=True)))
        if remember:
            order = np.concatenate([rows for _, rows in parts]) if parts else np.arange(0)
            _RECENT.remember(self._name(context), keys, paths, table, order)
        return keys, shas

    def load_input(self, context: InputContext) -> pd.DataFrame:
        """The stored frame; for partitioned inputs, the partitions concatenated.

        An input declared with ``AssetIn(metadata={"allow_missing_partitions": True})`` (data that may not
        have arrived yet, such as tomorrow's failures) skips partitions never written.
        """
        if not context.has_asset_partitions:
            return self._read(self._path(context.asset_key, None), context)
        keys = context.asset_partition_keys
        present = self._present(context.asset_key, keys)
        if (context.definition_metadata or {}).get("allow_missing_partitions"):
            keys = [k for k in keys if k in present]
        else:
            missing = [k for k in keys if k not in present]
            if missing:
                self._existing(self._path(context.asset_key, missing[0]), context)  # raises, naming the file
        paths = [self._path(context.asset_key, key) for key in keys]
        if (context.definition_metadata or {}).get("chunked"):  # read by the step, a chunk at a time
            return StoredPartitions("/".join(context.asset_key.path), dict(zip(keys, paths, strict=True)), self._reader)
        if not paths:
            return pd.DataFrame()
        recalled = _RECENT.recall(self._name(context), keys, paths)
        return read_partitions(paths) if recalled is None else recalled

    def _present(self, asset_key, keys) -> set[str]:
        """The keys whose partition file exists: one listing of the asset's folder on an object store (where each
        existence check is a request), a check per file on a local disk."""
        if not is_remote(self.base_dir):
            return {k for k in keys if self._path(asset_key, k).exists()}
        folder = self._path(asset_key, keys[0]).parent if keys else None
        try:
            names = {p.name for p in folder.iterdir()} if folder is not None else set()
        except FileNotFoundError:
            names = set()
        return {k for k in keys if f"{k}.parquet" in names}

    def _reader(self, paths: list, columns: list[str] | None = None) -> pd.DataFrame:
        return read_partitions(paths, columns) if paths else pd.DataFrame(columns=columns)

    def _name(self, context) -> tuple[str, str]:
        base = self.base_dir if is_remote(self.base_dir) else str(Path(self.base_dir).resolve())
        return base, "/".join(context.asset_key.path)

    @staticmethod
    def _existing(path, context: InputContext):
        if not path.exists():
            raise FileNotFoundError(
                f"{context.asset_key.to_user_string()}: {path} does not exist; materialize that asset (partition) first"
            )
        return path

    @classmethod
    def _read(cls, path, context: InputContext) -> pd.DataFrame:
        return read_parquet(cls._existing(path, context))


#: Metadata key of the sha256 of a stored file's bytes, on every materialization (per partition).
CONTENT_SHA = "content_sha256"


def _set_data_version(context: OutputContext, sha: str) -> None:
    """The output's data version is its content. Dagster takes a data version from ``Output(data_version=...)``;
    an IO manager has only the step's cached version, which Dagster uses as the user-provided one when it builds
    the materialization right after ``handle_output`` (1.13). Tested in pm_assets_tests/test_resources.py."""
    context.step_context.set_data_version(context.asset_key, DataVersion(sha[:24]))
