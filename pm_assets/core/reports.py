"""The monitoring reports of a day: its row of the monitoring table, and its folder of CSVs, JSON summary and HTML
page (``<monitoring root>/<date>/``), with the trend of the days before it read back from their summaries.

Plain functions over a :class:`~pm_assets.core.monitoring.MonitoringResult` and folders (local paths or object
store paths, see :func:`pm_assets.core.locations.as_path`): the monitoring asset and the benchmarks write the same
files. No Dagster import.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd

from pm_assets.core.atomic import atomic_dir, write_bytes_atomic
from pm_assets.core.history import trend_svg
from pm_assets.core.html_report import render
from pm_assets.core.json_safe import to_json_safe
from pm_assets.core.monitoring import LIGHTS, MonitoringParams, MonitoringResult, WindowDrift, retrain_recommended

#: The day's tables written as CSV: ``<name>.csv`` from the result's attribute of that name.
REPORT_TABLES = ("drift_features", "drift_scores", "performance", "drift_weighted", "drift_segments")
SUMMARY_FILE = "monitoring_summary.json"
REPORT_PAGE = "report.html"
#: Features whose histograms a report draws (the most drifted), besides the score's.
HISTOGRAM_FEATURES = 4
#: Days of monitoring history the report's trend panel shows.
TREND_DAYS = 90
#: Drifted features named in a day's ``top_drifted``.
TOP_DRIFTED = 3


def _share(part: int, whole: int) -> float:
    return part / whole if whole else float("nan")


def day_figures(key: str, result: MonitoringResult, champion: str | None, report) -> dict:
    """The day's row of the monitoring table (``key`` is its date, ``report`` the path of its page)."""
    perf = result.performance.set_index("period")
    drifted = int(result.drift_features["drifted"].sum())
    return {
        "date": pd.Timestamp(key),
        "traffic_light": result.light,
        "light_code": LIGHTS.index(result.light),
        "alert_count": result.alert_count,
        "retrain_recommended": retrain_recommended(result.alert_count),
        "score_psi": result.drift_scores["psi"].iloc[0],
        "n_drifted_features": drifted,
        "auc_reference": perf.loc["reference", "roc_auc"],
        "auc_production": perf.loc["production", "roc_auc"],
        "top_drifted": ", ".join(
            f"{f} {v:.3g}"
            for f, v in result.drift_features.dropna(subset=["psi"])
            .head(TOP_DRIFTED)[["feature", "psi"]]
            .itertuples(index=False, name=None)
        ),
        "ap_reference": perf.loc["reference", "average_precision"],
        "ap_production": perf.loc["production", "average_precision"],
        "failure_rate_reference": perf.loc["reference", "failure_rate"],
        "failure_rate_production": perf.loc["production", "failure_rate"],
        "estimated_ap_immature": perf.loc["production", "immature_estimated_average_precision"],
        "drifted_share": _share(drifted, len(result.drift_features)),
        "reconstruction_error": (result.multivariate or {}).get("production_error"),
        "correlation_change": (result.multivariate or {}).get("correlation_change"),
        "alerts": ", ".join(a.name for a in result.alerts if a.fired),
        "model_version": champion or "none",
        "report": str(report),
    }


def past_figures(root, first: str, days: int = TREND_DAYS - 1) -> list[dict]:
    """The figures (:func:`day_figures`) of the ``days`` days before ``first``, from their summaries under the
    monitoring folder ``root`` (days never monitored are skipped): the start of the reports' trend panel in a run
    that begins at ``first``."""
    rows = []
    monitored = {p.name for p in root.iterdir()} if root.exists() else set()  # one listing, not a check per day
    for day in pd.date_range(end=pd.Timestamp(first) - pd.Timedelta(days=1), periods=days).strftime("%Y-%m-%d"):
        path = root / day / SUMMARY_FILE
        if day in monitored and path.exists():
            figures = json.loads(path.read_text()).get("figures")
            if figures:
                rows.append(figures | {"date": pd.Timestamp(figures["date"])})
    return rows


