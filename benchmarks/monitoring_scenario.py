"""Monitoring scenarios on simulated data, and the speed of one monitoring partition.

    .venv/bin/python benchmarks/monitoring_scenario.py [--machines 100]

1. Drift injected from 2015-07-01 (+1.5 sd on volt and pressure, failure rate doubled): the traffic light of every
   partition from June to August, and the first partition whose production window lies fully after the date.
2. No injection, a full year: the share of monitoring partitions (with a full 74-day history) that are not green.
3. Timing of one partition (60 + 14 days, all features, 3-hourly snapshots): monitor() without permutation
   importance, permutation importance alone, and the slow way (a per-feature Python loop with a pandas histogram
   and scipy's KS) for the same drift statistics.
The model is trained once, on data before 2015-06-01, and scores the whole year.
"""

import argparse
import time

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from pm_assets.core.features import build_features, feature_columns
from pm_assets.core.labels import build_labels
from pm_assets.core.model import fit_bundle, split_by_cutoff, training_rows
from pm_assets.core.monitoring import MonitoringParams, monitor, monitoring_rows, permutation_importance_of
from pm_assets.core.scoring import score_snapshots
from pm_assets.core.simulate import DriftSpec, SimulationConfig, simulate

DRIFT_DATE = "2015-07-01"
TRAIN_CUTOFF = "2015-06-01"


def scenario(machines: int, drift: DriftSpec | None):
    tables = simulate(SimulationConfig(machines=machines, drift=drift))
    feats = build_features(tables["telemetry"], tables["errors"], tables["maintenance"], tables["machines"], "2015-01-01", "2016-01-01")
    labels = build_labels(feats, tables["failures"], 24, "2016-01-01")
    train, _ = split_by_cutoff(training_rows(feats, labels), TRAIN_CUTOFF, 24)
    bundle = fit_bundle(train)
    rows = monitoring_rows(feats, score_snapshots(feats, bundle, "scenario"), labels)
    return bundle, rows, training_rows(feats, labels)


def lights(rows: pd.DataFrame, days, importance=None) -> pd.DataFrame:
    names = [f for f in feature_columns() if f != "model"]
    out = []
    for day in days:
        result = monitor(rows, pd.Timestamp(day) + pd.Timedelta(days=1), names, MonitoringParams(), importance)
        out.append({"date": str(pd.Timestamp(day).date()), "light": result.light, "alerts": result.alert_count,
                    "fired": ",".join(a.name for a in result.alerts if a.fired),
                    "score_psi": result.drift_scores["psi"].iloc[0], "drifted": int(result.drift_features["drifted"].sum())})
    return pd.DataFrame(out)


def slow_drift(ref: pd.DataFrame, prod: pd.DataFrame, names: list[str]) -> dict:
    """The slow way: per feature, pandas quantile bins via pd.cut, value_counts, and scipy's ks_2samp."""
    out = {}
    for f in names:
        r, p = ref[f].dropna(), prod[f].dropna()
        edges = np.unique(r.quantile(np.arange(1, 10) / 10).to_numpy())
        if len(r) < 50 or len(p) < 50 or len(edges) < 3:
            out[f] = (np.nan, np.nan)
            continue
        bins = [-np.inf, *edges, np.inf]
        pr = pd.cut(r, bins).value_counts(normalize=True, sort=False).clip(lower=1e-4)
        pp = pd.cut(p, bins).value_counts(normalize=True, sort=False).clip(lower=1e-4)
        out[f] = (float(((pp - pr) * np.log(pp / pr)).sum()), ks_2samp(r, p).statistic)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=100)
    args = parser.parse_args()
    pd.set_option("display.width", 200)

    drift = DriftSpec(start=DRIFT_DATE, sensor_shift_sd={"volt": 1.5, "pressure": 1.5}, failure_rate_factor=2.0)
    _, rows, _ = scenario(args.machines, drift)
    table = lights(rows, pd.date_range("2015-06-01", "2015-08-15"))
    print("drift injected from", DRIFT_DATE)
    print(table.to_string(index=False))
    first_after = (pd.Timestamp(DRIFT_DATE) + pd.Timedelta(days=13)).date()
    before = table[table["date"] < DRIFT_DATE]
    print(f"before the date: {(before['light'] == 'green').mean():.0%} green; first production window fully after "
          f"it ({first_after}): {table.loc[table['date'] == str(first_after), 'light'].iloc[0]}\n")

    bundle, rows, labelled = scenario(args.machines, None)
    year = lights(rows, pd.date_range("2015-03-16", "2015-12-31"))
    non_green = year[year["light"] != "green"]
    print(f"no injection: {len(year)} partitions with a full history, {len(non_green)} not green "
          f"(false-alarm rate {len(non_green) / len(year):.1%})")
    if len(non_green):
        print(non_green.to_string(index=False))

    end = pd.Timestamp("2015-10-01")
    names = [f for f in feature_columns() if f != "model"]
    started = time.perf_counter()
    result = monitor(rows, end, names, MonitoringParams())
    t_monitor = time.perf_counter() - started
    reference = labelled[(labelled["datetime"] >= end - pd.Timedelta(days=74)) & (labelled["datetime"] < end - pd.Timedelta(days=14))]
    started = time.perf_counter()
    permutation_importance_of(bundle, reference)
    t_importance = time.perf_counter() - started
    ref = rows[(rows["datetime"] >= end - pd.Timedelta(days=74)) & (rows["datetime"] < end - pd.Timedelta(days=14))]
    prod = rows[(rows["datetime"] >= end - pd.Timedelta(days=14)) & (rows["datetime"] < end)]
    started = time.perf_counter()
    slow = slow_drift(ref, prod, names)
    t_slow = time.perf_counter() - started
    fast = result.drift_features.set_index("feature")
    worst = max(abs(fast.loc[f, "psi"] - v[0]) for f, v in slow.items() if not np.isnan(v[0]))
    print(f"\none partition ({len(ref):,} reference + {len(prod):,} production rows, {len(names)} features):")
    print(f"  monitor() without importance   {t_monitor:6.2f} s")
    print(f"  permutation importance         {t_importance:6.2f} s")
    print(f"  total                          {t_monitor + t_importance:6.2f} s")
    print(f"  slow way, drift statistics     {t_slow:6.2f} s  (x{t_slow / t_monitor:.1f} monitor(); max |PSI diff| {worst:.1e})")


if __name__ == "__main__":
    main()
