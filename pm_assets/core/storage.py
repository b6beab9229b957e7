"""Atomic file writes: every file the project writes appears whole or not at all, on a local disk or an object store.

A location is a local path or a URL (``az://container/folder``, ``s3://bucket/folder``: any fsspec filesystem,
through ``universal_pathlib``; credentials from the environment, e.g. ``AZURE_STORAGE_CONNECTION_STRING``).
:func:`as_path` gives a ``pathlib.Path`` or a ``UPath`` with the same interface. Locally, a file is written under a
temporary name and renamed into place; on an object store a blob is uploaded in one request, which is atomic: it
appears whole or not at all, so there is no temporary to leave behind. What has no atomic form on an object store is
a folder: :func:`atomic_dir` uploads its files one by one there (each whole).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from pm_assets.core.processes import HOST, process_alive

#: Permissions of every written file (what open() would give under the usual umask 022).
FILE_MODE = 0o644


#: Temporary names carry the writing machine and process: ``.<name>.<host>-<pid>.<random>.tmp``. A process killed
#: mid-write leaves one behind, and :func:`sweep_orphans` removes those of this machine's processes that no longer
#: run (a folder shared by several machines keeps the others' temporaries: their processes cannot be seen here).
TMP_SUFFIX = ".tmp"
_TMP_NAME = re.compile(r"^\..+\.(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.tmp$")
_HOST_HASH = hashlib.sha256(HOST.encode()).hexdigest()[:8]


class WriteError(OSError):
    """An I/O error while writing, with the file it concerns in its message."""


def is_remote(location) -> bool:
    """True for a URL of an object store (anything but a local path or ``file://``)."""
    text = str(location)
    return "://" in text and not text.startswith(("file://", "local://"))


def as_path(location):
    """A ``pathlib.Path`` for a local location, a ``upath.UPath`` (the same interface, over fsspec) for a URL."""
    if isinstance(location, Path) or not is_remote(location):
        return Path(str(location).removeprefix("file://"))
    from upath import UPath

    return location if isinstance(location, UPath) else UPath(str(location))


def read_bytes(location) -> bytes:
    return as_path(location).read_bytes()


def read_parquet(location) -> pd.DataFrame:
    """One parquet file, local or remote, as ``pd.read_parquet`` reads it."""
    if is_remote(location):
        import io

        return pd.read_parquet(io.BytesIO(read_bytes(location)))
    return pd.read_parquet(location)


def write_new(target, data: bytes) -> bool:
    """Write ``target`` only if nothing is there yet, atomically (locally a hard link of a complete temporary, on
    Azure Blob a create-only upload). False if it existed: the caller lost a race for that name."""
    target = as_path(target)
    if is_remote(target):
        try:
            target.fs.pipe_file(target.path, data, overwrite=False)
        except FileExistsError:
            return False
        except Exception as exc:  # noqa: BLE001 - the SDKs raise their own types; a taken name is one of them
            if type(exc).__name__ in ("ResourceExistsError", "FileExistsError"):
                return False
            raise WriteError(getattr(exc, "errno", None) or 5, f"cannot write {target}: {exc}") from exc
        return True
    with temporary_dir(target) as tmp:
        (tmp / "new").write_bytes(data)
        try:
            os.link(tmp / "new", target)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _naming(exc, target) from exc
    return True


def _tmp_prefix(target: Path) -> str:
    return f".{target.name}.{_HOST_HASH}-{os.getpid()}."


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    The temporary file lives in the same folder, so the final ``os.replace`` is atomic on POSIX. On an
    exception the temporary file is removed and ``target`` is left as it was; an ``OSError`` (a full disk, a
    read-only folder) is raised again as a :class:`WriteError` naming ``target``.
    """
    target = Path(target)
    tmp_path = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=TMP_SUFFIX, dir=target.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        tmp_path.chmod(FILE_MODE)  # mkstemp makes 0600 files; outputs are meant to be read by others
        try:
            yield tmp_path
        except OSError as exc:
            raise _naming(exc, target) from exc
        os.replace(tmp_path, target)
    except WriteError:
        raise
    except OSError as exc:
        raise _naming(exc, target) from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def _naming(exc: OSError, target: Path) -> WriteError:
    if isinstance(exc, WriteError):
        return exc
    return WriteError(exc.errno, f"cannot write {target}: {exc.strerror or exc}")


@contextmanager
def temporary_dir(beside: str | os.PathLike) -> Iterator[Path]:
    """An empty folder beside ``beside``, named like every temporary of this module (so :func:`sweep_orphans`
    knows it); removed on exit unless the block renamed it away."""
    beside = Path(beside)
    try:
        beside.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_tmp_prefix(beside), suffix=TMP_SUFFIX, dir=beside.parent))
        tmp.chmod(0o755)
    except OSError as exc:
        raise _naming(exc, beside) from exc
    try:
        yield tmp
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; when the block succeeds, it takes ``target``'s place.

    Readers see the old folder or the whole new one, never a part (between the two renames ``target`` is absent
    for a moment). On an exception the temporary folder is removed and ``target`` stays as it was. On an object
    store the folder is built locally and its files are uploaded together when the block succeeds, each whole,
    then the target's files the new folder does not have are deleted."""
    if is_remote(target):
        with tempfile.TemporaryDirectory(prefix="pm_upload_") as local:
            yield Path(local)
            target = as_path(target)
            new = sorted(p for p in Path(local).rglob("*") if p.is_file())
            upload({target / p.relative_to(local).as_posix(): p.read_bytes() for p in new})
            names = {f"{target.path}/{p.relative_to(local).as_posix()}" for p in new}
            for old in target.fs.find(target.path):  # one listing; files the new folder does not have
                if old not in names:
                    target.fs.rm_file(old)
        return
    target = Path(target)
    with temporary_dir(target) as tmp:
        yield tmp
        try:
            if target.exists():
                with temporary_dir(target) as old:
                    os.replace(target, old / "old")
                    os.replace(tmp, target)
            else:
                os.replace(tmp, target)
        except OSError as exc:
            raise _naming(exc, target) from exc


def sweep_orphans(root: str | os.PathLike) -> list[Path]:
    """Remove the temporary files and folders under ``root`` left by processes that no longer run (a write
    interrupted by a kill); those of live processes are left alone. Returns what was removed. An object store
    has none: its uploads are atomic."""
    if is_remote(root):
        return []
    root = Path(root)
    removed = []
    if not root.exists():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*filenames, *dirnames]:
            match = _TMP_NAME.match(name)
            if match is None or match["host"] != _HOST_HASH or process_alive(int(match["pid"])):
                continue
            path = Path(dirpath) / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
                dirnames.remove(name)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    target = as_path(target)
    if is_remote(target):  # one upload: the blob appears whole or not at all
        upload({target: data})
        return target
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return target


