"""The monitoring history table, its trend chart and the index page (pure)."""

import base64
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from pm_assets.core.history import HISTORY_COLUMNS, history_table, index_html, svg_data_uri, trend_svg

SVG = "{http://www.w3.org/2000/svg}"


def days(n: int = 40, folder: Path = Path("/out/monitoring")) -> pd.DataFrame:
    dates = pd.date_range("2015-03-01", periods=n)
    light = np.where(np.arange(n) < 30, "green", np.where(np.arange(n) < 35, "yellow", "red"))
    psi = np.linspace(0.02, 0.4, n)
    psi[min(5, n - 1)] = np.nan  # undefined on one day: a gap in the line, not a zero
    return pd.DataFrame(
        {
            "date": dates,
            "traffic_light": light,
            "light_code": pd.Series(light).map({"green": 0, "yellow": 1, "red": 2}),
            "alert_count": np.where(light == "green", 0, np.where(light == "yellow", 2, 3)),
            "alerts": np.where(light == "green", "", "score_drift, feature_drift"),
            "retrain_recommended": light != "green",
            "score_psi": psi,
            "n_drifted_features": np.arange(n) // 4,
            "top_drifted": "volt_mean_24h 0.41",
            "auc_reference": 0.9,
            "auc_production": 0.85,
            "ap_reference": 0.6,
            "ap_production": np.linspace(0.6, 0.3, n),
            "estimated_ap_immature": 0.55,
            "failure_rate_reference": 0.01,
            "failure_rate_production": 0.02,
            "model_version": "v0001",
            "report": [str(folder / f"{d:%Y-%m-%d}" / "report.html") for d in dates],
        }
    )


def test_history_keeps_the_latest_row_of_a_day_in_date_order():
    frame = days(6)
    again = frame.iloc[[2]].assign(traffic_light="red")
    history = history_table(pd.concat([frame.iloc[::-1], again]))
    assert list(history.columns) == HISTORY_COLUMNS
    assert history["date"].is_monotonic_increasing and len(history) == 6
    assert history.loc[2, "traffic_light"] == "red"


def test_the_chart_is_valid_svg_with_a_rect_per_day_and_gaps_for_undefined_values():
    svg = trend_svg(history_table(days()))
    root = ET.fromstring(svg)
    strip = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(strip) == 40
    assert [r.get("fill") for r in strip].count("#c62828") == 5  # the red days
    assert "alert at 0.25" in svg and "2015-03-01" in svg
    psi_lines = [p for p in root.iter(f"{SVG}polyline") if p.get("stroke") == "#ff7f0e"]
    assert sum(len(p.get("points").split()) for p in psi_lines[:2]) == 39  # 40 days, one undefined
    assert base64.b64decode(svg_data_uri(svg).split(",", 1)[1]).decode() == svg
    # the multivariate panel: one line of the correlation change, drawn where it is defined
    with_change = trend_svg(history_table(days().assign(correlation_change=np.linspace(0.05, 0.5, 40))))
    assert "largest correlation change" in svg and with_change.count("<polyline") == svg.count("<polyline") + 1


def test_an_empty_history_still_draws():
    assert "no monitoring day yet" in trend_svg(history_table(pd.DataFrame()))


def test_the_index_links_every_report_relative_to_its_folder():
    page = index_html(history_table(days(folder=Path("/out/monitoring"))), Path("/out/monitoring"))
    assert page.count('href="2015-') == 40 and 'href="2015-04-09/report.html"' in page
    assert 'Days by light: <span class="light green">green 30</span>' in page
    assert page.index("2015-04-09") < page.index("2015-03-01")  # newest first
