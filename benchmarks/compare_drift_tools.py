"""pm_assets' monitoring next to Evidently (DataDriftPreset) and NannyML (CBPE, PCA data reconstruction) on the same
windows: their values and their times, as markdown tables on stdout (progress goes to stderr).

    .venv/bin/python benchmarks/compare_drift_tools.py [--machines 100] [--tools-python PATH] [--scale 10]

Evidently and NannyML do not live in the project's venv (Evidently 0.7.23 does not import with pandas 3). They run in
a separate one, by default /work/venvs/drift-tools:

    python3.11 -m venv /work/venvs/drift-tools
    /work/venvs/drift-tools/bin/pip install "evidently==0.7.23" "nannyml==0.13.1" "pandas<3" pyarrow statsmodels

This script builds the data with pm_assets' own functions (as benchmarks/monitoring_scenario.py does), writes each
scenario's reference and production windows to parquet in a temporary folder and runs drift_tools_worker.py (beside
this file) in that venv, which times itself and writes JSON back (subprocess start and imports are not timed).
NML_DISABLE_USAGE_LOGGING=1 is set for every NannyML call. BLAS and OpenMP get one thread on both sides.

Data: simulate(SimulationConfig(machines=N, drift=...)) with the drift of monitoring_scenario.py from 2015-07-01
(+1.5 sd on volt and pressure, failure rate doubled), and without drift; a model trained before 2015-06-01; the
monitoring window ending 2015-07-15 00:00 (production: the 14 days before, reference: the 60 days before that).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from pm_assets.core.monitoring import (
    MULTIVARIATE_FEATURES,
    MonitoringParams,
    monitor,
    monitored_features,
    windows_for,
)
from pm_assets.core.scenarios import fleet, scored_rows, train
from pm_assets.core.scoring import MEDIUM_RISK
from pm_assets.core.simulate import DriftSpec, SimulationConfig

DRIFT_DATE = "2015-07-01"
TRAIN_CUTOFF = "2015-06-01"
MONITOR_END = "2015-07-15"
DRIFT = DriftSpec(start=DRIFT_DATE, sensor_shift_sd={"volt": 1.5, "pressure": 1.5}, failure_rate_factor=2.0)
DEFAULT_TOOLS_PYTHON = "/work/venvs/drift-tools/bin/python"
WORKER = Path(__file__).resolve().with_name("drift_tools_worker.py")
SEED = 0
#: The environment of every worker: one BLAS/OpenMP thread, and no usage telemetry from NannyML (or Evidently's UI).
TOOLS_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "NML_DISABLE_USAGE_LOGGING": "1",
    "ITERATIVE_DO_NOT_TRACK": "1",
    "PYTHONHASHSEED": "0",
}
#: Test status -> drift detected (Evidently's ValueDrift test fails when drift is detected).
DETECTED = {"FAIL": True, "WARNING": True, "SUCCESS": False}


# ---------------------------------------------------------------- pure helpers (tested without Evidently/NannyML)


def feature_names() -> list[str]:
    """The numeric feature columns monitored (every feature but the machine model)."""
    return monitored_features()


def telemetry_features(names: list[str]) -> list[str]:
    """The sensor features of the short (3 h and 24 h) windows among ``names``, e.g. volt_mean_3h, volt_sd_24h."""
    wanted = set(MULTIVARIATE_FEATURES)  # the features of pm_assets' own multivariate drift
    return [f for f in names if f in wanted]


def split_windows(rows: pd.DataFrame, end, params: MonitoringParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference and production rows of the monitoring date ``end`` (:func:`windows_for`: start <= t < end)."""
    win = windows_for(end, params)
    t = rows["datetime"]
    ref = rows[(t >= win["reference"][0]) & (t < win["reference"][1])]
    prod = rows[(t >= win["production"][0]) & (t < win["production"][1])]
    return ref.reset_index(drop=True), prod.reset_index(drop=True)


def window_rows(rows: pd.DataFrame, end, params: MonitoringParams) -> pd.DataFrame:
    """The rows of both windows (reference start <= t < end), in their order: all that monitor() reads of ``end``."""
    win = windows_for(end, params)
    t = rows["datetime"]
    return rows[(t >= win["reference"][0]) & (t < win["production"][1])].reset_index(drop=True)


