"""Real vs simulated: the structural figures of the Azure PdM dataset, measured the same way on both.

    .venv/bin/python benchmarks/compare_simulator.py [--real ../shared/data/azure_pm] [--seed 42]

Real telemetry is only available as subsets here: sensor statistics use the complete Q1 subset (machines 1-20),
precursor shifts use the Q1 subset plus the union file. The observed-runs figures compare the union file with the
same simulated fleet observed through ``ObservationSpec()`` (the telemetry hours the public copy holds).
"""

import argparse
from pathlib import Path

import pandas as pd

from pm_assets.core import profile
from pm_assets.core.simulate import ObservationSpec, SimulationConfig, simulate

ROOT = Path(__file__).resolve().parents[1]


def read(real: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(real / name, parse_dates=["datetime"] if name != "PdM_machines.csv.gz" else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--real", type=Path, default=ROOT.parent / "shared" / "data" / "azure_pm")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    real = {
        n: read(args.real, f"PdM_{f}.csv.gz")
        for n, f in [("errors", "errors"), ("failures", "failures"), ("maintenance", "maint"), ("machines", "machines")]
    }
    q1 = read(args.real, "partial/PdM_telemetry_SUBSET_machines1-20_2015Q1.csv.gz")
    q1["datetime"] = pd.to_datetime(q1["datetime"])  # this file's timestamps are not parsed by read_csv
    union = read(args.real, "partial/PdM_telemetry_PARTIAL_union_144262rows.csv.gz")
    real_tel = pd.concat([q1, union]).drop_duplicates(["machineID", "datetime"])
    sim = simulate(SimulationConfig(seed=args.seed))

    rows = []
    for comp, (r, s) in pd.concat(
        [profile.failure_counts(real["failures"]), profile.failure_counts(sim["failures"])], axis=1
    ).iterrows():
        rows.append((f"failures {comp}", r, s))
    rows.append(("errors (total)", len(real["errors"]), len(sim["errors"])))
    stats_r, stats_s = profile.sensor_stats(q1), profile.sensor_stats(sim["telemetry"])
    for sensor in stats_r.index:
        rows.append((f"{sensor} mean", stats_r.loc[sensor, "mean"], stats_s.loc[sensor, "mean"]))
        rows.append((f"{sensor} sd", stats_r.loc[sensor, "sd"], stats_s.loc[sensor, "sd"]))
    z_r = profile.precursor_zshift(real_tel, real["failures"])
    z_s = profile.precursor_zshift(sim["telemetry"], sim["failures"])
    for comp in z_r.index:
        rows.append((f"precursor z-shift {comp}", z_r[comp], z_s[comp]))
    by_model_r = profile.failures_per_machine_by_model(real["failures"], real["machines"])
    by_model_s = profile.failures_per_machine_by_model(sim["failures"], sim["machines"])
    for model in by_model_r.index:
        rows.append((f"failures per machine {model}", by_model_r[model], by_model_s[model]))
    rows.append(
        (
            "median replacement gap (days)",
            profile.replacement_gap_median_days(real["maintenance"]),
            profile.replacement_gap_median_days(sim["maintenance"]),
        )
    )
    rows.append(("maintenance rows", len(real["maintenance"]), len(sim["maintenance"])))
    # what makes a simulated fleet transfer: noise structure, excursions, co-failures, who fails
    sim_q1 = sim["telemetry"][sim["telemetry"]["machineID"] <= q1["machineID"].max()]
    sim_q1 = sim_q1[(sim_q1["datetime"] >= q1["datetime"].min()) & (sim_q1["datetime"] <= q1["datetime"].max())]
    lag_r, lag_s = profile.lag1_autocorrelation(q1), profile.lag1_autocorrelation(sim_q1)
    clean_r = profile.clean_24h_means(q1, real["failures"])
    clean_s = profile.clean_24h_means(sim["telemetry"], sim["failures"])
    exc_r, exc_s = profile.excursion_share(clean_r), profile.excursion_share(clean_s)
    for sensor in lag_r.index:
        rows.append((f"lag-1 autocorrelation {sensor}", lag_r[sensor], lag_s[sensor]))
        rows.append((f"sd of 24 h means, clean snapshots, {sensor}", clean_r[sensor].std(), clean_s[sensor].std()))
    for key in exc_r.index:
        rows.append((f"clean snapshots with a precursor-sized excursion, {key}", exc_r[key], exc_s[key]))
    rows.append(
        (
            "share of failures in co-failure hours",
            profile.co_failure_share(real["failures"]),
            profile.co_failure_share(sim["failures"]),
        )
    )
    age_r = profile.failures_by_age_band(real["failures"], real["machines"])
    age_s = profile.failures_by_age_band(sim["failures"], sim["machines"])
    for band in age_r.index:
        rows.append((f"failures per machine, age {band}", age_r.loc[band].sum(), age_s.loc[band].sum()))
        rows.append((f"comp4 failures per machine, age {band}", age_r.loc[band, "comp4"], age_s.loc[band, "comp4"]))
    comp_r = profile.components_by_model(real["failures"], real["machines"])
    comp_s = profile.components_by_model(sim["failures"], sim["machines"])
    for model in comp_r.index:
        for comp in comp_r.columns:
            rows.append((f"{comp} failures per machine, {model}", comp_r.loc[model, comp], comp_s.loc[model, comp]))
    observed = simulate(SimulationConfig(seed=args.seed, observation=ObservationSpec()))
    runs_r = profile.observed_runs(union, real["failures"], len(real["machines"]))
    runs_s = profile.observed_runs(observed["telemetry"], observed["failures"], len(observed["machines"]))
    for key in runs_r.index:
        rows.append((f"observed telemetry (union file): {key}", runs_r[key], runs_s[key]))
    table = pd.DataFrame(rows, columns=["figure", "real", "simulated"]).set_index("figure")
    table["sim/real"] = table["simulated"] / table["real"]
    with pd.option_context(
        "display.float_format",
        "{:.3f}".format,
        "display.width",
        200,
        "display.max_rows",
        200,
        "display.max_colwidth",
        70,
    ):
        print(table.to_string())


if __name__ == "__main__":
    main()
