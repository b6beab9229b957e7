"""Atomic partition files: the Arrow fast paths give exactly what pandas file by file gives."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.storage import (
    RecentPartitions,
    WriteError,
    atomic_dir,
    atomic_path,
    concat_partitions,
    read_partitions,
    sweep_orphans,
    write_parquet_atomic,
    write_partitions_atomic,
)


def frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "machineID": rng.integers(1, 20, n),
            "datetime": pd.Timestamp("2015-01-01") + pd.to_timedelta(rng.integers(0, 72, n), unit="h"),
            "value": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
            "model": pd.Categorical(
                rng.choice(["model1", "model2", "model3"], n), categories=["model1", "model2", "model3", "model4"]
            ),
            "flag": rng.random(n) < 0.5,
            "name": rng.choice(["a", "b"], n),
        },
        index=np.arange(n) * 3 + 1,
    )  # a non-default index must not be stored


def test_each_partition_file_equals_the_rows_written_by_pandas(tmp_path):
    df = frame()
    days = df["datetime"].dt.floor("D")
    parts = [(tmp_path / "arrow" / f"{d.date()}.parquet", np.flatnonzero(days == d)) for d in sorted(days.unique())]
    parts.append((tmp_path / "arrow" / "empty.parquet", np.array([], dtype=np.intp)))
    shas = write_partitions_atomic(df, parts)
    (tmp_path / "pandas").mkdir()
    for (target, rows), sha in zip(parts, shas, strict=True):
        assert sha == hashlib.sha256(target.read_bytes()).hexdigest()
        expected = tmp_path / "pandas" / target.name
        df.iloc[rows].reset_index(drop=True).to_parquet(expected, index=False)
        pd.testing.assert_frame_equal(pd.read_parquet(target), pd.read_parquet(expected), check_exact=True)
    assert not list((tmp_path / "arrow").glob(".*.tmp"))  # no temporary file left behind


def test_read_partitions_equals_concat_of_pandas_reads(tmp_path):
    df = frame(seed=1)
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(len(df)), 4)):
        paths.append(tmp_path / f"{i}.parquet")
        write_parquet_atomic(df.iloc[rows].reset_index(drop=True), paths[-1])
    expected = concat_partitions([pd.read_parquet(p) for p in paths])
    pd.testing.assert_frame_equal(read_partitions(paths), expected, check_exact=True)
    pd.testing.assert_frame_equal(read_partitions(paths), df.reset_index(drop=True), check_exact=True)


def test_read_partitions_falls_back_when_files_differ_in_schema(tmp_path):
    """Files written by different runs may differ (here: categories, and an all-NaN float written as int-free
    null); the pandas path unites categories in order of appearance."""
    first = pd.DataFrame({"model": pd.Categorical(["model2"], categories=["model2"]), "x": [1.0]})
    second = pd.DataFrame(
        {"model": pd.Categorical(["model1", "model3"], categories=["model1", "model3"]), "x": [2.0, 3.0]}
    )
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    write_parquet_atomic(first, paths[0])
    write_parquet_atomic(second, paths[1])
    out = read_partitions(paths)
    assert list(out["model"].cat.categories) == ["model2", "model1", "model3"]
    assert out["model"].astype(str).tolist() == ["model2", "model1", "model3"] and out["x"].tolist() == [1.0, 2.0, 3.0]


def test_a_failed_write_leaves_the_earlier_file(tmp_path):
    df = frame(n=10)
    target = tmp_path / "day.parquet"
    write_partitions_atomic(df, [(target, np.arange(5))])
    before = target.read_bytes()
    with pytest.raises(IndexError):
        write_partitions_atomic(df, [(target, np.array([0, 99]))])  # a row that does not exist
    assert target.read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def _written(tmp_path, df, name="asset"):
    import pyarrow as pa

    days = df["datetime"].dt.floor("D")
    keys = [str(d.date()) for d in sorted(days.unique())]
    parts = [(tmp_path / name / f"{k}.parquet", np.flatnonzero(days == pd.Timestamp(k))) for k in keys]
    table = pa.Table.from_pandas(df, preserve_index=False)
    write_partitions_atomic(table, parts)
    return keys, [p for p, _ in parts], table, np.concatenate([rows for _, rows in parts])


def test_recent_partitions_give_exactly_what_reading_the_files_gives(tmp_path):
    df = frame(seed=2).sample(frac=1.0, random_state=0)  # not in file order
    keys, paths, table, order = _written(tmp_path, df)
    recent = RecentPartitions()
    recent.remember("a", keys, paths, table, order)
    first = recent.recall("a", keys, paths)
    pd.testing.assert_frame_equal(first, read_partitions(paths), check_exact=True)
    first["value"] = 0.0  # a caller changing its frame does not change the next caller's
    pd.testing.assert_frame_equal(recent.recall("a", keys, paths), read_partitions(paths), check_exact=True)


def test_recent_partitions_miss_on_other_keys_or_changed_files(tmp_path):
    df = frame(seed=3)
    keys, paths, table, order = _written(tmp_path, df)
    recent = RecentPartitions(size=1)
    recent.remember("a", keys, paths, table, order)
    assert recent.recall("a", keys[:-1], paths[:-1]) is None
    assert recent.recall("b", keys, paths) is None
    write_parquet_atomic(pd.read_parquet(paths[0]).head(1), paths[0])  # another writer replaced a file
    assert recent.recall("a", keys, paths) is None
    recent.remember("a", keys, paths, table, order)
    recent.remember("b", keys, paths, table, order)  # size 1: "a" is evicted
    assert recent.recall("a", keys, paths) is None and recent.recall("b", keys, paths) is not None
    recent.forget("b")
    assert recent.recall("b", keys, paths) is None


# --- same frame, same bytes; no orphans; errors that name the file ------------------------------------------------


def test_the_same_frame_gives_the_same_bytes_whatever_its_attrs(tmp_path):
    df = frame(seed=2)
    a, b = df.copy(), df.copy()
    a.attrs["partitions_loaded"] = [f"2015-01-{d:02d}" for d in range(1, 31)]  # what a run's load leaves on a frame
    sha_a = write_parquet_atomic(a, tmp_path / "a.parquet")
    sha_b = write_parquet_atomic(b, tmp_path / "b.parquet")
    assert sha_a == sha_b and (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pd.read_parquet(tmp_path / "a.parquet").attrs == {}
    changed = b.copy()
    changed.loc[changed.index[0], "value"] = 99.0
    assert write_parquet_atomic(changed, tmp_path / "c.parquet") != sha_a


def test_a_write_killed_midway_leaves_a_temporary_file_that_the_sweep_removes(tmp_path):
    target = tmp_path / "warehouse" / "features" / "2015-01-04.parquet"
    code = (
        "import os, sys; from pm_assets.core.storage import atomic_path\n"
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
        write_parquet_atomic(frame(), target)


def test_a_full_disk_is_named_in_the_error(tmp_path):
    target = tmp_path / "scores" / "2015-01-04.parquet"
    with pytest.raises(WriteError, match=f"cannot write {target}: No space left on device") as info:
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write on a full disk raises
    assert info.value.errno == errno.ENOSPC
    assert not target.exists() and not list(target.parent.iterdir())
