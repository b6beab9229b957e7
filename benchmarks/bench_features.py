"""Benchmark: features and labels for 100 machines x 1 year from raw parquet, single process.

    .venv/bin/python benchmarks/bench_features.py [--machines 100] [--repeat 3]

Compares pm_assets.core.features (dense hour x machine grid + pandas rolling kernels) with the plain-pandas way:
groupby(machine).rolling(time window) per sensor and window, slope from rolling cov/var, then a join to the
snapshot grid. Prints seconds (best of --repeat) and checks the two agree.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from timing import best_of

from pm_assets.core.features import FeatureParams, build_features, feature_columns, snapshot_times
from pm_assets.core.labels import build_labels
from pm_assets.core.parquet_files import read_partitions, write_parquet_atomic
from pm_assets.core.schema import SENSORS
from pm_assets.core.simulate import SimulationConfig, simulate


def write_partitions(frame: pd.DataFrame, folder: Path) -> None:
    for day, part in frame.groupby(frame["datetime"].dt.strftime("%Y-%m-%d")):
        write_parquet_atomic(part.reset_index(drop=True), folder / f"{day}.parquet")


def plain_pandas_telemetry(telemetry: pd.DataFrame, times: pd.DatetimeIndex, params: FeatureParams) -> pd.DataFrame:
    """The straightforward pandas version of the telemetry features (no coverage rule)."""
    tel = telemetry.sort_values(["machineID", "datetime"]).set_index("datetime")
    tel["hours"] = (tel.index - tel.index.min()) / pd.Timedelta(hours=1)
    grouped = tel.groupby("machineID")
    out = {}
    for name, hours in params.windows.items():
        rolling = grouped.rolling(f"{hours}h")
        for sensor in SENSORS:
            out[f"{sensor}_mean_{name}"] = rolling[sensor].mean()
            out[f"{sensor}_sd_{name}"] = rolling[sensor].std()
    for sensor in SENSORS:
        pair = grouped[["hours", sensor]].rolling("168h")
        cov = pair.cov().xs("hours", level=2)[sensor]
        var = grouped["hours"].rolling("168h").var()
        out[f"{sensor}_trend_7d"] = cov / var * 24
    features = pd.DataFrame(out).reset_index()
    grid = pd.MultiIndex.from_product(
        [np.sort(telemetry["machineID"].unique()), times], names=["machineID", "datetime"]
    )
    return features.set_index(["machineID", "datetime"]).reindex(grid).reset_index()


def worst_error_vs_exact(feats: pd.DataFrame, telemetry: pd.DataFrame, samples: int = 300) -> float:
    """Largest |core - exact| over sampled complete snapshots: means and sds by math.fsum (two-pass), every sensor
    and window."""
    import math

    tel = telemetry.set_index(["machineID", "datetime"]).sort_index()
    worst = 0.0
    for r in feats[feats["complete"]].sample(samples, random_state=1).itertuples():
        series = tel.loc[r.machineID]
        for name, hours in FeatureParams().windows.items():
            win = series[(series.index > r.datetime - pd.Timedelta(hours=hours)) & (series.index <= r.datetime)]
            for sensor in SENSORS:
                v = win[sensor].to_numpy()
                mean = math.fsum(v) / len(v)
                sd = math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (len(v) - 1))
                worst = max(
                    worst, abs(getattr(r, f"{sensor}_mean_{name}") - mean), abs(getattr(r, f"{sensor}_sd_{name}") - sd)
                )
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tables = simulate(SimulationConfig(machines=args.machines))
    params = FeatureParams()
    start, end = "2015-01-01", "2016-01-01"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("telemetry", "errors", "maintenance", "failures"):
            write_partitions(tables[name], root / name)
        write_parquet_atomic(tables["machines"], root / "machines.parquet")

        def read():
            return {
                n: read_partitions(sorted((root / n).glob("*.parquet")))
                for n in ("telemetry", "errors", "maintenance", "failures")
            }

        t_read, raw = best_of(args.repeat, read)
        n_files = len(list((root / "telemetry").glob("*.parquet")))
        machines = pd.read_parquet(root / "machines.parquet")
    t_feat, feats = best_of(
        args.repeat,
        lambda: build_features(raw["telemetry"], raw["errors"], raw["maintenance"], machines, start, end, params),
    )
    t_lab, labels = best_of(args.repeat, lambda: build_labels(feats, raw["failures"], 24, end))
    times = snapshot_times(start, end, params.snapshot_every_hours)
    t_plain, plain = best_of(1, lambda: plain_pandas_telemetry(raw["telemetry"], times, params))

    ours = feats.set_index(["machineID", "datetime"])
    theirs = plain.set_index(["machineID", "datetime"]).reindex(ours.index)
    full = ours["complete"].to_numpy()  # where every window is covered, both ways must agree
    worst = max(
        np.nanmax(np.abs(ours.loc[full, c].to_numpy() - theirs.loc[full, c].to_numpy())) for c in theirs.columns
    )

    print(
        f"machines={args.machines} snapshots={len(feats):,} features={len(feature_columns(params))} "
        f"columns={feats.shape[1]} telemetry_rows={len(raw['telemetry']):,}"
    )
    print(f"read raw parquet ({n_files} daily files x 4 tables)     {t_read:6.2f} s")
    print(f"features (pm_assets.core.features)                 {t_feat:6.2f} s")
    print(f"labels (pm_assets.core.labels)                     {t_lab:6.2f} s")
    print(f"total from raw parquet                             {t_read + t_feat + t_lab:6.2f} s")
    print(
        f"plain pandas groupby-rolling, telemetry only       {t_plain:6.2f} s   "
        f"({t_plain / t_feat:.1f}x the core's full features)"
    )
    print(f"max |difference| core vs plain pandas on complete snapshots: {worst:.2e}")
    print(
        "max |error| core vs exact (math.fsum) means and sds, 300 sampled snapshots: "
        f"{worst_error_vs_exact(feats, raw['telemetry']):.2e}"
    )


if __name__ == "__main__":
    main()
