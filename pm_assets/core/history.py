"""Monitoring over time: the table of every day's monitoring figures, its trend chart (SVG), and the index page.

The chart is one self-contained SVG (no script, no library): five panels sharing the date axis, the traffic light,
score PSI against its alert threshold, average precision (reference, production, and the label-free estimate on
immature rows), the number of drifted features with the alert count, and the largest correlation change between
two telemetry features (the multivariate drift). It is shown in the Dagster UI (markdown
metadata, as an inline image) and on ``data/outputs/monitoring/index.html``, which also lists every day with its
light and a link to its report. Pure Python, no Dagster import.
"""

from __future__ import annotations

import base64
import html

import numpy as np
import pandas as pd

from pm_assets.core.html_report import LIGHT_COLOURS, PROD_COLOUR, REF_COLOUR, fmt

SERIES_COLOURS = {
    "reference": REF_COLOUR,
    "production": PROD_COLOUR,
    "estimate": "#9467bd",
    "alerts": LIGHT_COLOURS["red"],
}
#: The columns of the history, in order (one row per monitored day).
HISTORY_COLUMNS = [
    "date",
    "traffic_light",
    "light_code",
    "alert_count",
    "alerts",
    "retrain_recommended",
    "score_psi",
    "n_drifted_features",
    "top_drifted",
    "auc_reference",
    "auc_production",
    "ap_reference",
    "ap_production",
    "estimated_ap_immature",
    "failure_rate_reference",
    "failure_rate_production",
    "drifted_share",
    "reconstruction_error",
    "correlation_change",
    "model_version",
    "report",
]


#: The chart's panels under the light strip: (label, [(column, colour, legend)]); score PSI gets its alert line.
PANELS = [
    ("score PSI", [("score_psi", "production", "score PSI")]),
    (
        "average precision",
        [
            ("ap_reference", "reference", "reference"),
            ("ap_production", "production", "production"),
            ("estimated_ap_immature", "estimate", "estimated (immature)"),
        ],
    ),
    (
        "drifted features",
        [("n_drifted_features", "production", "drifted features"), ("alert_count", "alerts", "alerts fired")],
    ),
    ("multivariate", [("correlation_change", "production", "largest correlation change")]),
]


def history_table(days: pd.DataFrame) -> pd.DataFrame:
    """The monitoring rows of every day, one per date (the latest when a day was monitored twice), in date order."""
    missing = [c for c in HISTORY_COLUMNS if c not in days]
    frame = days.assign(**{c: np.nan for c in missing})[HISTORY_COLUMNS]
    return frame.drop_duplicates("date", keep="last").sort_values("date", ignore_index=True)


# --- the chart ---------------------------------------------------------------------------------------------------


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if not np.isfinite(lo) or not np.isfinite(hi) or hi <= lo:
        return [lo] if np.isfinite(lo) else [0.0]
    step = 10 ** np.floor(np.log10((hi - lo) / n))
    step *= min((m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= n), default=10)
    return list(np.arange(np.ceil(lo / step) * step, hi + step * 1e-9, step))


