"""The HTML monitoring report: a complete, self-contained, escaped document with inline SVG charts.

The report is rendered from a real :func:`monitor` result on a small synthetic window, with the summary passed
through ``to_json_safe`` as the monitoring asset does, and with a feature whose name contains markup.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.html_report import LIGHT_COLOURS, bar_chart, histogram, render
from pm_assets.core.json_safe import to_json_safe
from pm_assets.core.monitoring import ACTIONS, LIGHTS, MonitoringParams, monitor

END = pd.Timestamp("2015-02-01")
PARAMS = MonitoringParams(reference_days=10, production_days=5, min_segment_rows=60)
EVIL = "evil<b>name"
SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


def build_rows(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    times = pd.date_range(END - pd.Timedelta(days=16), END, freq="2h", inclusive="left")
    rows = pd.DataFrame([(m, t) for t in times for m in range(1, 5)], columns=["machineID", "datetime"])
    n = len(rows)
    prod = (rows["datetime"] >= END - pd.Timedelta(days=5)).to_numpy()
    rows["model"] = pd.Categorical([f"model{1 + (m - 1) % 2}" for m in rows["machineID"]])
    rows["steady"] = rng.normal(0, 1, n)
    rows[EVIL] = rng.normal(0, 1, n) + 2.0 * prod
    rows["p_any"] = np.clip(rng.beta(1.5, 4.0, n) + 0.2 * prod, 0, 1)
    rows["scored"] = True
    y = rng.random(n) < rows["p_any"].to_numpy()
    mature = y | (rows["datetime"] <= END - pd.Timedelta(days=1)).to_numpy()
    rows["failure_within_horizon"] = pd.array(np.where(mature, y, None), dtype="boolean")
    rows["label_mature"] = mature
    return rows


@pytest.fixture(scope="module")
def report():
    rows = build_rows()
    result = monitor(rows, END, ["steady", EVIL], PARAMS, pd.Series({"steady": 1.0, EVIL: 2.0}))
    summary = to_json_safe(result.summary() | {"date": str(END.date()), "feature_psi_alert": PARAMS.feature_psi_alert})
    ref = rows[(rows["datetime"] >= END - pd.Timedelta(days=15)) & (rows["datetime"] < END - pd.Timedelta(days=5))]
    prod = rows[rows["datetime"] >= END - pd.Timedelta(days=5)]
    samples = {f: (ref[f].to_numpy(), prod[f].to_numpy()) for f in ("steady", EVIL, "p_any")}
    page = render(
        str(END.date()),
        summary,
        result.drift_features,
        result.drift_scores,
        result.performance,
        result.drift_segments,
        samples,
    )
    return page, summary, samples, result


class TagChecker(HTMLParser):
    """Every non-void element opened is closed, in order; records the tags seen."""

    def __init__(self):
        super().__init__()
        self.stack, self.seen, self.errors = [], [], []

    def handle_starttag(self, tag, attrs):
        self.seen.append(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.seen.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
        else:
            self.stack.pop()


def test_report_is_a_complete_well_nested_document(report):
    page, *_ = report
    assert page.startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")
    checker = TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    for tag in ("html", "head", "title", "body", "h1", "table", "svg"):
        assert tag in checker.seen


def test_report_shows_the_traffic_light_and_every_alert(report):
    page, summary, _, result = report
    light = summary["traffic_light"]
    assert light == result.light
    assert re.search(r'<span class="light">\s*' + light.upper() + r"\s*</span>", page)
    assert LIGHT_COLOURS[light] in page
    assert summary["action"] in page
    assert len(summary["alerts"]) == 4
    for alert in summary["alerts"]:
        assert alert["name"] in page
    fired = sum(a["fired"] for a in summary["alerts"])
    assert page.count("<li class='fired'>") == fired
    assert page.count("<li class='quiet'>") == 4 - fired
    assert f"{summary['alert_count']} alert(s)" in page


@pytest.mark.parametrize("light", LIGHTS)
def test_report_renders_each_light(report, light):
    _, summary, samples, result = report
    page = render(
        "2015-02-01",
        summary | {"traffic_light": light, "action": ACTIONS[light]},
        result.drift_features,
        result.drift_scores,
        result.performance,
        result.drift_segments,
        samples,
    )
    assert f'<span class="light">{light.upper()}</span>' in page
    assert LIGHT_COLOURS[light] in page and ACTIONS[light] in page


def test_report_charts_are_inline_svg(report):
    page, _, samples, _ = report
    # one feature-drift bar chart and one histogram per sample
    assert page.count("<svg") == page.count("</svg>") == 1 + len(samples)
    assert "alert 0.2" in page  # the feature PSI threshold line


def test_report_is_self_contained(report):
    page, *_ = report
    lower = page.lower()
    assert "<script" not in lower and "javascript:" not in lower
    # the SVG namespace is an identifier, never fetched; nothing else may name a URL
    assert "http" not in lower.replace(SVG_NAMESPACE, "")
    for pattern in (r"\bsrc\s*=", r"\bhref\s*=", r"url\(", r"@import", r"<link", r"<iframe", r"<img"):
        assert not re.search(pattern, lower), pattern


def test_report_escapes_feature_names(report):
    page, summary, *_ = report
    assert EVIL not in page
    escaped = "evil&lt;b&gt;name"
    # bar chart label, histogram title, drift table; also the feature_drift reason when it is listed there
    assert page.count(escaped) >= 3
    feature_reason = next(a["reason"] for a in summary["alerts"] if a["name"] == "feature_drift")
    assert EVIL in feature_reason  # the drifted feature is named in the reason, and escaped in the page
    assert "&lt;b&gt;" in page.split("<h2>Alerts</h2>")[1].split("</ul>")[0]


# --- charts on awkward input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reference, production",
    [
        ([], [1.0, 2.0]),
        ([1.0, 2.0], []),
        ([np.nan, np.nan], [np.nan]),
        ([np.inf, -np.inf], [1.0]),
    ],
)
def test_histogram_without_data_says_so(reference, production):
    out = histogram(reference, production, "x<y")
    assert "no data" in out and "x&lt;y" in out and "x<y" not in out
    assert "<svg" not in out


@pytest.mark.parametrize(
    "reference, production",
    [
        ([2.0] * 30, [2.0] * 10),  # constant: the range is widened, no division by zero
        ([1.0, np.nan, 3.0, np.inf], [2.0, -np.inf, np.nan]),  # non-finite values dropped
        (np.random.default_rng(0).normal(0, 1, 500), np.random.default_rng(1).normal(1, 2, 300)),
    ],
)
def test_histogram_draws_finite_bars(reference, production):
    bins, height = 12, 150
    out = histogram(reference, production, "t", bins=bins, height=height)
    assert out.startswith("<svg") and out.endswith("</svg>")
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([^"]+)"', out)]
    assert len(heights) == 2 * bins  # a reference and a production bar per bin
    assert "nan" not in out.lower() and "inf" not in out.lower()
    assert all(0 <= h <= height - 50 for h in heights)
    assert max(heights) == pytest.approx(height - 50, abs=0.05)  # the tallest density fills the plot


def test_histogram_densities_match_numpy():
    rng = np.random.default_rng(2)
    ref, prod = rng.uniform(0, 10, 1000), rng.uniform(0, 10, 400)
    out = histogram(ref, prod, "t", bins=5, height=130)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([^"]+)"', out)]
    lo, hi = np.percentile(np.concatenate([ref, prod]), [1, 99])
    edges = np.linspace(lo, hi, 6)
    d_ref = np.histogram(np.clip(ref, lo, hi), edges)[0] / len(ref)
    d_prod = np.histogram(np.clip(prod, lo, hi), edges)[0] / len(prod)
    top = max(d_ref.max(), d_prod.max())
    expected = np.column_stack([d_ref, d_prod]).ravel() / top * (130 - 50)
    np.testing.assert_allclose(heights, expected, atol=0.051)


@pytest.mark.parametrize(
    "labels, values, threshold",
    [
        ([], [], None),
        ([], [], 0.2),
        (["a", "b"], [np.nan, np.nan], None),
        (["a", "b"], [np.nan, np.nan], 0.2),
        (["a", "b", "c", "d"], [np.nan, None, np.inf, 0.3], 0.2),
    ],
)
def test_bar_chart_handles_missing_values(labels, values, threshold):
    out = bar_chart(labels, values, threshold=threshold)
    assert out.startswith("<svg") and out.endswith("</svg>")
    assert "nan" not in out.lower() and "inf" not in out.lower()
    for label in labels:
        assert f">{label}</text>" in out
    finite = [v for v in values if v is not None and np.isfinite(v)]
    assert out.count("<rect") == len(finite)
    assert ("stroke-dasharray" in out) == (threshold is not None)


def test_bar_chart_lengths_are_proportional_and_labels_escaped():
    values = [0.1, 0.4, 0.25]
    out = bar_chart(["<x>", "y", "z"], values, threshold=0.2)
    widths = [float(w) for w in re.findall(r'<rect [^>]*width="([^"]+)"', out)]
    assert widths[1] == pytest.approx(640 - 230 - 60, abs=0.05)  # the largest value spans the plot
    np.testing.assert_allclose(np.array(widths) / widths[1], np.array(values) / 0.4, atol=1e-3)
    assert "&lt;x&gt;" in out and "<x>" not in out
    assert "alert 0.2" in out


# --- read as a person reads it --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (-0.0000001, "0"),
        (0.0843721279514446, "0.0844"),
        (7200, "7,200"),
        (float("nan"), "–"),
        (12345.6, "12,346"),
        (True, "yes"),
    ],
)
def test_numbers_are_shown_rounded_never_minus_zero(value, text):
    from pm_assets.core.html_report import fmt

    assert fmt(value) == text


def test_report_says_what_a_person_needs_and_prints_no_python(report):
    page, summary, _, _ = report
    assert "{'" not in page and "-0.000" not in page and "nan" not in page.lower().replace("nanosecond", "")
    assert "snapshots," in page and "with mature labels" in page  # the windows' sizes, in words
    assert "share of rows per bin" in page and "reference n=" in page  # labelled histogram axes and counts
    assert "p_any (log scale" in page  # the score on a log scale


def test_a_report_loads_in_a_browser_with_its_charts(report, browser, tmp_path):
    from pm_assets_tests.conftest import open_page

    page_html, summary, samples, result = report
    path = tmp_path / "report.html"
    path.write_text(page_html)
    page, errors = open_page(browser, path.as_uri())
    assert errors == []
    assert page.locator("svg.histogram").count() == len(samples)
    assert page.locator("svg.histogram text").count() >= 10 * len(samples)  # title, 3 + 5 ticks, caption
    assert page.locator(".card").count() == 4
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # fits a 1,280 px screen
    # drifted features in colour, one row each
    assert page.locator("#features tr.drift").count() == int(result.drift_features["drifted"].sum()) > 0
    page.close()
