"""Column descriptions: every stored column has one (the assets' schemas would fail without)."""

import pytest

from pm_assets.core.columns import describe
from pm_assets.core.features import coverage_columns, feature_columns
from pm_assets.core.schema import TABLES


def test_every_raw_feature_and_coverage_column_is_described():
    for name in [c for spec in TABLES.values() for c in spec.columns] + feature_columns() + coverage_columns():
        assert len(describe(name)) > 10, name


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("volt_mean_24h", "Mean volt over the last 24 hours (NaN below the coverage minimum)"),
        ("vibration_sd_14d", "Standard deviation of vibration over the last 14 days (ddof=1)"),
        ("error3_count_24h", "Number of error3 errors in the last 24 hours"),
        ("p_comp2", "Calibrated probability that comp2 fails within the horizon"),
    ],
)
def test_generated_names_are_described_by_their_family(column, text):
    assert describe(column) == text


def test_an_undescribed_column_is_an_error_naming_it():
    with pytest.raises(KeyError, match="no description for column 'humidity'"):
        describe("humidity")
