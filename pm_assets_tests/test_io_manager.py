"""The parquet IO manager's refusals, through real Dagster runs: each names the asset and says what is wrong, and
writes nothing; and an input that allows missing partitions reads the ones present."""

from __future__ import annotations

import pandas as pd
import pytest
from dagster import (
    AssetIn,
    BackfillPolicy,
    DagsterInstance,
    asset,
    materialize,
)

from pm_assets.assets.common import daily_partitioned
from pm_assets.core.chunks import ChunkedFrames
from pm_assets.core.parquet_files import read_partitions
from pm_assets.partitions import daily_partitions
from pm_assets.resources import ParquetIOManager

#: What the assets below return, set by each test (rows per day, or the chunks), and what a reader received.
PLAN: dict = {}


def _rows(*days: str) -> pd.DataFrame:
    times = [pd.Timestamp(day) + pd.Timedelta(hours=h) for day in days for h in (0, 12)]
    return pd.DataFrame({"datetime": times, "value": range(len(times))})


@asset(**daily_partitioned())
def arrivals(context) -> pd.DataFrame:
    return _rows(*PLAN.get("days", context.partition_keys))


@asset(partitions_def=daily_partitions, backfill_policy=BackfillPolicy.single_run())
def without_expr(context) -> pd.DataFrame:
    return _rows(*context.partition_keys)


@asset(**daily_partitioned())
def chunked(context) -> ChunkedFrames:
    return ChunkedFrames((keys, _rows(*keys)) for keys in PLAN["chunks"])


@asset
def unpartitioned() -> ChunkedFrames:
    return ChunkedFrames(iter([(["2015-01-01"], _rows("2015-01-01"))]))


@asset(**daily_partitioned(), ins={"arrivals": AssetIn(metadata={"allow_missing_partitions": True})})
def tolerant(arrivals: pd.DataFrame) -> pd.DataFrame:
    PLAN["received"] = arrivals
    return arrivals


@asset(**daily_partitioned())
def strict(arrivals: pd.DataFrame) -> pd.DataFrame:
    return arrivals


ASSETS = [arrivals, without_expr, chunked, unpartitioned, tolerant, strict]


@pytest.fixture(autouse=True)
def _plan():
    PLAN.clear()
    yield
    PLAN.clear()


