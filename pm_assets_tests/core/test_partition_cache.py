"""The partition cache: a recall gives exactly what reading the files gives, misses when they changed, and no
caller's in-place change to a recalled frame reaches a later recall (under pandas 2.2 as under 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from pm_assets.core.parquet_files import read_partitions, write_parquet_atomic, write_partitions_atomic
from pm_assets.core.partition_cache import RecentPartitions
from pm_assets_tests.core.test_parquet_files import frame


def _written(tmp_path, df, name="asset"):
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
    first["value"] = 0.0  # a caller replacing a column does not change the next caller's frame
    pd.testing.assert_frame_equal(recent.recall("a", keys, paths), read_partitions(paths), check_exact=True)


def _in_place_changes():
    """Ways a caller can change a frame in place (under copy-on-write some raise: the arrays are read-only)."""
    yield "loc", lambda df: df.loc.__setitem__((df.index[0], "value"), 99.0)
    yield "iloc", lambda df: df.iloc.__setitem__((1, df.columns.get_loc("machineID")), 999)
    yield "values", lambda df: df["value"].values.__setitem__(2, 99.0)
    yield "to_numpy", lambda df: df["machineID"].to_numpy().__setitem__(3, 999)
    yield "categorical array", lambda df: df["model"].array.__setitem__(0, "model4")
    yield "categorical values", lambda df: df["model"].values.__setitem__(1, "model4")
    yield "datetime array", lambda df: df["datetime"].array.__setitem__(0, pd.Timestamp("2000-01-01"))
    yield "bool values", lambda df: df["flag"].values.__setitem__(0, not df["flag"].iat[0])
    yield "string array", lambda df: df["name"].array.__setitem__(0, "changed")
    yield "frame values", lambda df: df.values.__setitem__((0, 2), 99.0)


def _outcome(df: pd.DataFrame, change) -> str:
    before = df.copy(deep=True)
    try:
        change(df)
    except ValueError as exc:  # a read-only array (copy-on-write)
        pd.testing.assert_frame_equal(df, before, check_exact=True)
        return f"raises {exc}"
    return "no change" if df.equals(before) else "changed"


def test_a_caller_changing_a_recalled_frame_in_place_never_changes_a_later_recall(tmp_path):
    """Each change works on a recalled frame as on a frame read from the files (both change it, or both refuse),
    and the next recall is still what the files hold."""
    keys, paths, table, order = _written(tmp_path, frame(seed=4))
    expected = read_partitions(paths)
    recent = RecentPartitions()
    recent.remember("a", keys, paths, table, order)
    outcomes = {}
    for name, change in _in_place_changes():
        outcomes[name] = _outcome(recent.recall("a", keys, paths), change)
        assert outcomes[name] == _outcome(read_partitions(paths), change), name
        pd.testing.assert_frame_equal(recent.recall("a", keys, paths), expected, check_exact=True, obj=name)
    assert outcomes["loc"] == outcomes["iloc"] == outcomes["categorical array"] == "changed"  # real changes


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