def arrow_table(df: pd.DataFrame):
    """``df`` as an Arrow table without its ``attrs``: pandas would store them in the file's metadata, and they hold
    details of the run that built the frame (which partitions it loaded), so equal frames would differ in bytes."""
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


def upload(blobs: dict) -> None:
    """Upload {remote path: bytes} together (fsspec's async filesystems send them concurrently), each blob whole."""
    if not blobs:
        return
    first = next(iter(blobs))
    try:
        first.fs.pipe({path.path: data for path, data in blobs.items()})
    except Exception as exc:  # noqa: BLE001 - the SDKs raise their own types
        what = first if len(blobs) == 1 else f"{len(blobs)} files under {first.parent}"
        raise WriteError(getattr(exc, "errno", None) or 5, f"cannot write {what}: {exc}") from exc


def read_partitions(paths, columns: list[str] | None = None) -> pd.DataFrame:
    """The parquet files concatenated in order, as :func:`concat_partitions` of each file read with pandas would
    give them; read as Arrow tables and converted once (falls back to pandas when the files' schemas differ).
    ``columns``: only these (in the files' order)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths = list(paths)
    if paths and is_remote(paths[0]):  # fetched together (fsspec's async filesystems request them concurrently)
        import io

        located = [as_path(p) for p in paths]
        blobs = located[0].fs.cat([p.path for p in located])
        tables = [pq.read_table(io.BytesIO(blobs[p.path]), columns=columns) for p in located]
    else:
        tables = [pq.read_table(p, columns=columns) for p in paths]
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
        if any(is_remote(p) for p in paths):  # no cheap stamp of a blob: always read it
            return None
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
    with as_path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
