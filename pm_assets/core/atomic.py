"""Atomic writes: every file the project writes appears whole or not at all, on a local disk or an object store.

Locally, a file is written under a temporary name and renamed into place; on an object store (a URL, see
:mod:`pm_assets.core.locations`) a blob is uploaded in one request, which is atomic: it appears whole or not at all,
so there is no temporary to leave behind. What has no atomic form on an object store is a folder: :func:`atomic_dir`
uploads its files one by one there (each whole). A process killed mid-write leaves its temporary behind;
:func:`sweep_orphans` removes those.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pm_assets.core.locations import as_path, is_remote
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