def _date_ticks(dates: pd.DatetimeIndex) -> list[pd.Timestamp]:
    span = (dates.max() - dates.min()).days if len(dates) else 0
    if span > 120:
        return list(pd.date_range(dates.min().normalize() + pd.offsets.MonthBegin(0), dates.max(), freq="MS"))
    step = max(1, span // 6)
    return list(pd.date_range(dates.min(), dates.max(), freq=f"{step}D"))


def trend_svg(
    history: pd.DataFrame, score_psi_alert: float = 0.25, width: int = 960, title: str = "Monitoring over time"
) -> str:
    """The four-panel trend chart of ``history`` (:func:`history_table`) as an SVG document."""
    left, right, panel, gap = 64, 16, 96, 34
    dates = pd.DatetimeIndex(history["date"])
    n = len(dates)
    height = 40 + 24 + len(PANELS) * (panel + gap) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11" role="img">',
        f'<title>{html.escape(title)}</title><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{left}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
    ]
    if n == 0:
        out.append(f'<text x="{left}" y="50">no monitoring day yet</text></svg>')
        return "".join(out)
    first, last = dates.min(), dates.max()
    span = max((last - first) / pd.Timedelta(days=1), 1.0)
    plot_w = width - left - right
    day_w = plot_w / (span + 1)

    positions: dict = {}  # each date is drawn in every panel: its position computed once

    def x(t) -> float:
        if t not in positions:
            positions[t] = left + ((pd.Timestamp(t) - first) / pd.Timedelta(days=1)) * day_w + day_w / 2
        return positions[t]

    # 1. the traffic light, a strip of days
    top = 30
    out.append(f'<text x="{left - 8}" y="{top + 15}" text-anchor="end">light</text>')
    for t, light in zip(dates, history["traffic_light"]):
        colour = LIGHT_COLOURS.get(str(light), "#bdbdbd")
        out.append(
            f'<rect x="{x(t) - day_w / 2:.2f}" y="{top}" width="{max(day_w, 0.6):.2f}" height="22" '
            f'fill="{colour}"><title>{t:%Y-%m-%d}: {html.escape(str(light))}</title></rect>'
        )
    panels = [(label, series, score_psi_alert if label == "score PSI" else None) for label, series in PANELS]
    y0 = top + 22 + gap
    for label, series, threshold in panels:
        values = np.concatenate([history[c].to_numpy(dtype=float) for c, _, _ in series])
        finite = values[np.isfinite(values)]
        lo = 0.0
        hi = max([*(finite.tolist() or [1.0]), threshold or 0.0]) * 1.1 or 1.0

        def y(v, lo=lo, hi=hi, y0=y0) -> float:
            return y0 + panel - (v - lo) / (hi - lo) * panel

        out.append(f'<rect x="{left}" y="{y0}" width="{plot_w}" height="{panel}" fill="none" stroke="#9e9e9e"/>')
        out.append(
            f'<text x="{12}" y="{y0 + panel / 2}" transform="rotate(-90 12 {y0 + panel / 2})" '
            f'text-anchor="middle">{html.escape(label)}</text>'
        )
        for tick in _ticks(lo, hi):
            out.append(
                f'<line x1="{left - 4}" x2="{left}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#616161"/>'
                f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>'
            )
        if threshold is not None:
            out.append(
                f'<line x1="{left}" x2="{left + plot_w}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
                f'stroke="{LIGHT_COLOURS["red"]}" stroke-dasharray="5 4"/>'
                f'<text x="{left + plot_w - 4}" y="{y(threshold) - 4:.1f}" text-anchor="end" '
                f'fill="{LIGHT_COLOURS["red"]}">alert at {threshold:g}</text>'
            )
        legend_x = left + 8
        for column, colour_key, name in series:
            colour = SERIES_COLOURS[colour_key]
            v = history[column].to_numpy(dtype=float)
            points, segments = [], []
            for t, value in zip(dates, v):
                if np.isfinite(value):
                    points.append(f"{x(t):.1f},{y(value):.1f}")
                elif points:
                    segments.append(points)
                    points = []
            segments.append(points)
            for seg in segments:
                if len(seg) == 1:
                    cx, cy = seg[0].split(",")
                    out.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
                elif seg:
                    out.append(f'<polyline points="{" ".join(seg)}" fill="none" stroke="{colour}" stroke-width="1.6"/>')
            out.append(
                f'<rect x="{legend_x}" y="{y0 + 6}" width="10" height="3" fill="{colour}"/>'
                f'<text x="{legend_x + 14}" y="{y0 + 11}">{html.escape(name)}</text>'
            )
            legend_x += 24 + 6.5 * len(name)
        y0 += panel + gap
    axis = y0 - gap + 4
    for t in _date_ticks(dates):
        out.append(
            f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{axis - 4}" y2="{axis}" stroke="#616161"/>'
            f'<text x="{x(t):.1f}" y="{axis + 12}" text-anchor="middle">{t:%Y-%m-%d}</text>'
        )
    out.append(
        f'<text x="{left + plot_w / 2}" y="{axis + 26}" text-anchor="middle">day monitored (UTC); '
        f"{n} days, {first:%Y-%m-%d} to {last:%Y-%m-%d}</text></svg>"
    )
    return "".join(out)


