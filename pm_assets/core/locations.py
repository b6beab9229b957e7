"""Locations of files: a local path or an object-store URL behind one path interface, and reading a file there.

A location is a local path or a URL (``az://container/folder``, ``s3://bucket/folder``: any fsspec filesystem,
through ``universal_pathlib``; credentials from the environment, e.g. ``AZURE_STORAGE_CONNECTION_STRING``).
:func:`as_path` gives a ``pathlib.Path`` or a ``UPath`` with the same interface.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


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
    """A file's bytes, local or remote."""
    return as_path(location).read_bytes()


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with as_path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
