"""Atomic writes: a file or folder appears whole or not at all; a killed write's temporary is swept; errors name the
file."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from pm_assets.core.atomic import WriteError, atomic_dir, atomic_path, sweep_orphans, write_bytes_atomic


def test_a_write_killed_midway_leaves_a_temporary_file_that_the_sweep_removes(tmp_path):
    target = tmp_path / "warehouse" / "features" / "2015-01-04.parquet"
    code = (
        "import os, sys; from pm_assets.core.atomic import atomic_path\n"
        f"with atomic_path({str(target)!r}) as tmp:\n    tmp.write_bytes(b'half'); os.kill(os.getpid(), 9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    (orphan,) = target.parent.glob(".*.tmp")
    assert not target.exists()
    # a live writer's temporary file is not touched
    with atomic_path(tmp_path / "warehouse" / "scores.parquet") as live:
        live.write_bytes(b"in progress")
        assert sweep_orphans(tmp_path / "warehouse") == [orphan]
        assert live.exists() and not orphan.exists()
    assert (tmp_path / "warehouse" / "scores.parquet").read_bytes() == b"in progress"


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "reports" / "2015-01-04"
    with atomic_dir(target) as tmp:
        (tmp / "a.csv").write_text("1")
        assert not target.exists()
    assert sorted(p.name for p in target.iterdir()) == ["a.csv"]
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:  # a failed rewrite keeps the old folder
        (tmp / "b.csv").write_text("2")
        raise RuntimeError("step failed")
    assert sorted(p.name for p in target.iterdir()) == ["a.csv"]
    with atomic_dir(target) as tmp:
        (tmp / "b.csv").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b.csv"]
    assert [p.name for p in target.parent.iterdir()] == ["2015-01-04"]


def test_a_folder_that_cannot_be_made_is_named_in_the_error(tmp_path):
    (tmp_path / "warehouse").write_text("a file where the folder should be")
    target = tmp_path / "warehouse" / "scores" / "2015-01-04.parquet"
    with pytest.raises(WriteError, match=f"cannot write {target}: "):
        write_bytes_atomic(target, b"rows")


def test_a_full_disk_is_named_in_the_error(tmp_path):
    target = tmp_path / "scores" / "2015-01-04.parquet"
    with pytest.raises(WriteError, match=f"cannot write {target}: No space left on device") as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write on a full disk raises
    assert info.value.errno == errno.ENOSPC
    assert not target.exists() and not list(target.parent.iterdir())
