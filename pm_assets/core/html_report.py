"""A self-contained HTML monitoring report: inline SVG charts, no script, no server, no plotting library."""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from pm_assets.core.markdown import _cell

LIGHT_COLOURS = {"green": "#2e7d32", "yellow": "#f9a825", "red": "#c62828"}
REF_COLOUR, PROD_COLOUR = "#1f77b4", "#ff7f0e"


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def bar_chart(labels: list[str], values: list[float], threshold: float | None = None, width: int = 640) -> str:
    """Horizontal bars (NaN drawn as empty), with an optional dashed threshold line."""
    row, left = 18, 230
    finite = [v for v in values if v is not None and np.isfinite(v)]
    top = max(finite + ([threshold] if threshold else []) + [1e-9])
    height = row * len(labels) + 20
    scale = (width - left - 60) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-size="11">']
    for i, (label, value) in enumerate(zip(labels, values)):
        y = 4 + i * row
        parts.append(f'<text x="{left - 6}" y="{y + 12}" text-anchor="end">{html.escape(label)}</text>')
        if value is not None and np.isfinite(value):
            parts.append(f'<rect x="{left}" y="{y + 2}" width="{max(value * scale, 0.5):.1f}" height="{row - 5}" fill="{PROD_COLOUR}"/>')
            parts.append(f'<text x="{left + value * scale + 4:.1f}" y="{y + 12}">{value:.3f}</text>')
    if threshold:
        x = left + threshold * scale
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 14}" stroke="#c62828" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 2}" text-anchor="middle" fill="#c62828">alert {threshold:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def histogram(reference, production, title: str, bins: int = 20, width: int = 300, height: int = 150) -> str:
    """Reference vs production densities on shared bins (the reference's 1st-99th percentile range)."""
    ref = np.asarray(reference, dtype=float)
    prod = np.asarray(production, dtype=float)
    ref, prod = ref[np.isfinite(ref)], prod[np.isfinite(prod)]
    if len(ref) == 0 or len(prod) == 0:
        return f"<p>{html.escape(title)}: no data</p>"
    both = np.concatenate([ref, prod])
    lo, hi = np.percentile(both, [1, 99])
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    d_ref = np.histogram(np.clip(ref, lo, hi), edges)[0] / len(ref)
    d_prod = np.histogram(np.clip(prod, lo, hi), edges)[0] / len(prod)
    top = max(d_ref.max(), d_prod.max(), 1e-9)
    bar = (width - 20) / bins
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 30}" font-size="10">',
             f'<text x="4" y="12" font-weight="bold">{html.escape(title)}</text>']
    for i in range(bins):
        for k, (density, colour) in enumerate(((d_ref, REF_COLOUR), (d_prod, PROD_COLOUR))):
            h = density[i] / top * (height - 30)
            parts.append(f'<rect x="{10 + i * bar + k * bar / 2:.1f}" y="{height - h:.1f}" width="{bar / 2 - 0.5:.1f}" '
                         f'height="{h:.1f}" fill="{colour}" opacity="0.85"/>')
    parts.append(f'<text x="10" y="{height + 14}">{lo:.3g}</text>'
                 f'<text x="{width - 10}" y="{height + 14}" text-anchor="end">{hi:.3g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render(date: str, summary: dict, drift_features: pd.DataFrame, drift_scores: pd.DataFrame,
           performance: pd.DataFrame, segments: pd.DataFrame, samples: dict[str, tuple]) -> str:
    """The report. ``samples``: name -> (reference values, production values) for the histograms."""
    light = summary["traffic_light"]
    alerts = "".join(
        f"<li class='{'fired' if a['fired'] else 'quiet'}'><b>{html.escape(a['name'])}</b>: "
        f"{'ALERT' if a['fired'] else 'ok'} &mdash; {html.escape(a['reason'])}</li>" for a in summary["alerts"])
    top = drift_features.head(20)
    histograms = "".join(histogram(r, p, name) for name, (r, p) in samples.items())
    windows = summary["windows"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pm_assets monitoring {html.escape(date)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f3f3f3; }}
.light {{ display: inline-block; padding: 0.4em 1.2em; border-radius: 1em; color: white; font-size: 1.4em;
          background: {LIGHT_COLOURS[light]}; }}
li.fired {{ color: #c62828; }} li.quiet {{ color: #555; }}
.legend span {{ display: inline-block; width: 12px; height: 12px; margin: 0 4px 0 12px; }}
</style></head><body>
<h1>Model monitoring, {html.escape(date)}</h1>
<p><span class="light">{light.upper()}</span> &nbsp; {summary['alert_count']} alert(s). {html.escape(summary['action'])}</p>
<p>Reference {html.escape(windows['reference']['start'])} .. {html.escape(windows['reference']['end'])};
production {html.escape(windows['production']['start'])} .. {html.escape(windows['production']['end'])}
(rows: {summary['rows']}).</p>
<h2>Alerts</h2><ul>{alerts}</ul>
<h2>Feature drift (PSI, top 20)</h2>
{bar_chart(top['feature'].tolist(), top['psi'].tolist(), threshold=summary.get('feature_psi_alert'))}
<h2>Score drift</h2>{_table(drift_scores)}
<h2>Reference vs production</h2>
<p class="legend"><span style="background:{REF_COLOUR}"></span>reference<span style="background:{PROD_COLOUR}"></span>production</p>
{histograms}
<h2>Performance (mature labels; estimates from calibrated scores beside them)</h2>{_table(performance)}
<h2>Segments</h2>{_table(segments)}
<h2>All features</h2>{_table(drift_features)}
</body></html>
"""