def scaled(rows: pd.DataFrame, scale: int, id_column: str = "machineID") -> pd.DataFrame:
    """``rows`` repeated ``scale`` times as a fleet ``scale`` times larger: copy k has its machine IDs shifted by
    k x (the ID range), so no two copies share a machine; sorted by time (stable), as monitor() requires."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    if scale == 1 or rows.empty:
        return rows.reset_index(drop=True)
    ids = rows[id_column].to_numpy(dtype=np.int64)
    span = int(ids.max() - ids.min() + 1)
    copies = [rows.assign(**{id_column: ids + k * span}) for k in range(scale)]
    return pd.concat(copies, ignore_index=True).sort_values("datetime", kind="stable").reset_index(drop=True)


def tool_frame(rows: pd.DataFrame, names: list[str], threshold: float = MEDIUM_RISK) -> pd.DataFrame:
    """What the worker gets: keys, features, p_any, a 0/1 prediction (p_any >= threshold) and the label as float
    (NaN where immature)."""
    out = rows[["machineID", "datetime", *names, "p_any"]].copy()
    out["y_pred"] = (out["p_any"].to_numpy() >= threshold).astype(np.int8)
    labels = rows["failure_within_horizon"].to_numpy(dtype=np.float64, na_value=np.nan)
    mature = rows["label_mature"].fillna(False).to_numpy(dtype=bool)
    out["failure_within_horizon"] = np.where(mature, labels, np.nan)
    return out


def evidently_columns(metrics: list[dict], tests: list[dict] | None = None) -> tuple[pd.DataFrame, dict]:
    """Evidently 0.7 snapshot (``json.loads(snapshot.json())``) -> per column (index): stat test, drift score,
    threshold and drift detected (from the ValueDrift tests, None without them); and the dataset summary: count and
    share of drifted columns, the share threshold, and dataset drift (from its test, None without)."""
    per: dict[str, dict] = {}
    dataset: dict = {"drifted_count": None, "drift_share": None, "share_threshold": None, "dataset_drift": None}
    for metric in metrics:
        config = metric.get("config") or {}
        kind = str(config.get("type", ""))
        if kind.endswith(":ValueDrift"):
            per[config["column"]] = {
                "evidently_test": config.get("method"),
                "evidently_score": metric.get("value"),
                "evidently_threshold": config.get("threshold"),
                "evidently_drifted": None,
            }
        elif kind.endswith(":DriftedColumnsCount"):
            value = metric.get("value") or {}
            dataset.update(
                drifted_count=value.get("count"),
                drift_share=value.get("share"),
                share_threshold=config.get("drift_share"),
            )
    for test in tests or []:
        params = (test.get("metric_config") or {}).get("params") or {}
        kind, verdict = str(params.get("type", "")), DETECTED.get(test.get("status"))
        if kind.endswith(":ValueDrift") and params.get("column") in per:
            per[params["column"]]["evidently_drifted"] = verdict
        elif kind.endswith(":DriftedColumnsCount"):
            dataset["dataset_drift"] = verdict
    frame = pd.DataFrame.from_dict(
        per, orient="index", columns=["evidently_test", "evidently_score", "evidently_threshold", "evidently_drifted"]
    )
    return frame, dataset


def pm_statistic_columns(drift_features: pd.DataFrame) -> list[str]:
    """Every column of monitor()'s drift table but the feature name, in its order: numeric statistics, text such as
    a method name, and flags (read generically, whatever drift.py adds)."""
    return [c for c in drift_features.columns if c != "feature"]


def feature_comparison(drift_features: pd.DataFrame, evidently: pd.DataFrame) -> pd.DataFrame:
    """pm_assets' drift table (its order) joined with Evidently's per-column results on the feature name, features
    only Evidently has appended; ``agree``: both verdicts known and equal (None where either is unknown)."""
    right = evidently.rename_axis("feature").reset_index()
    right["feature"] = right["feature"].astype(object)
    left = drift_features.assign(feature=drift_features["feature"].astype(object))
    table = left.merge(right, on="feature", how="outer", sort=False)
    order = {f: i for i, f in enumerate(drift_features["feature"])}
    table["_order"] = table["feature"].map(lambda f: order.get(f, len(order)))
    table = table.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    pm = table["drifted"] if "drifted" in table else pd.Series(None, index=table.index, dtype=object)
    table["agree"] = [
        None if _missing(a) or _missing(b) else bool(a) == bool(b) for a, b in zip(pm, table["evidently_drifted"])
    ]
    return table


def drift_summary(table: pd.DataFrame) -> dict:
    """Counts of a :func:`feature_comparison` table: features, drifted by each, by both, by one only, agreement."""
    pm = [None if _missing(v) else bool(v) for v in (table["drifted"] if "drifted" in table else [None] * len(table))]
    ev = [None if _missing(v) else bool(v) for v in table["evidently_drifted"]]
    known = [(a, b) for a, b in zip(pm, ev) if a is not None and b is not None]
    return {
        "features": len(table),
        "pm_drifted": sum(v is True for v in pm),
        "evidently_drifted": sum(v is True for v in ev),
        "both": sum(a and b for a, b in known),
        "only_pm": sum(a and not b for a, b in known),
        "only_evidently": sum(b and not a for a, b in known),
        "agree": sum(a == b for a, b in known),
        "compared": len(known),
        "agreement": (sum(a == b for a, b in known) / len(known)) if known else float("nan"),
    }


def analysis_chunk(chunks: list[dict]) -> dict:
    """The one analysis (production) chunk of a NannyML result's records; ValueError if there is not exactly one."""
    found = [c for c in chunks if c.get("chunk.period") == "analysis"]
    if len(found) != 1:
        raise ValueError(f"expected one analysis chunk, got {len(found)}")
    return found[0]


