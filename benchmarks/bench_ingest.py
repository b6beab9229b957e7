"""Benchmark: simulate 100 machines x 1 year, write the Kaggle CSVs, parse + validate them, then ingest them
through the Dagster raw assets (one ranged run over every partition, in-memory instance).

    .venv/bin/python benchmarks/bench_ingest.py [--machines 100] [--repeat 3] [--corrupt 0.01]

Prints wall-clock seconds per stage (best of --repeat) and the process's peak resident memory. Then the same
telemetry year with ``--corrupt`` of its lines damaged (``corrupt_csv``: every defect of ``CORRUPTIONS`` in turn)
against the clean file, parse + validate, timed alternately in one run (the machine is shared: only figures of one
run compare), with what was kept and quarantined.
"""

import argparse
import os
import resource
import tempfile
import warnings
from pathlib import Path

import pandas as pd

warnings.filterwarnings("ignore")
# the simulated year (2015) as the partitions, set before pm_assets is imported
os.environ.update(PM_PARTITION_START="2015-01-01", PM_PARTITION_END="2016-01-02")

from timing import best_of  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--corrupt", type=float, default=0.01, help="fraction of telemetry lines damaged")
    args = parser.parse_args()

    from dagster import DagsterInstance, load_assets_from_modules, materialize

    from pm_assets.assets import ingestion
    from pm_assets.core.parsing import find_source_file, read_source_csv
    from pm_assets.core.schema import TABLES
    from pm_assets.core.simulate import SimulationConfig, corrupt_csv, simulate, write_kaggle_csv
    from pm_assets.core.validation import TIME_PROBLEM, PlausibleTimes, validate_rows
    from pm_assets.partitions import daily_partitions
    from pm_assets.resources import LandingResource, ParquetIOManager

    config = SimulationConfig(machines=args.machines)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        t_sim, tables = best_of(args.repeat, lambda: simulate(config))
        t_write, _ = best_of(args.repeat, lambda: write_kaggle_csv(tables, raw))

        def parse_and_validate():
            machines = validate_rows(
                read_source_csv(find_source_file(raw, TABLES["machines"]), TABLES["machines"]), TABLES["machines"]
            )
            ids = machines.kept["machineID"]
            return {n: validate_rows(read_source_csv(find_source_file(raw, s), s), s, ids) for n, s in TABLES.items()}

        t_core, results = best_of(args.repeat, parse_and_validate)
        keys = [k for k in daily_partitions.get_partition_keys() if k < config.end]

        def dagster_run():
            with DagsterInstance.ephemeral() as instance:
                result = materialize(
                    load_assets_from_modules([ingestion]),
                    instance=instance,
                    resources={
                        "landing": LandingResource(
                            landing_dir=str(raw),
                            staging_dir=str(Path(tmp) / "staging"),
                            quarantine_dir=str(Path(tmp) / "q"),
                        ),
                        "io_manager": ParquetIOManager(base_dir=str(Path(tmp) / "wh")),
                    },
                    tags={
                        "dagster/asset_partition_range_start": keys[0],
                        "dagster/asset_partition_range_end": keys[-1],
                    },
                )
                assert result.success
            return result

        t_dagster, _ = best_of(1, dagster_run)

        ids = results["machines"].kept["machineID"]
        clean_path = find_source_file(raw, TABLES["telemetry"])
        damaged = corrupt_csv(clean_path, Path(tmp) / "bad" / "PdM_telemetry.csv", args.corrupt, seed=0)

        # as staging does: timestamps outside the plausible range (the 2031 rows) get their reason before validation
        plausible = PlausibleTimes(pd.Timestamp("2014-01-01"), pd.Timestamp.now().floor("s") + pd.Timedelta(hours=24))

        def telemetry(path):
            frame = read_source_csv(path, TABLES["telemetry"])
            frame[TIME_PROBLEM] = plausible.problems(frame["datetime"])
            return validate_rows(frame, TABLES["telemetry"], ids)

        t_clean, t_bad = [], []
        for _ in range(max(args.repeat, 5)):  # alternately, so that both see the same load
            t_clean.append(best_of(1, lambda: telemetry(clean_path))[0])
            t_bad_one, bad_result = best_of(1, lambda: telemetry(Path(tmp) / "bad" / "PdM_telemetry.csv"))
            t_bad.append(t_bad_one)

    rows = {n: len(r.kept) for n, r in results.items()}
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machines={args.machines} telemetry_rows={rows['telemetry']:,} partitions={len(keys)}")
    print(f"simulate                 {t_sim:6.2f} s")
    print(f"write Kaggle CSVs        {t_write:6.2f} s")
    print(f"simulate + write         {t_sim + t_write:6.2f} s")
    print(f"parse + validate (core)  {t_core:6.2f} s   ({rows['telemetry'] / t_core / 1e6:.2f} M telemetry rows/s)")
    print(f"dagster raw assets, 1 run over {len(keys)} partitions (in-memory instance) {t_dagster:6.2f} s")
    print(f"peak RSS                 {peak_mb:6.0f} MB")
    print(f"telemetry parse + validate, clean       {min(t_clean):6.2f} s (best of {len(t_clean)})")
    print(
        f"telemetry parse + validate, {args.corrupt:.0%} damaged {min(t_bad):6.2f} s   "
        f"ratio {min(t_bad) / min(t_clean):.2f}x; {sum(damaged.values()):,} lines damaged "
        f"({', '.join(f'{k} {n}' for k, n in damaged.items())})"
    )
    print(
        f"  kept {len(bad_result.kept):,}, quarantined {len(bad_result.rejected):,}: "
        + ", ".join(f"{r} {n}" for r, n in bad_result.rejected_by_rule().items() if n)
    )


if __name__ == "__main__":
    main()
