"""Locations: local paths and object-store URLs, and a file's hash read in blocks."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pm_assets.core.locations import as_path, is_remote, read_bytes, sha256_of


def test_a_url_of_an_object_store_is_remote_and_a_local_path_or_file_url_is_not():
    assert is_remote("az://container/warehouse") and is_remote("s3://bucket/x")
    assert not is_remote("/tmp/warehouse") and not is_remote("file:///tmp/warehouse") and not is_remote(Path("rel"))
    assert as_path("file:///tmp/warehouse") == Path("/tmp/warehouse") and isinstance(as_path("rel/x"), Path)


def test_the_hash_of_a_file_larger_than_a_block_is_the_hash_of_its_bytes(tmp_path):
    data = bytes(range(256)) * (3 * 4096 + 7)  # three 1 MiB blocks and a part
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest() and read_bytes(path) == data
