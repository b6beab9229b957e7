"""Four months backfilled in chunks (``PM_BACKFILL_CHUNK_DAYS``: ``BackfillPolicy.multi_run``) store what the single
run stores, to the bit.

A chunked backfill runs each asset's partitions in runs of at most N days, a chunk once the partitions it reads
exist: features read 14 days before their chunk, labels the day after theirs, monitoring 73 days of scores and
labels. The test runs the graph the way such a backfill orders it (each stage's chunks in turn, the unpartitioned
assets between), through Dagster in process, and compares every stored file with one run over the same days.

Within a run, each daily step computes its range in chunks of ``PM_CHUNK_DAYS`` (``pm_assets.core.chunks``): the
single run here uses 7-day chunks, the 45-day runs one chunk each, so the two place every chunk edge differently.

Why 120 days (2015-01-01 to 2015-04-30) prove what a year did: what could differ between the two is what a chunk
reads from before its first day or after its last, and every such read crosses a backfill edge here with its whole
lookback behind it. The 45-day runs end on 02-14, 03-31 and 04-30 (the last run shorter): the features of 02-15 and
04-01 read 14 days of telemetry from the run before, the labels of 02-14 and 03-31 read the next runs' failures,
and monitoring, from 03-15 (the first day whose 73 days of lookback all exist) to 04-30, is two runs whose second
starts on 04-01 and reads 73 days of scores and labels made by two earlier runs (01-18 to 03-31 spans the 02-15
edge). Neither edge falls on one of the single run's 7-day edges. A longer range would only repeat these edges.
"""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
from dagster import BackfillPolicy

from pm_assets import settings
from pm_assets.core.simulate import SimulationConfig, simulate, write_kaggle_csv
from pm_assets_tests.conftest import run_assets, stored_digests

#: A lighter training (20 boosting iterations): what is compared is where things are stored, not the model's quality.
LIGHT = {"ops": {"failure_model": {"config": {"max_iter": 20}}}}
FIRST, LAST = "2015-01-01", "2015-04-30"  # 120 days (see the module's docstring)
CHUNK = 45  # days: the last chunk is shorter; every lookback (features 14 days, monitoring 73) crosses a chunk edge
#: Monitoring runs from the first day with its whole 73-day lookback (FIRST + 73 days) to LAST: 47 days in two
#: chunked runs, the second of which (from 04-01) reads its whole lookback from runs before it.
MONITOR_FROM = "2015-03-15"
DAYS, MONITORED = len(pd.date_range(FIRST, LAST)), len(pd.date_range(MONITOR_FROM, LAST))
STAGES = [  # (assets, partitioned) in the order a backfill can run them
    (["source_files", "machines", "maintenance_history"], False),
    (["telemetry", "errors", "maintenance", "failures"], True),
    (["features", "labels"], True),
    (["failure_model"], False),
    (["scores", "maintenance_worklist"], True),
    (["monitoring"], True),
    (["monitoring_history"], False),
]


def _chunks(size: int | None, first: str = FIRST) -> list[tuple[str, str]]:
    """The backfill's runs: consecutive ``size``-day ranges of the year (one range when None), from ``first`` on."""
    days = list(pd.date_range(FIRST, LAST).strftime("%Y-%m-%d"))
    size = size or len(days)
    ranges = [(days[i], days[min(i + size, len(days)) - 1]) for i in range(0, len(days), size)]
    return [(max(a, first), b) for a, b in ranges if b >= first]


def _build(root, raw, chunk: int | None, instance) -> dict[str, str]:
    for selection, partitioned in STAGES:
        start = MONITOR_FROM if selection == ["monitoring"] else FIRST
        for days in _chunks(chunk, start) if partitioned else [None]:
            assert run_assets(
                instance,
                root,
                raw_dir=raw,
                selection=selection,
                days=days,
                run_config=LIGHT if "failure_model" in selection else None,
            ).success
    return stored_digests(root)


def test_a_backfill_in_chunks_stores_what_one_run_stores(tmp_path, instance, monkeypatch):
    raw = tmp_path / "raw"
    end = (pd.Timestamp(LAST) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    write_kaggle_csv(simulate(SimulationConfig(machines=6, start=FIRST, end=end, seed=7)), raw)
    # the same folder for both (stored frames hold report paths), one after the other
    monkeypatch.setattr(settings, "CHUNK_DAYS", 7)
    single = _build(tmp_path / "project", raw, None, instance)
    subprocess.run(["rm", "-rf", str(tmp_path / "project")], check=True)
    monkeypatch.setattr(settings, "CHUNK_DAYS", 366)
    chunked = _build(tmp_path / "project", raw, CHUNK, instance)
    assert len(single) > 6 * DAYS + MONITORED, len(single)
    assert sum(name.startswith("warehouse/monitoring/") for name in single) == MONITORED  # every monitored day compared
    different = sorted(name for name in single if chunked.get(name) != single[name])
    assert set(chunked) == set(single) and not different, different[:10]


def test_the_backfill_policy_follows_the_setting(tmp_path):
    probe = (
        "from pm_assets.definitions import defs\n"
        "print(sorted({str(a.backfill_policy) for a in defs.assets if a.partitions_def is not None}))"
    )
    for setting, expected in (("", BackfillPolicy.single_run()), ("30", BackfillPolicy.multi_run(30))):
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env={"PM_BACKFILL_CHUNK_DAYS": setting, "PM_PARTITION_START": FIRST, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        assert out.stdout.strip() == str([str(expected)]), (setting, out.stdout, out.stderr[-500:])