def _run(tmp_path, name: str, first: str | None = None, last: str | None = None):
    """Materialize the asset ``name`` (over the partitions first..last) with the IO manager storing under tmp_path."""
    tags = (
        {}
        if first is None
        else {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    )
    with DagsterInstance.ephemeral() as instance:
        return materialize(
            ASSETS,
            selection=[name],
            instance=instance,
            tags=tags,
            resources={"io_manager": ParquetIOManager(base_dir=str(tmp_path))},
        )


def _refusal(tmp_path, error_type, name: str, first: str | None = None, last: str | None = None) -> BaseException:
    """The error the IO manager raised (``materialize`` raises the user error of the failed step)."""
    with pytest.raises(error_type) as info:
        _run(tmp_path, name, first, last)
    return info.value


def _files(tmp_path, name: str) -> list[str]:
    return sorted(p.name for p in (tmp_path / name).glob("*")) if (tmp_path / name).exists() else []


def test_a_missing_partition_is_named_with_its_file(tmp_path):
    PLAN["days"] = ["2015-01-01", "2015-01-03"]  # one run writes three files, the middle one empty...
    assert _run(tmp_path, "arrivals", "2015-01-01", "2015-01-03").success
    (tmp_path / "arrivals" / "2015-01-02.parquet").unlink()  # ...and one is then missing
    error = _refusal(tmp_path, FileNotFoundError, "strict", "2015-01-01", "2015-01-03")
    missing = tmp_path / "arrivals" / "2015-01-02.parquet"
    assert str(error) == f"arrivals: {missing} does not exist; materialize that asset (partition) first"
    assert _files(tmp_path, "strict") == []


def test_an_input_that_allows_missing_partitions_reads_the_ones_present(tmp_path):
    for day in ("2015-01-01", "2015-01-03"):
        assert _run(tmp_path, "arrivals", day, day).success
    assert _run(tmp_path, "tolerant", "2015-01-01", "2015-01-03").success
    present = [tmp_path / "arrivals" / f"{day}.parquet" for day in ("2015-01-01", "2015-01-03")]
    pd.testing.assert_frame_equal(PLAN["received"], read_partitions(present), check_exact=True)
    assert PLAN["received"]["datetime"].dt.strftime("%Y-%m-%d").unique().tolist() == ["2015-01-01", "2015-01-03"]
    # the output still has every partition of the run, the missing day's file empty
    assert [len(pd.read_parquet(tmp_path / "tolerant" / f"2015-01-0{d}.parquet")) for d in (1, 2, 3)] == [2, 0, 2]


def test_a_multi_partition_output_needs_a_partition_expr(tmp_path):
    error = _refusal(tmp_path, ValueError, "without_expr", "2015-01-01", "2015-01-02")
    assert str(error) == "without_expr: a multi-partition output needs partition_expr"
    assert _files(tmp_path, "without_expr") == []
    assert _run(tmp_path, "without_expr", "2015-01-02", "2015-01-02").success  # one partition takes every row
    assert len(pd.read_parquet(tmp_path / "without_expr" / "2015-01-02.parquet")) == 2


def test_rows_outside_the_run_partitions_are_refused(tmp_path):
    PLAN["days"] = ["2015-01-01", "2015-01-02", "2015-01-05"]
    error = _refusal(tmp_path, ValueError, "arrivals", "2015-01-01", "2015-01-02")
    assert str(error) == "arrivals: 2 rows fall outside partitions 2015-01-01..2015-01-02 (column datetime)"
    assert _files(tmp_path, "arrivals") == []


@pytest.mark.parametrize(
    ("chunks", "message", "written"),
    [
        (
            [["2015-01-02"], ["2015-01-01"]],
            "chunked: chunk 2015-01-02..2015-01-02 is not the next run of partitions after the start",
            [],
        ),
        (
            [["2015-01-01"], ["2015-01-03"]],
            "chunked: chunk 2015-01-03..2015-01-03 is not the next run of partitions after 2015-01-01",
            ["2015-01-01.parquet"],
        ),
        (
            [["2015-01-01", "2015-01-02"]],
            "chunked: the chunks covered 2 of 3 partitions",
            ["2015-01-01.parquet", "2015-01-02.parquet"],
        ),
    ],
    ids=["out of order", "a gap", "not covering the keys"],
)
def test_chunks_must_cover_the_run_partitions_in_order(tmp_path, chunks, message, written):
    PLAN["chunks"] = chunks
    error = _refusal(tmp_path, ValueError, "chunked", "2015-01-01", "2015-01-03")
    assert str(error) == message
    assert _files(tmp_path, "chunked") == written  # the chunks before the refusal were written, each whole


def test_chunks_in_order_covering_the_run_are_written(tmp_path):
    PLAN["chunks"] = [["2015-01-01", "2015-01-02"], ["2015-01-03"]]
    assert _run(tmp_path, "chunked", "2015-01-01", "2015-01-03").success
    paths = [tmp_path / "chunked" / f"2015-01-0{d}.parquet" for d in (1, 2, 3)]
    expected = pd.concat([_rows(*keys) for keys in PLAN["chunks"]], ignore_index=True)
    pd.testing.assert_frame_equal(read_partitions(paths), expected, check_exact=True)


def test_a_chunked_output_of_an_unpartitioned_asset_is_refused(tmp_path):
    error = _refusal(tmp_path, TypeError, "unpartitioned")
    assert str(error) == "unpartitioned: chunked output of an unpartitioned asset"
    assert not (tmp_path / "unpartitioned.parquet").exists()
