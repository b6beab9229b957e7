"""Monitoring scenarios on simulated data, and the speed of one monitoring partition.

    .venv/bin/python benchmarks/monitoring_scenario.py [--machines 100]

1. The scenarios of ``pm_assets.core.scenarios`` (a sensor shift, a doubled failure rate, a correlation-only change,
   each from 2015-07-01 on its own; and the no-drift year), one fleet each, scored by the model trained on the
   no-drift fleet before 2015-06-01. For each, with the current rules and with the notebook's (absolute label rule,
   no multivariate drift, no sampling bands): the share of days not green (on the no-drift year: the false-alarm
   rate, over every day with a full 74-day history), the days from the start to the first day not green, and which
   alerts fired. Then each label-drift rule alone: its false alarms on the no-drift year and its first day on the
   doubled failure rate.
2. Timing of one partition (60 + 14 days, all features, 3-hourly snapshots): monitor() without permutation
   importance, permutation importance alone, and the slow way (a per-feature Python loop with a pandas histogram
   and scipy's KS) for the same drift statistics.
"""

import argparse
import time
from dataclasses import replace

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from pm_assets.core.model import permutation_importance_of, training_rows
from pm_assets.core.monitoring import MonitoringParams, monitor, monitored_features
from pm_assets.core.scenarios import (
    DRIFT_START,
    days_to_alarm,
    fleet,
    light_days,
    notebook_params,
    scenarios,
    scored_rows,
    train,
)
from pm_assets.core.simulate import SimulationConfig

TRAIN_CUTOFF = "2015-06-01"
YEAR = pd.date_range("2015-03-16", "2015-12-31")  # every day with a full 74-day history
AROUND = pd.date_range("2015-06-17", "2015-07-31")  # two weeks before the start, a month after


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


def fired_counts(table: pd.DataFrame) -> str:
    names = pd.Series([n for fired in table["fired"] for n in fired.split(",") if n])
    return ", ".join(f"{k} {v}" for k, v in names.value_counts().sort_index().items()) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=100)
    args = parser.parse_args()
    base = SimulationConfig(machines=args.machines)
    features, labels = fleet(base)
    bundle = train(features, labels, TRAIN_CUTOFF)
    rules = {"current": MonitoringParams(), "notebook": notebook_params()}
    label_rules = {
        "relative (50 %, p < 0.01)": MonitoringParams(),
        "absolute (10 points)": replace(MonitoringParams(), label_drift_rule="absolute"),
    }
    lines, label_lines, rows_of = [], [], {}
    for name, drift in scenarios().items():
        started = time.perf_counter()
        rows = (
            scored_rows(features, labels, bundle)
            if drift is None
            else scored_rows(*fleet(replace(base, drift=drift)), bundle)
        )
        rows_of[name] = rows
        days = YEAR if drift is None else AROUND
        for rule, params in rules.items():
            table = light_days(rows, days, params)
            after = table[table["date"] >= DRIFT_START] if drift is not None else table
            lines.append(
                f"| {name} | {rule} | {(after['light'] != 'green').mean():.1%} | "
                f"{'-' if drift is None else days_to_alarm(table)} | {fired_counts(after)} |"
            )
        if name in ("none", "failure rate x2"):
            for rule, params in label_rules.items():
                table = light_days(rows, days, params)
                fires = table["fired"].str.contains("label_drift")
                first = table.loc[fires & (table["date"] >= DRIFT_START), "date"]
                label_lines.append(
                    f"| {name} | {rule} | {fires.mean():.1%} | "
                    f"{(first.iloc[0] - pd.Timestamp(DRIFT_START)).days if len(first) else 'never'} |"
                )
        print(f"{name}: {time.perf_counter() - started:.0f} s", flush=True)
    print(f"\n{args.machines} machines, drift from {DRIFT_START}, model trained before {TRAIN_CUTOFF}")
    print("| scenario | rules | days not green | days to the first non-green | alerts fired (days) |")
    print("|---|---|---:|---:|---|")
    print("\n".join(lines))
    print("\n| scenario | label rule | days it fires | days to its first alert |\n|---|---|---:|---:|")
    print("\n".join(label_lines))

    rows = rows_of["none"]
    labelled = training_rows(features, labels)
    end = pd.Timestamp("2015-10-01")
    names = monitored_features()
    started = time.perf_counter()
    result = monitor(rows, end, names, MonitoringParams())
    t_monitor = time.perf_counter() - started
    window_start, production_start = end - pd.Timedelta(days=74), end - pd.Timedelta(days=14)
    reference = labelled[(labelled["datetime"] >= window_start) & (labelled["datetime"] < production_start)]
    started = time.perf_counter()
    permutation_importance_of(bundle, reference)
    t_importance = time.perf_counter() - started
    ref = rows[(rows["datetime"] >= window_start) & (rows["datetime"] < production_start)]
    prod = rows[(rows["datetime"] >= production_start) & (rows["datetime"] < end)]
    started = time.perf_counter()
    slow = slow_drift(ref, prod, names)
    t_slow = time.perf_counter() - started
    fast = result.drift_features.set_index("feature")
    continuous = [f for f, v in slow.items() if not np.isnan(v[0]) and fast.loc[f, "method"] == "continuous"]
    worst = max(abs(fast.loc[f, "psi"] - slow[f][0]) for f in continuous)
    print(f"\none partition ({len(ref):,} reference + {len(prod):,} production rows, {len(names)} features):")
    print(f"  monitor() without importance   {t_monitor:6.2f} s")
    print(f"  permutation importance         {t_importance:6.2f} s")
    print(f"  total                          {t_monitor + t_importance:6.2f} s")
    print(
        f"  slow way, drift statistics     {t_slow:6.2f} s  (x{t_slow / t_monitor:.1f} monitor(); max |PSI diff| "
        f"{worst:.1e} on the {len(continuous)} continuous features)"
    )


if __name__ == "__main__":
    main()
