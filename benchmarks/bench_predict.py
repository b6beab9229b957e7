"""Benchmark: single-prediction latency of the champion bundle (one machine's current snapshot).

    .venv/bin/python benchmarks/bench_predict.py [--calls 1000]

Trains a bundle on 30 simulated machines x 4 months (the latency does not depend on the training size beyond the
trees' depth), then times ``predict_one`` on one day's feature rows, after one warm-up call. Prints p50/p99/max.
"""

import argparse
import time

import numpy as np

from pm_assets.core.features import build_features
from pm_assets.core.labels import build_labels
from pm_assets.core.model import fit_bundle, predict_one, training_rows
from pm_assets.core.simulate import SimulationConfig, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()
    tables = simulate(SimulationConfig(machines=30, start="2015-01-01", end="2015-05-01"))
    feats = build_features(
        tables["telemetry"], tables["errors"], tables["maintenance"], tables["machines"], "2015-01-01", "2015-05-01"
    )
    bundle = fit_bundle(training_rows(feats, build_labels(feats, tables["failures"], 24, "2015-05-01")))
    day = feats[feats["datetime"] >= "2015-04-30"]
    machines = day["machineID"].unique()
    predict_one(bundle, day, int(machines[0]))
    latencies = []
    for i in range(args.calls):
        started = time.perf_counter()
        predict_one(bundle, day, int(machines[i % len(machines)]))
        latencies.append((time.perf_counter() - started) * 1000)
    lat = np.array(latencies)
    print(
        f"predict_one over {args.calls} calls: p50 {np.percentile(lat, 50):.2f} ms, "
        f"p99 {np.percentile(lat, 99):.2f} ms, "
        f"max {lat.max():.2f} ms"
    )


if __name__ == "__main__":
    main()
