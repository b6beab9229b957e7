"""Parquet files of frames and partitions: the Arrow fast paths give exactly what pandas file by file gives, and the
same frame always gives the same bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.parquet_files import (
    concat_partitions,
    read_partitions,
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


def test_the_same_frame_gives_the_same_bytes_whatever_its_attrs(tmp_path):
    """pandas would store a frame's ``attrs`` in the file; a parsed source file's frame carries some (the extra
    columns parsing found, see core.parsing) and is staged with them."""
    df = frame(seed=2)
    a, b = df.copy(), df.copy()
    a.attrs["extra_columns"] = ["humidity"]
    sha_a = write_parquet_atomic(a, tmp_path / "a.parquet")
    sha_b = write_parquet_atomic(b, tmp_path / "b.parquet")
    assert sha_a == sha_b and (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    assert pd.read_parquet(tmp_path / "a.parquet").attrs == {}
    with_attrs = tmp_path / "pandas.parquet"
    a.to_parquet(with_attrs, index=False)  # what pandas alone would write: the attrs in the file
    assert pd.read_parquet(with_attrs).attrs == a.attrs
    changed = b.copy()
    changed.loc[changed.index[0], "value"] = 99.0
    assert write_parquet_atomic(changed, tmp_path / "c.parquet") != sha_a
