"""Markdown tables for Dagster metadata: read back cell by cell, floats to 4 significant digits, pipes escaped."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from pm_assets.core.markdown import markdown_table


def cells(table: str) -> list[list[str]]:
    """The cells of a pipe table's lines (the separator line skipped), split on pipes that are not escaped."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    assert set(lines[1]) <= {"|", "-"}, lines[1]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in [lines[0], *lines[2:]]]


def test_floats_are_shown_to_4_significant_digits_and_other_values_as_they_are():
    frame = pd.DataFrame(
        {
            "x": [0.9972727272727273, 123456.0, -0.000123456, np.nan],
            "n": [1, 22, 333_333, 4],
            "name": ["a", "b", "c", "d"],
            "flag": [True, False, True, False],
        }
    )
    out = cells(markdown_table(frame))
    assert out[0] == ["x", "n", "name", "flag"]
    assert (
        [row[0] for row in out[1:]] == [f"{v:.4g}" for v in frame["x"]] == ["0.9973", "1.235e+05", "-0.0001235", "nan"]
    )
    assert [row[1] for row in out[1:]] == ["1", "22", "333333", "4"]
    assert [row[2:] for row in out[1:]] == [["a", "True"], ["b", "False"], ["c", "True"], ["d", "False"]]


def test_pipes_are_escaped_and_newlines_flattened_in_cells_and_headers():
    frame = pd.DataFrame({"a|b": ["x|y", "two\nlines"], "c": [1.5, 2.25]})
    table = markdown_table(frame)
    assert len(table.splitlines()) == 4  # header, separator, two rows: no cell broke a line
    assert cells(table) == [["a\\|b", "c"], ["x\\|y", "1.5"], ["two lines", "2.25"]]
    assert all(len(row) == 2 for row in cells(table))


def test_the_index_is_a_column_when_asked():
    frame = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["m1", "m2"], name="machine"))
    assert cells(markdown_table(frame, index=True)) == [["machine", "v"], ["m1", "1"], ["m2", "2"]]
    assert cells(markdown_table(frame)) == [["v"], ["1"], ["2"]]


def test_long_frames_are_cut_with_a_note_and_empty_ones_say_so():
    frame = pd.DataFrame({"i": range(7)})
    table = markdown_table(frame, max_rows=5)
    assert [row[0] for row in cells(table)[1:]] == ["0", "1", "2", "3", "4"]
    assert table.endswith("\n\n_2 more rows not shown_")
    assert "not shown" not in markdown_table(frame, max_rows=7)
    assert markdown_table(frame.iloc[:0]) == "_no rows_"
    assert markdown_table(pd.DataFrame()) == "_no rows_"
