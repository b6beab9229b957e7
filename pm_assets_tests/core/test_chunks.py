"""Chunks of days: the keys in runs, and stored partitions read by window (each file once) as read directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.chunks import ChunkedFrames, StoredPartitions, day_chunks, shift_key
from pm_assets.core.parquet_files import read_partitions, write_parquet_atomic


def test_day_chunks_cover_the_keys_in_order_in_runs_of_at_most_n():
    keys = list(pd.date_range("2015-01-01", periods=65).strftime("%Y-%m-%d"))
    chunks = day_chunks(keys, 30)
    assert [len(c) for c in chunks] == [30, 30, 5] and sum(chunks, []) == keys
    assert day_chunks(keys, 1000) == [keys] and day_chunks([], 7) == []
    with pytest.raises(ValueError, match="at least 1"):
        day_chunks(keys, 0)
    assert shift_key("2015-03-01", -1) == "2015-02-28" and shift_key("2016-02-28", 1) == "2016-02-29"


@pytest.fixture()
def stored(tmp_path):
    """40 daily files of 3-hourly rows for 3 machines, a categorical column, one day empty and one day missing."""
    rng = np.random.default_rng(0)
    paths, reads = {}, []
    for day in pd.date_range("2015-01-01", periods=40):
        key = day.strftime("%Y-%m-%d")
        if key == "2015-01-20":
            continue  # never stored
        times = pd.date_range(day, periods=8, freq="3h").repeat(3)
        frame = pd.DataFrame(
            {
                "machineID": np.tile([1, 2, 3], 8),
                "datetime": times,
                "x": rng.normal(size=24),
                "model": pd.Categorical(
                    rng.choice(["model1", "model2"], 24), categories=["model1", "model2", "model3"]
                ),
            }
        )
        if key == "2015-01-07":
            frame = frame.iloc[:0]
        paths[key] = tmp_path / f"{key}.parquet"
        write_parquet_atomic(frame, paths[key])

    def reader(files, columns=None):
        reads.extend(files)
        return read_partitions(files, columns)

    return StoredPartitions("x", paths, reader), reads


def test_a_window_moving_forward_reads_what_a_direct_read_gives_and_each_file_once(stored):
    partitions, reads = stored
    windows = [
        ("2014-12-20", "2015-01-05"),
        ("2014-12-27", "2015-01-12"),
        ("2015-01-03", "2015-01-22"),
        ("2015-01-03", "2015-01-22"),
        ("2015-01-19", "2015-02-05"),
        ("2015-02-01", "2015-02-09"),
    ]
    for first, last in windows:
        got = partitions.read_window(first, last, "datetime")
        direct = read_partitions([p for k, p in partitions.paths.items() if first <= k <= last])
        pd.testing.assert_frame_equal(got.reset_index(drop=True), direct, check_exact=True)
    assert len(reads) == len(set(reads)) == len(partitions.paths)  # every stored day read once, by the windows


def test_chunked_frames_iterates_its_chunks_and_gives_its_metadata_after():
    seen = []

    def chunks():
        for keys in (["a"], ["b", "c"]):
            seen.append(keys)
            yield keys, pd.DataFrame({"k": keys})

    out = ChunkedFrames(chunks(), lambda: {"chunks": len(seen)})
    assert seen == [] and [k for k, _ in out] == [["a"], ["b", "c"]] and out.metadata() == {"chunks": 2}
