"""The parquet IO manager through Dagster: each partition's materialization carries the sha256 of its file's bytes,
and the data version is the content, so equal data gives equal versions and a change does not."""

from __future__ import annotations

import hashlib

import pandas as pd
from dagster import AssetKey, DagsterInstance, asset, materialize

from pm_assets.assets.common import daily_partitioned
from pm_assets.resources import CONTENT_SHA, ParquetIOManager

VALUES = {"offset": 0.0}


@asset(**daily_partitioned())
def readings(context) -> pd.DataFrame:
    window = context.partition_time_window
    hours = pd.date_range(window.start, window.end, freq="h", inclusive="left").tz_localize(None)
    return pd.DataFrame({"datetime": hours, "value": hours.day_of_year * 100.0 + hours.hour + VALUES["offset"]})


def _run(instance, base_dir, first, last) -> dict[str, tuple[str, str]]:
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    assert materialize(
        [readings], instance=instance, tags=tags, resources={"io_manager": ParquetIOManager(base_dir=str(base_dir))}
    ).success
    out = {}
    for record in instance.fetch_materializations(AssetKey("readings"), limit=10).records:
        mat = record.asset_materialization
        out.setdefault(mat.partition, (mat.metadata[CONTENT_SHA].value, mat.tags["dagster/data_version"]))
    return out


def test_content_hashes_and_data_versions_follow_the_stored_bytes(tmp_path):
    with DagsterInstance.ephemeral() as instance:
        first = _run(instance, tmp_path, "2015-01-01", "2015-01-02")
        for day, (sha, _) in first.items():
            assert sha == hashlib.sha256((tmp_path / "readings" / f"{day}.parquet").read_bytes()).hexdigest()
        # a range shares one data version: its partitions' hashes combined
        combined = hashlib.sha256("".join(first[d][0] for d in ("2015-01-01", "2015-01-02")).encode()).hexdigest()
        assert {v for _, v in first.values()} == {combined[:24]}
        single = _run(instance, tmp_path, "2015-01-02", "2015-01-02")["2015-01-02"]
        assert single == (first["2015-01-02"][0], first["2015-01-02"][0][:24])  # equal data: the same version
        VALUES["offset"] = 0.5
        try:
            changed = _run(instance, tmp_path, "2015-01-02", "2015-01-02")["2015-01-02"]
        finally:
            VALUES["offset"] = 0.0
        assert changed[0] != single[0] and changed[1] != single[1]
