"""A self-contained HTML monitoring report: inline SVG charts, no script, no server, no plotting library.

Laid out like a data-drift report (Evidently's is the model): the verdict first (light, alerts, the four figures
that decide it), the trend of the last 90 days, then per feature its drift statistic with the threshold, a flag in
colour and an explanation where the statistic is undefined, distributions on labelled axes (share of rows per bin,
the bins' values, the sample sizes; the score on a log scale, where its mass is), performance with estimates beside
the realized figures, and the segments with those above the threshold in colour. It fits a 1,280 px screen.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

LIGHT_COLOURS = {"green": "#2e7d32", "yellow": "#f9a825", "red": "#c62828"}
REF_COLOUR, PROD_COLOUR = "#1f77b4", "#ff7f0e"
DRIFT_COLOUR = "#c62828"
UNDEFINED_PSI = (
    "undefined: the reference window has too few distinct values for quantile bins (e.g. an error count "
    "that is almost always 0); see KS"
)


#: Headers of the all-features table, short enough for 1,280 px (the CSVs keep the full names).
SHORT_HEADERS = {
    "jensen_shannon": "Jensen-Shannon",
    "chi2_p_value": "chi² p",
    "reference_mean": "reference mean",
    "production_mean": "production mean",
    "reference_n": "reference n",
    "production_n": "production n",
    # the performance tables
    "mature_rows": "mature rows",
    "failure_rate": "failure rate",
    "roc_auc": "AUC",
    "roc_auc_band": "AUC ±",
    "average_precision": "AP",
    "average_precision_band": "AP ±",
    "estimated_roc_auc": "estimated AUC",
    "estimated_average_precision": "estimated AP",
    "estimated_average_precision_band": "estimated AP ±",
    "immature_rows": "immature rows",
    "immature_estimated_roc_auc": "estimated AUC",
    "immature_estimated_average_precision": "estimated AP",
    "immature_estimated_failure_rate": "estimated failure rate",
}


def fmt(value, digits: int = 3) -> str:
    """A number for people: 3 significant digits, thousands separated, never ``-0.000``; missing is a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        if abs(value) < 0.5 * 10**-digits:
            return "0"
        return f"{value:,.0f}" if abs(value) >= 10**digits else f"{value:.{digits}g}"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def _table(frame: pd.DataFrame, row_class=None, table_id: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = []
    for i, row in enumerate(frame.itertuples(index=False, name=None)):
        css = row_class(i) if row_class else ""
        cells = []
        for v in row:
            number = isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
            cells.append(('<td class="num">' if number else "<td>") + html.escape(fmt(v)) + "</td>")
        rows.append((f'<tr class="{css}">' if css else "<tr>") + "".join(cells) + "</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def bar_chart(labels: list[str], values: list[float], threshold: float | None = None, width: int = 640) -> str:
    """Horizontal bars, red at or above ``threshold`` (a dashed line); a missing value is labelled undefined."""
    row, left = 18, 230
    finite = [v for v in values if v is not None and np.isfinite(v)]
    top = max(finite + ([threshold] if threshold else []) + [1e-9])
    height = row * len(labels) + 34
    scale = (width - left - 60) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11" role="img">']
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 4 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(label)}</text>')
        if value is not None and np.isfinite(value):
            colour = DRIFT_COLOUR if threshold is not None and value >= threshold else PROD_COLOUR
            parts.append(
                f'<rect x="{left}" y="{y + 2}" width="{max(value * scale, 0.5):.1f}" height="{row - 5}" '
                f'fill="{colour}"><title>{html.escape(label)}: {fmt(value)}</title></rect>'
            )
            parts.append(f'<text x="{left + value * scale + 4:.1f}" y="{y + 12}">{fmt(value)}</text>')
        else:
            parts.append(f'<text x="{left + 4}" y="{y + 12}" fill="#757575">undefined</text>')
    axis = 4 + len(labels) * row
    parts.append(
        f'<line x1="{left}" x2="{width - 60}" y1="{axis}" y2="{axis}" stroke="#9e9e9e"/>'
        f'<text x="{left}" y="{axis + 12}">0</text>'
        f'<text x="{width - 60}" y="{axis + 12}" text-anchor="end">{fmt(top)}</text>'
        f'<text x="{(left + width - 60) / 2}" y="{axis + 26}" text-anchor="middle">PSI</text>'
    )
    if threshold:
        x = left + threshold * scale
        parts.append(
            f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{axis}" stroke="{DRIFT_COLOUR}" stroke-dasharray="4 3"/>'
        )
        parts.append(f'<text x="{x + 3:.1f}" y="{axis + 12}" fill="{DRIFT_COLOUR}">alert {threshold:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(
    reference, production, title: str, bins: int = 20, width: int = 380, height: int = 190, log: bool = False
) -> str:
    """Reference vs production as the share of each sample per bin, on shared bins over the 1st-99th percentile
    of both (values outside go to the end bins). Labelled axes: the share of rows (%) and the bins' values; the
    sample sizes in the caption. ``log``: bins on log10 of the values (a score whose mass is near 0)."""
    ref = np.asarray(reference, dtype=float)
    prod = np.asarray(production, dtype=float)
    ref, prod = ref[np.isfinite(ref)], prod[np.isfinite(prod)]
    note = ""
    if log:
        positive = (ref > 0).sum() + (prod > 0).sum()
        dropped = len(ref) + len(prod) - positive
        ref, prod = np.log10(ref[ref > 0]), np.log10(prod[prod > 0])
        note = f" (log scale{f'; {dropped:,} values at 0 not drawn' if dropped else ''})"
    if len(ref) == 0 or len(prod) == 0:
        return f"<p>{html.escape(title)}: no data</p>"
    lo, hi = np.percentile(np.concatenate([ref, prod]), [1, 99])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    # equal-width bins given as a count and range: numpy's fast path, no sort (the same counts as on ``edges``)
    d_ref = np.histogram(np.clip(ref, lo, hi), bins, range=(lo, hi))[0] / len(ref)
    d_prod = np.histogram(np.clip(prod, lo, hi), bins, range=(lo, hi))[0] / len(prod)
    top = max(d_ref.max(), d_prod.max(), 1e-9)
    left, bottom, plot_h = 48, 36, height - 30
    plot_w = width - left - 16  # room for the last tick label
    bar = plot_w / bins

    def shown(edge: float) -> str:
        return f"{10**edge:.2g}" if log else fmt(edge)  # a log axis spans decades: 1e-05 .. 1

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + bottom}" font-size="10" '
        f'role="img" class="histogram"><text x="{left}" y="11" font-weight="bold">{html.escape(title)}</text>'
    ]
    for i in range(bins):
        for k, (density, colour, name) in enumerate(
            ((d_ref, REF_COLOUR, "reference"), (d_prod, PROD_COLOUR, "production"))
        ):
            h = density[i] / top * (plot_h - 20)
            parts.append(
                f'<rect x="{left + i * bar + k * bar / 2:.1f}" y="{height - h:.1f}" width="{bar / 2 - 0.5:.1f}" '
                f'height="{h:.1f}" fill="{colour}" opacity="0.85"><title>{shown(edges[i])} to '
                f"{shown(edges[i + 1])}: {name} {density[i]:.1%}</title></rect>"
            )
    for fraction in (0.0, 0.5, 1.0):  # y axis: share of rows
        y = height - fraction * (plot_h - 20)
        parts.append(
            f'<line x1="{left - 3}" x2="{left}" y1="{y:.1f}" y2="{y:.1f}" stroke="#616161"/>'
            f'<text x="{left - 5}" y="{y + 3:.1f}" text-anchor="end">{fraction * top:.0%}</text>'
        )
    for j in range(0, bins + 1, max(bins // 4, 1)):  # x axis: the bins' values
        x = left + j * bar
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{height}" y2="{height + 3}" stroke="#616161"/>'
            f'<text x="{x:.1f}" y="{height + 13}" text-anchor="middle">{shown(edges[j])}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{height}" y2="{height}" stroke="#616161"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height + 26}" text-anchor="middle">{html.escape(title)}'
        f"{html.escape(note)}</text>"
        f'<text x="{left}" y="24" fill="#616161">reference n={len(ref):,}, production n={len(prod):,}</text>'
        f'<text x="9" y="{height - plot_h / 2:.1f}" transform="rotate(-90 9 {height - plot_h / 2:.1f})" '
        f'text-anchor="middle" fill="#616161">share of rows per bin</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _window(window: dict, rows: int | None, mature: int | None) -> str:
    start = pd.Timestamp(window["start"])
    last = pd.Timestamp(window["end"]) - pd.Timedelta(days=1)  # the end is exclusive
    counts = f" ({fmt(rows)} snapshots, {fmt(mature)} with mature labels)" if rows is not None else ""
    return f"{start:%Y-%m-%d} to {last:%Y-%m-%d}{counts}"


def _card(label: str, value: str, alarm: bool, detail: str) -> str:
    return (
        f"<div class='card{' alarm' if alarm else ''}'><div class='label'>{html.escape(label)}</div>"
        f"<div class='value'>{html.escape(value)}</div><div class='detail'>{html.escape(detail)}</div></div>"
    )


def render(
    date: str,
    summary: dict,
    drift_features: pd.DataFrame,
    drift_scores: pd.DataFrame,
    performance: pd.DataFrame,
    segments: pd.DataFrame,
    samples: dict[str, tuple],
    trend_svg: str | None = None,
    score_psi_alert: float = 0.25,
) -> str:
    """The report. ``samples``: name -> (reference values, production values) for the histograms (a name that
    starts with ``p_`` is a score, drawn on a log scale); ``trend_svg``: the chart of the last 90 days."""
    light = summary["traffic_light"]
    feature_alert = summary.get("feature_psi_alert")
    alerts = "".join(
        f"<li class='{'fired' if a['fired'] else 'quiet'}'><b>{html.escape(a['name'])}</b>: "
        f"{'ALERT' if a['fired'] else 'ok'} &mdash; {html.escape(a['reason'])}</li>"
        for a in summary["alerts"]
    )
    rows = summary.get("rows", {})
    windows = summary["windows"]
    score = drift_scores.iloc[0] if len(drift_scores) else pd.Series(dtype=object)
    perf = performance.set_index("period") if "period" in performance else pd.DataFrame()
    drifted = int(drift_features["drifted"].sum()) if "drifted" in drift_features else 0

    def perf_value(period: str, column: str):
        return perf.loc[period, column] if period in perf.index and column in perf else float("nan")

    cards = "".join(
        [
            _card(
                "score PSI",
                fmt(score.get("psi")),
                bool(score.get("psi", 0) >= score_psi_alert),
                f"alert at {score_psi_alert:g}",
            ),
            _card(
                "drifted features",
                f"{drifted} of {len(drift_features)}",
                drifted > 0,
                (
                    f"{summary.get('feature_drift_measure', 'psi')} at least {feature_alert:g}"
                    if feature_alert is not None
                    else ""
                )
                + (f" ({drifted / len(drift_features):.0%})" if len(drift_features) else ""),
            ),
            _card(
                "average precision",
                fmt(perf_value("production", "average_precision")),
                False,
                f"reference {fmt(perf_value('reference', 'average_precision'))}; estimated on immature rows "
                f"{fmt(perf_value('production', 'immature_estimated_average_precision'))}",
            ),
            _card(
                "failure rate",
                fmt(perf_value("production", "failure_rate")),
                False,
                f"reference {fmt(perf_value('reference', 'failure_rate'))}",
            ),
        ]
    )
    top = drift_features.head(20)
    notes = (
        drift_features["note"]
        if "note" in drift_features
        else np.where(drift_features["psi"].isna(), UNDEFINED_PSI, "")
    )
    feature_rows = (
        drift_features.drop(columns=["note"], errors="ignore")
        .assign(flag=np.where(drift_features["drifted"], "DRIFT", ""), note=notes)
        .rename(columns=SHORT_HEADERS)
    )
    multivariate = summary.get("multivariate")
    multivariate_html = ""
    if multivariate:
        shown_mv = pd.DataFrame(
            [
                {
                    "measure": "PCA reconstruction error",
                    "production": multivariate.get("production_error"),
                    "reference": multivariate.get("reference_error"),
                    "threshold": f"{fmt(multivariate.get('lower_threshold'))} to "
                    f"{fmt(multivariate.get('upper_threshold'))}",
                    "detail": f"{fmt(multivariate.get('components'))} components",
                },
                {
                    "measure": "largest correlation change",
                    "production": multivariate.get("correlation_change"),
                    "reference": 0.0,
                    "threshold": f"up to {fmt(multivariate.get('correlation_threshold'))}",
                    "detail": multivariate.get("correlation_pair", ""),
                },
            ]
        )
        fired = any(a["name"] == "multivariate_drift" and a["fired"] for a in summary["alerts"])
        multivariate_html = (
            "<h2>Multivariate drift (telemetry features together)</h2><p class='note'>A change in how the sensors move "
            "together, which no single feature's test sees. The PCA is fitted on the reference window (standardised, "
            "components explaining 65 % of its variance); thresholds are the reference days' mean &plusmn; 3 sd.</p>"
            + _table(shown_mv, lambda i: "drift" if fired else "", table_id="multivariate")
        )
    histograms = "".join(histogram(r, p, name, log=name.startswith("p_")) for name, (r, p) in samples.items())
    main_perf = [
        c
        for c in (
            "period",
            "start",
            "end",
            "rows",
            "mature_rows",
            "failure_rate",
            "roc_auc",
            "roc_auc_band",
            "average_precision",
            "average_precision_band",
            "estimated_roc_auc",
            "estimated_average_precision",
            "estimated_average_precision_band",
        )
        if c in performance
    ]
    immature = [
        c
        for c in (
            "period",
            "immature_rows",
            "immature_estimated_roc_auc",
            "immature_estimated_average_precision",
            "immature_estimated_failure_rate",
        )
        if c in performance
    ]
    perf_shown = performance[main_perf].copy()
    for column in ("start", "end"):
        if column in perf_shown:
            perf_shown[column] = pd.to_datetime(perf_shown[column])
    seg_flags = [bool(v >= score_psi_alert) if pd.notna(v) else False for v in segments.get("score_psi", [])]
    segments_shown = (
        segments.assign(skipped_reason=segments["skipped_reason"].fillna(""))
        if "skipped_reason" in segments
        else segments
    )
    trend = f"<h2>The last 90 days</h2><figure class='trend'>{trend_svg}</figure>" if trend_svg else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pm_assets monitoring {html.escape(date)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, Helvetica, Arial, sans-serif; margin: 1.5em auto; padding: 0 1em; color: #222;
        max-width: 1220px; }}
h2 {{ margin-top: 1.6em; border-bottom: 1px solid #e0e0e0; padding-bottom: 0.2em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; font-size: 12.5px; }}
td, th {{ border: 1px solid #ddd; padding: 3px 7px; text-align: left; }} td.num {{ text-align: right; }}
th {{ background: #f5f5f5; }}
tr.drift td {{ background: #fdecea; color: {DRIFT_COLOUR}; font-weight: 600; }}
.light {{ display: inline-block; padding: 0.4em 1.2em; border-radius: 1em; color: white; font-size: 1.4em;
          background: {LIGHT_COLOURS[light]}; }}
.cards {{ display: flex; gap: 12px; flex-wrap: wrap; margin: 1em 0; }}
.card {{ border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 200px; }}
.card .label {{ color: #616161; font-size: 0.85em; }} .card .value {{ font-size: 1.6em; font-weight: bold; }}
.card .detail {{ color: #757575; font-size: 0.8em; }} .card.alarm {{ border-color: {DRIFT_COLOUR}; }}
.card.alarm .value {{ color: {DRIFT_COLOUR}; }}
li.fired {{ color: {DRIFT_COLOUR}; }} li.quiet {{ color: #555; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 8px; }} svg {{ max-width: 100%; height: auto; }}
.note {{ color: #616161; font-size: 0.9em; }}
</style></head><body>
<h1>Model monitoring, {html.escape(date)}</h1>
<p><span class="light">{light.upper()}</span> &nbsp; {summary["alert_count"]} alert(s).
{html.escape(summary["action"])}</p>
<p>Reference {html.escape(_window(windows["reference"], rows.get("reference"), rows.get("reference_mature")))};
production {html.escape(_window(windows["production"], rows.get("production"), rows.get("production_mature")))}.</p>
<div class="cards">{cards}</div>
<h2>Alerts</h2><ul>{alerts}</ul>
{trend}
<h2>Feature drift (PSI, top 20)</h2>
<p class="note">Population stability index of each feature, production against reference: 10 quantile bins of the
reference for continuous features, one bin per value for discrete ones (25 values or fewer, e.g. error counts).
Red: at or above the feature alert threshold{f" ({feature_alert:g})" if feature_alert is not None else ""}.</p>
{bar_chart(top["feature"].tolist(), top["psi"].tolist(), threshold=feature_alert)}
<h2>Score drift</h2>{_table(drift_scores, lambda i: "drift" if score.get("psi", 0) >= score_psi_alert else "")}
<h2>Reference vs production</h2>
<p class="legend"><span style="background:{REF_COLOUR}"></span>reference
<span style="background:{PROD_COLOUR}"></span>production</p>
<div class="charts">{histograms}</div>
<h2>Performance</h2>
<p class="note">Realized on mature labels; estimated from the calibrated scores (no labels needed) beside them.
A <i>_band</i> column is the half-width of the 95 % sampling band (1.96 standard errors, counting failures, not
snapshots); the AP-drop alert waits for a drop beyond the two windows' bands.</p>
{_table(perf_shown.rename(columns=SHORT_HEADERS))}
<p class="note">The production window's immature rows (their horizon has not passed): estimates only.</p>
{_table(performance[immature].rename(columns=SHORT_HEADERS))}
{multivariate_html}
<h2>Segments (score PSI per machine model)</h2>
<p class="note">Red: at or above the score alert threshold ({score_psi_alert:g}).</p>
{_table(segments_shown, lambda i: "drift" if seg_flags[i] else "", table_id="segments")}
<h2>All features</h2>
<p class="note">Continuous features: PSI on reference deciles, Jensen-Shannon distance on the same bins, KS.
Discrete features: PSI and Jensen-Shannon on one bin per value, and the chi-square test's p-value.</p>
{_table(feature_rows, lambda i: "drift" if bool(feature_rows["drifted"].iloc[i]) else "", table_id="features")}
</body></html>
"""
