"""Bad input one expects from real exports, through the pure core (parse, stage, validate): the exact outcome of each.

Every case starts from lines of the real Q1 telemetry of machine 1 (``../shared/data/azure_pm``), changes one
thing, and says what becomes of it: the value stored, the row quarantined with its reason and raw text, or the
error naming file and line. The fast reader is checked against the line-by-line parser on a corrupted file.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.landing import Staging, list_landed, unusable
from pm_assets.core.parsing import LINE_COLUMN, PROBLEM_COLUMN, RAW_COLUMN, SourceFileError, read_source_csv
from pm_assets.core.schema import TELEMETRY
from pm_assets.core.simulate import CORRUPTIONS, corrupt_csv
from pm_assets.core.validation import validate_rows
from pm_assets_tests.conftest import Q1_SUBSET
from pm_assets_tests.core.test_parsing import read_slow

MACHINE_IDS = [1, 2, 3]


@pytest.fixture(scope="module")
def real_lines(real_data_dir) -> list[str]:
    """The header and the first 48 hours of machine 1 of the real Q1 telemetry (LF, unquoted header)."""
    lines = gzip.decompress((real_data_dir / Q1_SUBSET).read_bytes()).decode().splitlines()
    return [lines[0], *(line for line in lines[1:] if line.split(",")[1] == "1")][:49]


def write_lines(tmp_path: Path, lines: list[str], name: str = "PdM_telemetry.csv", eol: str = "\n") -> Path:
    path = tmp_path / name
    path.write_bytes((eol.join(lines) + eol).encode("utf-8"))
    return path


def outcome(path: Path):
    """(parsed frame, validation result) of a telemetry file."""
    parsed = read_source_csv(path, TELEMETRY)
    return parsed, validate_rows(parsed, TELEMETRY, MACHINE_IDS)


def one_rejected(result, line: int) -> pd.Series:
    assert result.rejected[LINE_COLUMN].tolist() == [line]
    return result.rejected.iloc[0]


def replace_last(line: str, value: str) -> str:
    return line.rsplit(",", 1)[0] + "," + value


# --- numbers ---------------------------------------------------------------------------------------------------

NUMBER_CASES = [
    # (case, the last field of data line 10, line's outcome: stored vibration, or (rules, reason))
    ("decimal comma, unquoted", "45,1", ("unparseable_value", "expected 6 fields, found 7: ")),
    ("decimal comma, quoted", '"45,1"', ("unparseable_value", "vibration: not a number '45,1'")),
    ("thousands separator", '"1,045.1"', ("unparseable_value", "vibration: not a number '1,045.1'")),
    ("scientific notation", "4.51e1", 45.1),
    ("explicit plus sign and spaces", " +45.1 ", 45.1),
    ("infinity", "inf", ("out_of_bounds", "vibration: inf outside [0, 500]")),
    ("NaN spelled out", "NaN", ("missing_value", "vibration: missing value")),
    ("null spelled out", "null", ("missing_value", "vibration: missing value")),
    ("N/A", "N/A", ("missing_value", "vibration: missing value")),
    ("empty", "", ("missing_value", "vibration: missing value")),
    ("a word", "broken", ("unparseable_value", "vibration: not a number 'broken'")),
]


@pytest.mark.parametrize(("value", "expected"), [c[1:] for c in NUMBER_CASES], ids=[c[0] for c in NUMBER_CASES])
def test_numbers_as_exports_write_them(real_lines, tmp_path, value, expected):
    lines = list(real_lines)
    lines[10] = replace_last(lines[10], value)
    parsed, result = outcome(write_lines(tmp_path, lines))
    assert len(parsed) == 48 and result.rows_in == 48
    if isinstance(expected, float):
        assert result.rejected.empty
        assert result.kept.loc[9, "vibration"] == expected
        return
    rules, reason = expected
    row = one_rejected(result, 11)
    assert row["rules"] == rules and row["reason"].startswith(reason), row["reason"]
    assert row["raw_line"] == lines[10]  # the text as it was, or the Kaggle line of the exact values
    assert len(result.kept) == 47


# --- lines that are no row ----------------------------------------------------------------------------------------


def test_nul_bytes_make_a_row_problem_with_the_raw_text(real_lines, tmp_path):
    lines = list(real_lines)
    lines[5] = "\x00" * 40
    lines[6] = lines[6][:20] + "\x00\x00" + lines[6][20:]
    parsed, result = outcome(write_lines(tmp_path, lines))
    assert result.rejected[LINE_COLUMN].tolist() == [6, 7]
    assert (result.rejected["reason"] == "the line holds NUL bytes").all()
    assert result.rejected[RAW_COLUMN].tolist() == [lines[5], lines[6]]
    assert len(result.kept) == 46


@pytest.mark.parametrize("quoted", [False, True], ids=["as written", "quoted the other way"])
def test_a_header_repeated_mid_file_is_named(real_lines, tmp_path, quoted):
    lines = list(real_lines)
    header = ",".join(f'"{c}"' for c in lines[0].split(",")) if quoted else lines[0]
    lines.insert(25, header)  # two exports joined
    parsed, result = outcome(write_lines(tmp_path, lines))
    row = one_rejected(result, 26)
    assert row["reason"] == "the header repeated mid-file (two exports joined?)" and row["raw_line"] == header
    assert len(result.kept) == 48


def test_a_very_long_line_is_one_row_problem_quoted_briefly(real_lines, tmp_path):
    lines = list(real_lines)
    lines[3] = "x" * 3_000_000  # longer than the reader's blocks
    parsed, result = outcome(write_lines(tmp_path, lines))
    row = one_rejected(result, 4)
    assert row["reason"] == f"expected 6 fields, found 1: {'x' * 120 + '...'!r}"
    assert row["raw_line"] == lines[3]  # all of it, to be recovered
    assert len(result.kept) == 47


def test_a_stray_quote_costs_only_its_line(real_lines, tmp_path):
    """pyarrow reads a quote to the next one across lines: the line count tells, and the file is read line by line."""
    lines = list(real_lines)
    lines[7] = lines[7].replace(",1,", ',"1,', 1)
    parsed, result = outcome(write_lines(tmp_path, lines))
    row = one_rejected(result, 8)
    assert row["reason"].startswith("expected 6 fields, found 2: ")  # the quote runs to the end of the line
    assert len(result.kept) == 47 and parsed[LINE_COLUMN].tolist() == list(range(2, 50))


def test_windows_1252_text_names_the_byte_and_the_line(real_lines, tmp_path):
    lines = list(real_lines)
    lines[12] = replace_last(lines[12], '"45.1 é"')
    path = tmp_path / "PdM_telemetry.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))
    with pytest.raises(SourceFileError) as info:
        read_source_csv(path, TELEMETRY)
    assert info.value.line == 13
    assert str(info.value).startswith(f"{path}, line 13: not UTF-8 text (byte ")
    assert "b'\\xe9': a Windows-1252 or Latin-1 export? save it as UTF-8" in str(info.value)


# --- entries that are no file -----------------------------------------------------------------------------------


def test_a_directory_named_like_a_file_is_reported_not_ignored(real_lines, tmp_path):
    landing = tmp_path / "landing"
    (landing / "PdM_telemetry_2015-01-03.csv").mkdir(parents=True)
    write_lines(landing, real_lines)
    files, ignored = list_landed(landing)
    assert [f.name for f in files] == ["PdM_telemetry.csv"] and ignored == []
    assert unusable(landing) == [("PdM_telemetry_2015-01-03.csv", "is a directory, not a file")]
    with pytest.raises(SourceFileError, match="is a directory, not a file"):
        read_source_csv(landing / "PdM_telemetry_2015-01-03.csv", TELEMETRY)


def test_a_symlink_loop_and_a_dangling_link_are_reported(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    os.symlink("PdM_errors_b.csv", landing / "PdM_errors_a.csv")
    os.symlink("PdM_errors_a.csv", landing / "PdM_errors_b.csv")
    os.symlink(tmp_path / "gone.csv", landing / "PdM_maint_x.csv")
    assert list_landed(landing) == ([], [])
    assert unusable(landing) == [
        ("PdM_errors_a.csv", "is a loop of symbolic links"),
        ("PdM_errors_b.csv", "is a loop of symbolic links"),
        ("PdM_maint_x.csv", f"is a link to nothing ({tmp_path / 'gone.csv'})"),
    ]


# --- staging: plausible timestamps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "reason"),
    [
        (
            "2031-01-01 06:00:00",
            "datetime: 2031-01-01 06:00:00 is after the plausible range (ends 2015-01-04 00:00:00: now + 24 h)",
        ),
        (
            "1970-01-01 00:00:00",
            "datetime: 1970-01-01 00:00:00 is before the plausible range (starts 2014-01-01 00:00:00: "
            "365 days before the first partition 2015-01-01)",
        ),
    ],
)
def test_implausible_timestamps_are_staged_without_a_day_and_quarantined(real_lines, tmp_path, stamp, reason):
    from pm_assets.resources import LandingResource

    lines = list(real_lines)
    lines[20] = stamp + lines[20][19:]
    landing = tmp_path / "landing"
    landing.mkdir()
    write_lines(landing, lines)
    resource = LandingResource(
        landing_dir=str(landing), staging_dir=str(tmp_path / "staging"), quarantine_dir=str(tmp_path / "q")
    )
    plausible = resource.plausible_times("2015-01-01", now=pd.Timestamp("2015-01-03 00:00", tz="UTC"))
    staging = Staging(resource.staging_dir)
    entry = staging.stage(list_landed(landing)[0][0], plausible=plausible)
    assert entry["days"] == {"2015-01-01": 18, "2015-01-02": 23, "2015-01-03": 6, "unplaced": 1}
    assert entry["implausible_times"] == 1
    result = validate_rows(staging.read("telemetry", ["unplaced"]), TELEMETRY, MACHINE_IDS)
    assert result.kept.empty
    row = one_rejected(result, 21)
    assert row["rules"] == "implausible_time" and row["reason"] == reason and row["raw_line"] == lines[20]


# --- the fast reader agrees with the line-by-line parser on a corrupted file --------------------------------------


def test_a_corrupted_file_reads_as_the_line_by_line_parser_reads_it(real_data_dir, tmp_path, monkeypatch):
    lines = gzip.decompress((real_data_dir / Q1_SUBSET).read_bytes()).decode().splitlines()[:20_001]
    clean = write_lines(tmp_path, lines, "clean.csv", eol="\r\n")
    counts = corrupt_csv(clean, tmp_path / "bad.csv", fraction=0.01, seed=3)
    assert set(counts) == set(CORRUPTIONS) and sum(counts.values()) == 200
    fast = read_source_csv(tmp_path / "bad.csv", TELEMETRY)
    slow = read_slow(tmp_path / "bad.csv", TELEMETRY, monkeypatch)
    columns = [*TELEMETRY.columns, LINE_COLUMN, PROBLEM_COLUMN, RAW_COLUMN]
    pd.testing.assert_frame_equal(fast[columns], slow[columns])
    problems = fast[fast[PROBLEM_COLUMN] != ""]
    # every defect but the ISO timestamp (accepted) and the 2031 date (plausible to the parser) is a row problem
    shape = problems[PROBLEM_COLUMN].str.split(":").str[0].str.split(" ").str[:3].str.join(" ")
    assert len(problems) == sum(n for k, n in counts.items() if k not in ("iso_timestamp", "far_future"))
    assert shape.value_counts().to_dict() == {
        "expected 6 fields,": counts["field_missing"] + counts["field_extra"],
        "vibration": counts["text_for_number"] + counts["decimal_comma"],
        "the line holds": counts["nul_bytes"],
        "blank line": counts["blank_line"],
        "the header repeated": counts["header_repeated"],
        "datetime": counts["impossible_timestamp"],
    }
    # the rows not damaged are exactly the clean file's rows
    reference = read_source_csv(clean, TELEMETRY)
    good = fast[fast[PROBLEM_COLUMN] == ""]
    future = good["datetime"].dt.year == 2031  # plausible to the parser; staging quarantines them (test above)
    assert future.sum() == counts["far_future"]
    good = good[~future]
    merged = good.merge(reference, on=["datetime", "machineID"], suffixes=("", "_ref"))
    assert len(merged) == len(good)
    assert np.array_equal(merged["volt"].to_numpy(), merged["volt_ref"].to_numpy())