def svg_data_uri(svg: str) -> str:
    """An SVG as a data: URI (what Dagster's markdown renders as an image; its sanitizer allows data: sources)."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


# --- the index page --------------------------------------------------------------------------------------------------


def _fmt(value) -> str:
    return html.escape(fmt(value, digits=4))


def index_html(history: pd.DataFrame, folder, score_psi_alert: float = 0.25) -> str:
    """``data/outputs/monitoring/index.html``: the trend chart, the light of every day and a link to its report
    (relative to ``folder``, a path or URL, so the page works wherever the folder is copied)."""
    counts = history["traffic_light"].value_counts()
    badges = " ".join(
        f'<span class="light {light}">{light} {int(counts.get(light, 0))}</span>' for light in LIGHT_COLOURS
    )
    rows = []
    for row in history.iloc[::-1].itertuples(index=False):
        report, base = str(row.report), str(folder).rstrip("/") + "/"
        link = report[len(base) :] if report.startswith(base) else report
        rows.append(
            f'<tr class="{html.escape(str(row.traffic_light))}">'
            f'<td><a href="{html.escape(link)}">{row.date:%Y-%m-%d}</a></td>'
            f'<td><span class="light {html.escape(str(row.traffic_light))}">'
            f"{html.escape(str(row.traffic_light))}</span></td>"
            f"<td>{int(row.alert_count)}</td><td>{_fmt(row.alerts) if row.alerts else 'none'}</td>"
            f'<td class="num">{_fmt(row.score_psi)}</td><td class="num">{_fmt(row.n_drifted_features)}</td>'
            f'<td>{_fmt(row.top_drifted)}</td><td class="num">{_fmt(row.ap_production)}</td>'
            f'<td class="num">{_fmt(row.estimated_ap_immature)}</td><td>{_fmt(row.model_version)}</td></tr>'
        )
    latest = history.iloc[-1] if len(history) else None
    head = (
        (
            f"<p>Latest day <b>{latest['date']:%Y-%m-%d}</b>: <span class='light {latest['traffic_light']}'>"
            f"{latest['traffic_light']}</span>, {int(latest['alert_count'])} alert(s).</p>"
        )
        if latest is not None
        else "<p>No day monitored yet.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Monitoring history</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: Helvetica, Arial, sans-serif; max-width: 1240px; margin: 1.5em auto; padding: 0 1em;
        color: #212121; }}
h1 {{ font-size: 1.5em; }} table {{ border-collapse: collapse; width: 100%; font-size: 0.9em; }}
th, td {{ border-bottom: 1px solid #e0e0e0; padding: 4px 6px; text-align: left; }} td.num {{ text-align: right; }}
td:first-child, td:nth-child(2) {{ white-space: nowrap; }}
.light {{ display: inline-block; padding: 1px 8px; border-radius: 9px; color: white; font-weight: bold; }}
.light.green {{ background: #2e7d32; }} .light.yellow {{ background: #f9a825; color: #212121; }}
.light.red {{ background: #c62828; }} svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>Monitoring history</h1>
{head}
<p>Days by light: {badges}. Score PSI alert at {score_psi_alert:g}.</p>
<figure id="trend">{trend_svg(history, score_psi_alert, width=1200)}</figure>
<h2>Every day</h2>
<table id="days"><thead><tr><th>day</th><th>light</th><th>alerts</th><th>which</th><th>score PSI</th>
<th>drifted features</th><th>top drifted</th><th>AP production</th><th>AP estimated</th><th>model</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
</body></html>
"""
