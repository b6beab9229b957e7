"""Atomic file writes: every file the project writes appears whole or not at all."""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

#: Permissions of every written file (what open() would give under the usual umask 022).
FILE_MODE = 0o644


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    The temporary file lives in the same folder, so the final ``os.replace`` is atomic on POSIX. On an
    exception the temporary file is removed and ``target`` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(FILE_MODE)  # mkstemp makes 0600 files; outputs are meant to be read by others
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_parquet_atomic(df: pd.DataFrame, target: str | os.PathLike) -> Path:
    with atomic_path(target) as tmp:
        df.to_parquet(tmp, index=False)
    return Path(target)


def write_partitions_atomic(df, parts) -> int:
    """Write row subsets of ``df`` (a DataFrame or an Arrow table) as parquet files, each atomically: ``parts``
    yields (target, row positions).

    The frame is converted to Arrow once and each file is a ``take`` of that table, so a year split into 366 days
    costs one conversion, not 366 (a file then reads back exactly as ``df.iloc[rows]`` written with
    ``to_parquet(index=False)``). Returns the number of rows written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    written = 0
    for target, rows in parts:
        with atomic_path(target) as tmp:
            pq.write_table(table.take(rows), tmp)
        written += len(rows)
    return written


def read_partitions(paths) -> pd.DataFrame:
    """The parquet files concatenated in order, as :func:`concat_partitions` of each file read with pandas would
    give them; read as Arrow tables and converted once (falls back to pandas when the files' schemas differ)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = list(paths)
    tables = [pq.read_table(p) for p in paths]
    if len(tables) > 1 and all(t.schema.equals(tables[0].schema, check_metadata=True) for t in tables[1:]):
        return pa.concat_tables(tables).to_pandas()
    return concat_partitions([t.to_pandas() for t in tables])


class RecentPartitions:
    """What this process wrote last for a few assets, handed back instead of reading the same files again.

    A ranged run reads an asset's 366 files again for every downstream asset (features: four times). An entry
    is the Arrow table that was written and the row order of its files; it is used only when the same keys are
    asked for and every file still has the inode, size and mtime it had just after the write (another process
    writing any of them makes it miss). The frame it gives is built as the files would be read back
    (``read_partitions``), and asserted equal to it in the tests.
    """

    def __init__(self, size: int = 6):
        from collections import OrderedDict

        self.size, self._entries = size, OrderedDict()

    @staticmethod
    def _stamps(paths) -> tuple | None:
        try:
            return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in (os.stat(p) for p in paths))
        except FileNotFoundError:
            return None

    def forget(self, name) -> None:
        self._entries.pop(name, None)

    def remember(self, name, keys, paths, table, order) -> None:
        self._entries[name] = (tuple(keys), self._stamps(paths), table, order)
        self._entries.move_to_end(name)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def recall(self, name, keys, paths) -> pd.DataFrame | None:
        entry = self._entries.get(name)
        if entry is None or entry[0] != tuple(keys) or entry[1] is None or entry[1] != self._stamps(paths):
            return None
        keys, stamps, table, order = entry
        if not isinstance(table, pd.DataFrame):  # converted on first use, then kept as a frame
            table = _as_read_back(table.take(order))
            self._entries[name] = (keys, stamps, table, None)
        self._entries.move_to_end(name)
        return table.copy(deep=False)  # copy-on-write: a caller's change never reaches the kept frame


def _as_read_back(table) -> pd.DataFrame:
    """``table`` converted as its parquet files read back would be (parquet stores dictionaries with int32 indices)."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table.slice(0, 0), buffer)  # the schema parquet would give back, from an empty file
    schema = pq.read_schema(io.BytesIO(buffer.getvalue()))
    return table.cast(schema).to_pandas()


def concat_partitions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-partition frames, keeping categorical columns categorical.

    A parquet file of an empty partition stores no category values, and pandas turns a concat of categoricals
    with different categories into ``object``; so categories are united first (in order of appearance).
    """
    if len(frames) == 1:
        return frames[0]
    frames = [f.copy() for f in frames]
    for col in frames[0].columns:
        if isinstance(frames[0][col].dtype, pd.CategoricalDtype):
            categories = list(dict.fromkeys(c for f in frames for c in f[col].cat.categories))
            for f in frames:
                f[col] = f[col].cat.set_categories(categories)
    return pd.concat(frames, ignore_index=True)


def to_json_safe(obj):
    """``obj`` with numpy scalars as Python numbers, NaN/inf as None, timestamps as ISO strings: valid JSON."""
    import numpy as np

    if isinstance(obj, dict):
        return {str(k): to_json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_safe(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    return obj


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