def drawn_features(drift: WindowDrift, days) -> list[str]:
    """The features whose histograms the reports of ``days`` (positions in the drift's dates) draw: each day's
    :data:`HISTOGRAM_FEATURES` most drifted, the only feature columns the reports need beyond the drift."""
    return sorted({f for day in days for f in drift.most_drifted(day, HISTOGRAM_FEATURES)})


def report_summary(date: str, result: MonitoringResult, params: MonitoringParams, figures: dict | None = None) -> dict:
    """What ``monitoring_summary.json`` holds: the result's summary, the date and the feature rule, and the day's
    ``figures`` (its row of the monitoring table) when given; JSON-safe (NaN and inf as null)."""
    summary = result.summary() | {
        "date": date,
        "feature_psi_alert": params.drift_threshold,
        "feature_drift_measure": params.feature_drift_measure,
    }
    if figures is not None:
        summary["figures"] = figures | {"date": date}
    return to_json_safe(summary)


def _histogram_features(result: MonitoringResult) -> list[str]:
    """The features whose histograms the day's page draws: its :data:`HISTOGRAM_FEATURES` most drifted by PSI."""
    return result.drift_features.dropna(subset=["psi"]).head(HISTOGRAM_FEATURES)["feature"].tolist()


def report_page(
    date: str, result: MonitoringResult, params: MonitoringParams, summary: dict, trend: pd.DataFrame | None
) -> str:
    """The day's HTML page: the summary, the tables, histograms of the most drifted features and of the score,
    and the trend panel of ``trend`` (rows of :func:`pm_assets.core.history.history_table`) when it has any."""
    top = _histogram_features(result)
    ref, prod = result.reference_rows, result.production_rows
    samples = {f: (ref[f].to_numpy(), prod[f].to_numpy()) for f in top}
    samples["p_any (score)"] = (ref["p_any"].to_numpy(), prod["p_any"].to_numpy())
    chart = (
        trend_svg(trend, params.score_psi_alert, width=1180, title=f"The last {TREND_DAYS} days")
        if trend is not None and len(trend)
        else None
    )
    return render(
        date,
        summary,
        result.drift_features,
        result.drift_scores,
        result.performance,
        result.drift_segments,
        samples,
        trend_svg=chart,
        score_psi_alert=params.score_psi_alert,
    )


def write_reports(
    folder,
    date: str,
    result: MonitoringResult,
    params: MonitoringParams,
    figures: dict | None = None,
    trend: pd.DataFrame | None = None,
) -> Path:
    """The day's CSVs (:data:`REPORT_TABLES`), JSON summary (:func:`report_summary`, with the day's ``figures``)
    and HTML report (:func:`report_page`, with the trend of ``trend``, the figures of the last 90 days), written as
    one folder that replaces the day's previous one whole. Returns the page's path."""
    summary = report_summary(date, result, params, figures)
    with atomic_dir(folder) as out:  # the folder appears whole or not at all
        for name in REPORT_TABLES:
            write_bytes_atomic(out / f"{name}.csv", getattr(result, name).to_csv(index=False).encode())
        write_bytes_atomic(out / SUMMARY_FILE, json.dumps(summary, indent=2, allow_nan=False).encode())
        write_bytes_atomic(out / REPORT_PAGE, report_page(date, result, params, summary, trend).encode())
    return folder / REPORT_PAGE


def drawn_rows_columns(result: MonitoringResult) -> list[str]:
    """The window columns the result's report draws (:func:`report_page`): the most drifted features and the score."""
    return [*_histogram_features(result), "p_any"]


def drawn_rows(result: MonitoringResult) -> MonitoringResult:
    """``result`` with only the window columns its report draws: what a report needs, so that handing it to another
    process moves a few columns, not the rows."""
    columns = drawn_rows_columns(result)
    ref, prod = result.reference_rows[columns], result.production_rows[columns]
    return replace(result, reference_rows=ref, production_rows=prod)