def reference_chunks(chunks: list[dict], column: str) -> list[float]:
    """``column`` of the reference chunks of a NannyML result's records, in order."""
    return [c[column] for c in chunks if c.get("chunk.period") == "reference"]


def speed_ratio(slow: float | None, fast: float | None) -> float:
    """slow / fast (NaN when either is unknown or fast is not positive)."""
    if _missing(slow) or _missing(fast) or fast <= 0:
        return float("nan")
    return float(slow) / float(fast)


def fmt(value, digits: int = 4) -> str:
    """A table cell: '–' for missing, yes/no for flags, integers (and integral floats) as integers, other floats to
    ``digits`` significant digits, text with its pipes escaped."""
    if _missing(value):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.{digits}g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub markdown table, every cell through :func:`fmt`."""

    def line(cells):
        return "| " + " | ".join(fmt(c) for c in cells) + " |"

    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row of {len(row)} cells for {len(headers)} headers: {row}")
    return "\n".join([line(headers), "|" + "|".join("---" for _ in headers) + "|", *(line(r) for r in rows)])


def generic_table(value) -> str:
    """Any result (a DataFrame, a dict, a scalar) as a markdown table or a line."""
    if isinstance(value, pd.DataFrame):
        frame = value.reset_index() if not isinstance(value.index, pd.RangeIndex) else value
        return markdown_table([str(c) for c in frame.columns], frame.to_numpy(dtype=object).tolist())
    if isinstance(value, pd.Series):
        return markdown_table(["key", "value"], [[str(k), v] for k, v in value.items()])
    if isinstance(value, dict):
        return markdown_table(["key", "value"], [[str(k), _cell(v)] for k, v in value.items()])
    return fmt(value)


def _cell(value):
    """A scalar as it is; a list as its length and ends ("16: a, b … z"); anything else as its text."""
    if value is None or np.isscalar(value):
        return value
    if isinstance(value, (list, tuple, np.ndarray, pd.Index)):
        items = [str(v) for v in value]
        shown = ", ".join(items) if len(items) <= 4 else f"{items[0]}, {items[1]} … {items[-1]}"
        return f"{len(items)}: {shown}"
    return str(value)


def tools_problem(python: str) -> str | None:
    """Why the tools venv cannot be used (None when its python exists; imports are checked by :func:`probe_tools`)."""
    if not Path(python).is_file():
        return (
            f"the tools venv's python {python} does not exist. Create it with:\n"
            f"  python3.11 -m venv {Path(python).parent.parent}\n"
            f"  {Path(python).parent / 'pip'} install 'evidently==0.7.23' 'nannyml==0.13.1' 'pandas<3' pyarrow "
            f"statsmodels"
        )
    return None


def _missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------- running


def tools_env() -> dict:
    return {**os.environ, **TOOLS_ENV}


def probe_tools(python: str) -> tuple[str | None, str]:
    """(a problem or None, the versions the tools venv reports)."""
    code = (
        "import evidently, nannyml, pandas, numpy; "
        "print('evidently', evidently.__version__, '/ nannyml', nannyml.__version__, '/ pandas', "
        "pandas.__version__, '/ numpy', numpy.__version__)"
    )
    probe = subprocess.run([python, "-c", code], env=tools_env(), capture_output=True, text=True, timeout=600)
    if probe.returncode:
        tail = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        return f"the tools venv ({python}) cannot import evidently and nannyml: {tail}", ""
    return None, probe.stdout.strip()


def build_rows(machines: int, drift: DriftSpec | None) -> pd.DataFrame:
    """monitoring_rows of a simulated year, scored by a model trained on it before TRAIN_CUTOFF (core.scenarios)."""
    features, labels = fleet(SimulationConfig(machines=machines, drift=drift))
    return scored_rows(features, labels, train(features, labels, TRAIN_CUTOFF))


def best_of(repeat: int, fn):
    """(fastest wall-clock seconds over ``repeat`` calls, the last call's result)."""
    times, value = [], None
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return min(times), value


def run_worker(
    python: str,
    folder: Path,
    name: str,
    ref: pd.DataFrame,
    prod: pd.DataFrame,
    names: list[str],
    tasks: list[str],
    repeat: int,
    verdicts: bool,
) -> dict:
    """Write the windows to parquet, run the worker on them in the tools venv, return its JSON."""
    paths = {part: folder / f"{name}_{part}.parquet" for part in ("reference", "production")}
    ref.to_parquet(paths["reference"], index=False)
    prod.to_parquet(paths["production"], index=False)
    job = {
        "reference": str(paths["reference"]),
        "production": str(paths["production"]),
        "features": names,
        "telemetry": telemetry_features(names),
        "tasks": tasks,
        "repeat": repeat,
        "verdicts": verdicts,
        "seed": SEED,
        "out": str(folder / f"{name}_out.json"),
    }
    job_path = folder / f"{name}_job.json"
    job_path.write_text(json.dumps(job), encoding="utf-8")
    done = subprocess.run([python, str(WORKER), str(job_path)], env=tools_env(), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"worker failed ({done.returncode}) for {name}:\n{done.stderr[-3000:]}")
    return json.loads(Path(job["out"]).read_text(encoding="utf-8"))


def scenario_run(
    label: str, rows: pd.DataFrame, end, names: list[str], params: MonitoringParams, args, folder: Path
) -> dict:
    window = window_rows(rows, end, params)
    ref, prod = split_windows(window, end, params)
    log(f"[{label}] monitor() x{args.repeat} on {len(window):,} rows")
    seconds, result = best_of(args.repeat, lambda: monitor(window, end, names, params))
    log(f"[{label}] Evidently + NannyML in the tools venv")
    tools = run_worker(
        args.tools_python,
        folder,
        label.replace(" ", "_"),
        tool_frame(ref, names),
        tool_frame(prod, names),
        names,
        ["evidently", "cbpe", "reconstruction"],
        args.repeat,
        True,
    )
    return {
        "label": label,
        "window": window,
        "result": result,
        "pm_seconds": seconds,
        "tools": tools,
        "rows": (len(ref), len(prod)),
    }


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- printing


def feature_section(run: dict, notes: list[str]) -> str:
    result, tools = run["result"], run["tools"]
    drift_features = result.drift_features
    out = []
    if "evidently" not in tools:
        notes.append(f"{run['label']}: Evidently did not run: {_first_line(tools['errors'].get('evidently'))}")
        evidently, dataset = (
            pd.DataFrame(columns=["evidently_test", "evidently_score", "evidently_threshold", "evidently_drifted"]),
            {},
        )
    else:
        evidently, dataset = evidently_columns(tools["evidently"]["metrics"], tools["evidently"].get("tests"))
    table = feature_comparison(drift_features, evidently)
    stats = pm_statistic_columns(drift_features)
    headers = [
        "feature",
        *(f"pm {c}" for c in stats),
        "Evidently test",
        "Evidently score",
        "Evidently threshold",
        "Evidently drifted",
        "agree",
    ]
    body = [
        [
            r["feature"],
            *(r[c] for c in stats),
            r["evidently_test"],
            r["evidently_score"],
            r["evidently_threshold"],
            r["evidently_drifted"],
            r["agree"],
        ]
        for r in table.to_dict("records")
    ]
    out.append(
        f"#### 1. Per-feature drift ({len(table)} features; pm_assets sorted by PSI, drifted when PSI >= "
        f"{MonitoringParams().feature_psi_alert})\n"
    )
    out.append(markdown_table(headers, body))
    s = drift_summary(table)
    tests = pd.Series(dtype=object) if evidently.empty else evidently["evidently_test"].value_counts()
    out.append(
        "\n"
        + markdown_table(
            ["summary", "value"],
            [
                ["features compared", s["compared"]],
                ["drifted by pm_assets", s["pm_drifted"]],
                ["drifted by Evidently (per-column tests)", s["evidently_drifted"]],
                ["drifted by both", s["both"]],
                ["only pm_assets", s["only_pm"]],
                ["only Evidently", s["only_evidently"]],
                ["agreement", f"{s['agree']} of {s['compared']} ({s['agreement']:.0%})" if s["compared"] else "–"],
                ["Evidently drifted columns (DriftedColumnsCount)", dataset.get("drifted_count")],
                ["Evidently dataset drift share", dataset.get("drift_share")],
                [
                    "Evidently dataset drift (share >= threshold)",
                    f"{fmt(dataset.get('dataset_drift'))} (threshold {fmt(dataset.get('share_threshold'))})",
                ],
                ["Evidently stat tests used", "; ".join(f"{k}: {v}" for k, v in tests.items()) or "–"],
            ],
        )
    )
    count = dataset.get("drifted_count")
    if count is not None and int(count) != s["evidently_drifted"]:
        notes.append(
            f"{run['label']}: Evidently's per-column verdicts ({s['evidently_drifted']}) differ from its "
            f"DriftedColumnsCount ({int(count)})"
        )
    return "\n".join(out)


def performance_section(run: dict, notes: list[str]) -> str:
    perf = run["result"].performance.set_index("period")
    prod, ref = perf.loc["production"], perf.loc["reference"]
    cbpe = run["tools"].get("cbpe")
    chunk = None
    if cbpe is None:
        notes.append(f"{run['label']}: CBPE did not run: {_first_line(run['tools']['errors'].get('cbpe'))}")
    else:
        chunk = analysis_chunk(cbpe["chunks"])
    metrics = [("roc_auc", "roc_auc"), ("average_precision", "average_precision")]

    def nml(field: str):
        return [chunk.get(f"{m}.{field}") if chunk else None for _, m in metrics]

    def band(lower: str, upper: str):
        return [
            f"[{fmt(chunk.get(f'{m}.{lower}'))}, {fmt(chunk.get(f'{m}.{upper}'))}]" if chunk else "–"
            for _, m in metrics
        ]

    realized = [prod[p] for p, _ in metrics]
    pm_est = [prod[f"estimated_{p}"] for p, _ in metrics]
    nml_est = nml("value")
    rows = [
        [f"realized, production (pm_assets, {int(prod['mature_rows']):,} mature rows)", *realized],
        ["realized, production (NannyML)", *nml("realized")],
        ["realized, reference (pm_assets)", *(ref[p] for p, _ in metrics)],
        ["pm_assets estimate (mature production rows)", *pm_est],
        [
            f"pm_assets estimate (immature production rows, n={int(prod['immature_rows'])})",
            *(prod[f"immature_estimated_{p}"] for p, _ in metrics),
        ],
        ["NannyML CBPE estimate", *nml_est],
        ["CBPE sampling error", *nml("sampling_error")],
        ["CBPE confidence band [lower, upper]", *band("lower_confidence_boundary", "upper_confidence_boundary")],
        ["CBPE thresholds from reference chunks [lower, upper]", *band("lower_threshold", "upper_threshold")],
        ["CBPE alert", *nml("alert")],
        ["pm_assets estimate - realized", *(_diff(a, b) for a, b in zip(pm_est, realized))],
        ["CBPE estimate - realized", *(_diff(a, b) for a, b in zip(nml_est, realized))],
    ]
    return "#### 2. Label-free performance, production window\n\n" + markdown_table(
        ["", "ROC AUC", "average precision"], rows
    )


def multivariate_section(run: dict, notes: list[str]) -> str:
    out = ["#### 3. Multivariate drift: PCA reconstruction of the 16 telemetry features (3 h, 24 h)\n"]
    rec = run["tools"].get("reconstruction")
    if rec is None:
        notes.append(
            f"{run['label']}: reconstruction did not run: {_first_line(run['tools']['errors'].get('reconstruction'))}"
        )
        out.append("NannyML: did not run")
    else:
        chunk = analysis_chunk(rec["chunks"])
        reference = reference_chunks(rec["chunks"], "reconstruction_error.value")
        c = "reconstruction_error"
        out.append(
            markdown_table(
                ["NannyML DataReconstructionDriftCalculator", "value"],
                [
                    ["reconstruction error, production (one chunk)", chunk[f"{c}.value"]],
                    ["sampling error", chunk[f"{c}.sampling_error"]],
                    ["lower threshold", chunk[f"{c}.lower_threshold"]],
                    ["upper threshold", chunk[f"{c}.upper_threshold"]],
                    ["alert", chunk[f"{c}.alert"]],
                    [f"reference chunks' errors (n={len(reference)})", ", ".join(fmt(v) for v in reference)],
                ],
            )
        )
    multivariate = getattr(run["result"], "multivariate", None)
    out.append("\npm_assets (MonitoringResult.multivariate):\n")
    out.append("pm_assets: not available" if multivariate is None else generic_table(multivariate))
    return "\n".join(out)


def times_section(runs: list[dict], big: dict | None, scale: int) -> str:
    steps = [
        ("pm_assets monitor() (no importance)", lambda r: r["pm_seconds"]),
        ("Evidently Report([DataDriftPreset()]).run", lambda r: _tool_seconds(r, "evidently")),
        ("NannyML CBPE fit + estimate", lambda r: _tool_seconds(r, "cbpe")),
        ("NannyML reconstruction fit + calculate", lambda r: _tool_seconds(r, "reconstruction")),
    ]
    columns = [*runs, *([big] if big else [])]
    headers = [
        "step (best of the repeats, seconds)",
        *(f"{r['label']} ({r['rows'][0]:,} + {r['rows'][1]:,} rows)" for r in columns),
    ]
    body = [[name, *(get(r) for r in columns)] for name, get in steps]
    ratios = [
        [f"Evidently / pm_assets, {r['label']}", speed_ratio(_tool_seconds(r, "evidently"), r["pm_seconds"])]
        for r in columns
    ]
    if big:
        drift = next(r for r in runs if r["label"] == "drift")
        for name, get in steps:
            ratios.append([f"{name}: {scale}x / 1x (drift)", speed_ratio(get(big), get(drift))])
    return (
        "#### 4. Times (1 BLAS thread)\n\n"
        + markdown_table(headers, body)
        + "\n\n"
        + markdown_table(["ratio", "value"], ratios)
    )


def _tool_seconds(run: dict, task: str):
    return (run["tools"].get(task) or {}).get("seconds")


def _diff(a, b):
    return float("nan") if _missing(a) or _missing(b) else float(a) - float(b)


def _first_line(text) -> str:
    lines = [line for line in str(text or "unknown error").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--machines", type=int, default=100)
    parser.add_argument("--tools-python", default=DEFAULT_TOOLS_PYTHON)
    parser.add_argument("--scale", type=int, default=10, help="the fleet multiple of the scaled timing (1: none)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each step (best is reported)")
    args = parser.parse_args(argv)
    problem = tools_problem(args.tools_python)
    if problem is None:
        problem, versions = probe_tools(args.tools_python)
    if problem:
        print(f"compare_drift_tools: {problem}", file=sys.stderr)
        return 2

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    names, params, end = feature_names(), MonitoringParams(), pd.Timestamp(MONITOR_END)
    notes: list[str] = []
    runs, big = [], None
    with threadpool_limits(1), tempfile.TemporaryDirectory(prefix="compare_drift_tools_") as tmp:
        folder = Path(tmp)
        for label, drift in (("no drift", None), ("drift", DRIFT)):
            log(f"[{label}] simulating {args.machines} machines, features, model, scores")
            rows = build_rows(args.machines, drift)
            runs.append(scenario_run(label, rows, end, names, params, args, folder))
        if args.scale > 1:
            drift_run = runs[-1]
            window = scaled(drift_run["window"], args.scale)
            ref, prod = split_windows(window, end, params)
            label = f"drift, {args.scale}x fleet"
            log(f"[{label}] monitor() x{args.repeat} on {len(window):,} rows")
            seconds, _ = best_of(args.repeat, lambda: monitor(window, end, names, params))
            log(f"[{label}] Evidently + NannyML in the tools venv")
            tools = run_worker(
                args.tools_python,
                folder,
                f"scaled{args.scale}",
                tool_frame(ref, names),
                tool_frame(prod, names),
                names,
                ["evidently", "cbpe", "reconstruction"],
                args.repeat,
                False,
            )
            big = {"label": label, "pm_seconds": seconds, "tools": tools, "rows": (len(ref), len(prod))}
    elapsed, load_end = time.perf_counter() - started, os.getloadavg()[0]

    win = windows_for(end, params)
    print(f"## pm_assets vs Evidently and NannyML: {args.machines} simulated machines, monitoring date {end}\n")
    print(
        f"Reference window {win['reference'][0]} to {win['reference'][1]} (exclusive), production "
        f"{win['production'][0]} to {win['production'][1]} (exclusive); {len(names)} numeric features. Drift: "
        f"from {DRIFT_DATE}, +1.5 sd on volt and pressure, failure rate x2; model trained before {TRAIN_CUTOFF}. "
        f"Tools venv: {versions}; project: pandas {pd.__version__}, numpy {np.__version__}. One BLAS/OpenMP "
        f"thread; times are the best of {args.repeat} runs.\n"
    )
    for run in runs:
        print(
            f"### {run['label']} ({run['rows'][0]:,} reference + {run['rows'][1]:,} production rows; pm_assets "
            f"light {run['result'].light}, {run['result'].alert_count} alerts)\n"
        )
        for section in (feature_section, performance_section, multivariate_section):
            print(section(run, notes) + "\n")
    print(times_section(runs, big, args.scale) + "\n")

    notes += [
        "Evidently's per-column 'drifted' comes from one extra, untimed run of the same report with "
        "include_tests=True (its ValueDrift tests); the snapshot's metrics hold only the score, method and threshold.",
        "monitor() is given the rows of the two windows only (74 days); rows outside them do not change its result.",
        "CBPE and the reconstruction use chunks of the production window's size: production is one chunk, the "
        "reference is cut into chunks of that size (remainder appended to the last), from which NannyML sets its "
        "thresholds. CBPE gets y_pred = p_any >= 0.2 (the medium-risk threshold); ROC AUC and AP do not use it. "
        "CBPE's thresholds are mean +/- 3 sd of the *realized* metric over the reference chunks (clipped to [0, 1]), "
        "so a model near-perfect on the reference makes any estimate below that band alert.",
        "Labels are observed until 2016-01-01, so every row of these windows is mature: pm_assets' immature_* "
        "estimates are undefined (no rows) and its estimate on mature rows is the one compared.",
    ]
    notes.append(
        f"1-minute load average {load_start:.1f} at the start and {load_end:.1f} at the end, on "
        f"{os.cpu_count()} CPUs: the times are wall times on this machine as it was, not an isolated one."
    )
    if args.scale > 1:
        notes.append(
            f"The {args.scale}x fleet (the drift scenario's windows repeated with shifted machine IDs) is "
            "timed only: its values are those of 1x, repeated."
        )
    else:
        notes.append("No scaled run (--scale 1).")
    if not any(getattr(r["result"], "multivariate", None) is not None for r in runs):
        notes.append(
            "MonitoringResult has no 'multivariate' attribute in this checkout: no pm_assets multivariate "
            "drift to compare."
        )
    seen: dict[str, list[str]] = {}
    for run in [*runs, *([big] if big else [])]:
        for task, error in run["tools"].get("errors", {}).items():
            notes.append(f"{run['label']}: {task} failed: {_first_line(error)}")
        for warning in run["tools"].get("warnings", []):
            seen.setdefault(warning[:240], []).append(run["label"])
    notes += [f"Warning in the worker's runs ({', '.join(labels)}): {w}" for w, labels in list(seen.items())[:8]]
    print("### Notes\n")
    print("\n".join(f"- {n}" for n in dict.fromkeys(notes)))
    print(f"\nTotal wall time of the benchmark: {elapsed:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
