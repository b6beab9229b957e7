"""Parquet files of frames and of their partitions: written atomically with the same bytes for the same frame, and
read back (one file, or a run of partition files concatenated) exactly as pandas reads them."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pandas as pd

from pm_assets.core.atomic import upload, write_bytes_atomic
from pm_assets.core.locations import as_path, is_remote, read_bytes


def read_parquet(location) -> pd.DataFrame:
    """One parquet file, local or remote, as ``pd.read_parquet`` reads it."""
    if is_remote(location):
        import io

        return pd.read_parquet(io.BytesIO(read_bytes(location)))
    return pd.read_parquet(location)


def arrow_table(df: pd.DataFrame):
    """``df`` as an Arrow table without its ``attrs``: pandas would store them in the file's metadata, and they say
    how the frame was built (e.g. the extra columns parsing found in a source file), so equal frames would differ in
    bytes."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    if b"pandas" in meta:
        pandas_meta = json.loads(meta[b"pandas"])
        if pandas_meta.pop("attributes", None) is not None:
            meta[b"pandas"] = json.dumps(pandas_meta).encode()
            table = table.replace_schema_metadata(meta)
    return table


def write_parquet_atomic(df: pd.DataFrame, target: str | os.PathLike) -> str:
    """Write ``df`` as a parquet file atomically; returns the sha256 of the bytes written (the same frame always
    gives the same bytes)."""
    (sha,) = write_partitions_atomic(df, [(target, np.arange(len(df)))])
    return sha


def write_partitions_atomic(df, parts) -> list[str]:
    """Write row subsets of ``df`` (a DataFrame or an Arrow table) as parquet files, each atomically: ``parts``
    yields (target, row positions). Returns the sha256 of each file's bytes, in order.

    The frame is converted to Arrow once and each file is a ``take`` of that table, so a year split into 366 days
    costs one conversion, not 366 (a file then reads back exactly as ``df.iloc[rows]`` written with
    ``to_parquet(index=False)``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = df if isinstance(df, pa.Table) else arrow_table(df)
    shas, uploads = [], {}
    for target, rows in parts:
        buffer = pa.BufferOutputStream()
        pq.write_table(table.take(rows), buffer)
        data = buffer.getvalue().to_pybytes()
        if is_remote(target):
            uploads[as_path(target)] = data
        else:
            write_bytes_atomic(target, data)
        shas.append(hashlib.sha256(data).hexdigest())
    upload(uploads)
    return shas


#: Threads that read a run of partition files. A day's file is small (a few hundred KB), so what costs is the work
#: around each read, which Arrow does with the GIL released: 367 feature files of the 100-machine year read in 1.96 s
#: with ``pq.read_table`` one after the other, 1.25 s with ``ParquetFile.read`` (no dataset discovery) and 0.68 s
#: with that on two threads (2026-12-03, 2 cores; the same table).
READ_THREADS = 2


def read_partitions(paths, columns: list[str] | None = None) -> pd.DataFrame:
    """The parquet files concatenated in order, as :func:`concat_partitions` of each file read with pandas would
    give them; read as Arrow tables (``READ_THREADS`` files at a time) and converted once (falls back to pandas when
    the files' schemas differ). ``columns``: only these (in the files' order)."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa
    import pyarrow.parquet as pq

    def read(source):
        with pq.ParquetFile(source) as file:
            return file.read(columns=columns, use_threads=False)

    paths = list(paths)
    if paths and is_remote(paths[0]):  # fetched together (fsspec's async filesystems request them concurrently)
        import io

        located = [as_path(p) for p in paths]
        blobs = located[0].fs.cat([p.path for p in located])
        sources = [io.BytesIO(blobs[p.path]) for p in located]
    else:
        sources = [os.fspath(p) for p in paths]
    if len(sources) > 1:
        with ThreadPoolExecutor(READ_THREADS) as pool:
            tables = list(pool.map(read, sources))
    else:
        tables = [read(source) for source in sources]
    if len(tables) > 1 and all(t.schema.equals(tables[0].schema, check_metadata=True) for t in tables[1:]):
        return pa.concat_tables(tables).to_pandas()
    return concat_partitions([t.to_pandas() for t in tables])


def read_back_table(table):
    """``table`` cast to the schema its parquet file reads back with (parquet stores dictionaries with int32
    indices): its ``to_pandas()`` is what reading the file gives."""
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table.slice(0, 0), buffer)  # the schema parquet would give back, from an empty file
    return table.cast(pq.read_schema(io.BytesIO(buffer.getvalue())))


def concat_partitions(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate per-partition frames, keeping categorical columns categorical.

    A parquet file of an empty partition stores no category values, and pandas turns a concat of categoricals
    with different categories into ``object``; so categories are united first (in order of appearance).
    """
    if len(frames) == 1:
        return frames[0]
    united = {}
    for col in frames[0].columns:
        if isinstance(frames[0][col].dtype, pd.CategoricalDtype):
            categories = list(dict.fromkeys(c for f in frames for c in f[col].cat.categories))
            if any(list(f[col].cat.categories) != categories for f in frames):
                united[col] = categories
    if united:  # only then are the frames copied (a copy of a year of features is hundreds of MB)
        frames = [
            f.assign(**{col: f[col].cat.set_categories(categories) for col, categories in united.items()})
            for f in frames
        ]
    return pd.concat(frames, ignore_index=True)