class ReportWriter:
    """Writes days' reports (:func:`write_reports`) in the background while the next days are monitored.

    ``process``: in ``processes`` separate processes (started once; days go to them in turn), so that the pages'
    Python work (HTML, histograms, CSVs) runs on other CPUs instead of taking the interpreter lock from the
    monitoring; else in a thread (what a run of a few days uses: a process costs about a second to start). Two by
    default: one report process took ~65 ms a day of the 100-machine year, more than the monitoring of a day, so the
    monitoring waited for it (see the README, "Fleet size"). At most ``ahead`` days wait to be written (``submit``
    blocks until the oldest is done), so memory holds a few days' results, not a run's. ``wait()`` returns when
    every report is written and raises the first failure (a failed write fails the step).
    """

    def __init__(self, process: bool = False, ahead: int = 4, processes: int = 2):
        self.ahead = ahead
        self._shared: tuple[int, set] | None = None  # the rows shared last: their count and columns
        self.pending: deque[Future] = deque()
        self._turn = 0
        # Forked processes: they start at once with the code already imported, and run only this module's functions
        # (pandas, numpy, files: no OpenMP, no database, no logging). A spawned one would import the caller's main
        # script again, which breaks a script that runs a job at its top level. Fork is Linux's; elsewhere a thread.
        process = process and sys.platform == "linux"
        fork = multiprocessing.get_context("fork")
        self.pools: list[Executor] = (
            [ProcessPoolExecutor(max_workers=1, mp_context=fork) for _ in range(max(1, processes))]
            if process
            else [ThreadPoolExecutor(max_workers=1)]
        )
        if process:  # starts the processes now, while the drift is computed
            self.pending.extend(pool.submit(_warm_up) for pool in self.pools)

    def __enter__(self) -> ReportWriter:
        return self

    def __exit__(self, *exc) -> None:
        try:
            if exc[0] is None:
                self.wait()
        finally:
            for pool in self.pools:
                pool.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def _next_pool(self) -> Executor:
        self._turn = (self._turn + 1) % len(self.pools)
        return self.pools[self._turn]

    def share(self, rows: pd.DataFrame, columns: list[str]) -> None:
        """The rows the next days' results are monitored from (a chunk's) and the ``columns`` of them their reports
        draw: report processes receive those once, and each day's windows are then taken from them by position
        (``MonitoringResult.spans``) instead of coming with the day (a 60-day window of 1,000 machines is ~480,000
        rows: sent with every day, ~24 MB a day went through the pipe). A thread needs nothing: it has the day."""
        self._shared = None
        if isinstance(self.pools[0], ProcessPoolExecutor):
            rows = rows[columns]
            for pool in self.pools:  # each process keeps them: days go to either
                self._wait_for_room()
                self.pending.append(pool.submit(_keep_rows, rows))
            self._shared = len(rows), set(rows.columns)

    def submit(self, folder, date: str, result: MonitoringResult, params: MonitoringParams, figures=None, trend=None):
        self._wait_for_room()
        shared, spans = self._shared, result.spans
        if (
            shared is not None
            and spans is not None
            and max(span.stop for span in spans.values()) <= shared[0]
            and set(drawn_rows_columns(result)) <= shared[1]
        ):
            light = replace(result, reference_rows=None, production_rows=None)
            task = self._next_pool().submit(_write_from_kept, folder, date, light, params, figures, trend)
        else:
            task = self._next_pool().submit(write_reports, folder, date, drawn_rows(result), params, figures, trend)
        self.pending.append(task)

    def _wait_for_room(self) -> None:
        while len(self.pending) >= self.ahead:
            self.pending.popleft().result()

    def wait(self) -> None:
        while self.pending:
            self.pending.popleft().result()


#: In a report process: the rows :meth:`ReportWriter.share` sent last.
_KEPT: dict = {}


def _keep_rows(rows: pd.DataFrame) -> None:
    _KEPT["rows"] = rows


def _write_from_kept(folder, date: str, result: MonitoringResult, params: MonitoringParams, figures, trend) -> Path:
    """:func:`write_reports` of ``result`` with its windows' rows taken from the rows kept, by its spans."""
    rows = _KEPT["rows"]
    windows = {f"{name}_rows": rows.iloc[span] for name, span in result.spans.items()}
    return write_reports(folder, date, replace(result, **windows), params, figures, trend)


def _warm_up() -> None:
    """Nothing: the worker process imports this module (and the report code) on its first task."""
