"""Evidently and NannyML on the windows written by compare_drift_tools.py; runs in the tools venv, not the project's.

    /work/venvs/drift-tools/bin/python benchmarks/drift_tools_worker.py JOB.json

JOB.json names the reference and production parquet files, the feature and telemetry columns, the tasks
("evidently", "cbpe", "reconstruction"), the number of timed repeats and the output path. Each task times only its
own work (Evidently's ``Report.run``; CBPE's fit + estimate; the reconstruction's fit + calculate), best of the
repeats, and the results go back as JSON. A task that fails leaves its traceback under "errors" and the others run.
Nothing here imports pm_assets: the tools venv has Evidently 0.7.23 and NannyML 0.13.1, with pandas < 3.
"""

import json
import os
import sys
import time
import traceback
import warnings

# NannyML sends usage telemetry unless this is set (compare_drift_tools.py sets it too); Evidently's telemetry is only
# in its UI service, and iterative-telemetry honours ITERATIVE_DO_NOT_TRACK.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
os.environ["ITERATIVE_DO_NOT_TRACK"] = "1"

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def timed(repeat: int, fn):
    """(fastest wall-clock seconds over ``repeat`` calls, every time, the last call's result)."""
    times, value = [], None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return min(times), times, value


def records(frame: pd.DataFrame) -> list[dict]:
    """A NannyML result frame (two-level columns) as JSON-able records keyed "level0.level1"."""
    flat = frame.copy()
    flat.columns = [".".join(str(part) for part in c) if isinstance(c, tuple) else str(c) for c in flat.columns]
    out = []
    for row in flat.to_dict("records"):
        out.append(
            {
                k: (v.item() if isinstance(v, np.generic) else str(v) if isinstance(v, pd.Timestamp) else v)
                for k, v in row.items()
            }
        )
    return out


def evidently_task(ref: pd.DataFrame, prod: pd.DataFrame, job: dict) -> dict:
    import evidently
    from evidently import Report
    from evidently.presets import DataDriftPreset

    columns = job["features"]
    reference, current = ref[columns], prod[columns]

    def run():
        report = Report([DataDriftPreset()])  # built outside the clock would be fairer still; it is trivial
        return report.run(current, reference)

    best, times, snapshot = timed(job["repeat"], run)
    out = {
        "version": evidently.__version__,
        "seconds": best,
        "all_seconds": times,
        "metrics": json.loads(snapshot.json())["metrics"],
    }
    if job.get("verdicts"):
        # the per-column verdicts are not in the metrics: one more (untimed) run with Evidently's own tests
        tested = Report([DataDriftPreset()], include_tests=True).run(current, reference)
        out["tests"] = [
            {k: t.get(k) for k in ("id", "name", "status", "metric_config")} for t in json.loads(tested.json())["tests"]
        ]
    return out


def _chunker(prod: pd.DataFrame):
    from nannyml.chunk import SizeBasedChunker

    # chunks of the production window's size: production is one chunk; the reference (longer) is cut into several,
    # its remainder appended to the last, so NannyML has reference chunks to set its thresholds from
    return SizeBasedChunker(chunk_size=len(prod), incomplete="append", timestamp_column_name="datetime")


def cbpe_task(ref: pd.DataFrame, prod: pd.DataFrame, job: dict) -> dict:
    import nannyml

    def run():
        np.random.seed(job["seed"])  # CBPE's AP sampling error bootstraps with the global numpy generator
        estimator = nannyml.CBPE(
            problem_type="classification_binary",
            y_pred_proba="p_any",
            y_pred="y_pred",
            y_true="failure_within_horizon",
            metrics=["roc_auc", "average_precision"],
            chunker=_chunker(prod),
            timestamp_column_name="datetime",
        )
        estimator.fit(ref)
        return estimator.estimate(prod)

    best, times, result = timed(job["repeat"], run)
    return {"version": nannyml.__version__, "seconds": best, "all_seconds": times, "chunks": records(result.to_df())}


def reconstruction_task(ref: pd.DataFrame, prod: pd.DataFrame, job: dict) -> dict:
    import nannyml

    def run():
        calculator = nannyml.DataReconstructionDriftCalculator(
            column_names=job["telemetry"], chunker=_chunker(prod), timestamp_column_name="datetime"
        )
        calculator.fit(ref)
        return calculator.calculate(prod)

    best, times, result = timed(job["repeat"], run)
    return {"version": nannyml.__version__, "seconds": best, "all_seconds": times, "chunks": records(result.to_df())}


TASKS = {"evidently": evidently_task, "cbpe": cbpe_task, "reconstruction": reconstruction_task}


def main(job_path: str) -> int:
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    ref, prod = pd.read_parquet(job["reference"]), pd.read_parquet(job["production"])
    out = {
        "python": sys.version.split()[0],
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "rows": {"reference": len(ref), "production": len(prod)},
        "errors": {},
    }
    for module in ("evidently", "nannyml"):  # imported before the runs: their import-time warnings are not kept
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                __import__(module)
        except Exception:
            pass  # the task that needs it fails and reports why
    with threadpool_limits(1), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for task in job["tasks"]:
            try:
                out[task] = TASKS[task](ref, prod, job)
            except Exception:  # reported by the benchmark's notes
                out["errors"][task] = traceback.format_exc()
    out["warnings"] = sorted({f"{w.category.__name__}: {w.message}" for w in caught})  # raised by the runs
    with open(job["out"], "w", encoding="utf-8") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
