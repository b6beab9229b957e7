"""Reading the Kaggle CSV files: what is accepted, and how each unreadable file is reported."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from pm_assets.core import parsing
from pm_assets.core.parsing import (
    LINE_COLUMN,
    PROBLEM_COLUMN,
    RAW_COLUMN,
    SourceFileError,
    find_source_file,
    read_source_csv,
    read_source_pieces,
)
from pm_assets.core.schema import ERRORS, FAILURES, MACHINES, MAINTENANCE, TELEMETRY
from pm_assets_tests.conftest import Q1_SUBSET, UNION_PARTIAL

TELEMETRY_HEADER = "datetime,machineID,volt,rotate,pressure,vibration\n"
ROW_06 = "2015-01-01 06:00:00,1,176.2,418.5,113.1,45.1\n"
ROW_07 = "2015-01-01 07:00:00,1,162.9,402.7,95.5,43.4\n"
ROW_08 = "2015-01-01 08:00:00,1,170.1,440.2,99.9,40.2\n"


def write(tmp_path: Path, name: str, text: str | bytes, *, crlf: bool = False, truncate: bool = False) -> Path:
    """Write ``text`` to ``tmp_path/name``: CRLF line endings if asked, gzip when the name ends in .gz."""
    data = text.replace("\n", "\r\n") if crlf and isinstance(text, str) else text
    data = data.encode("utf-8") if isinstance(data, str) else data
    if name.endswith(".gz"):
        data = gzip.compress(data)
        if truncate:
            data = data[: len(data) // 2]
    path = tmp_path / name
    path.write_bytes(data)
    return path


def raised(path: Path, spec=TELEMETRY) -> SourceFileError:
    with pytest.raises(SourceFileError) as info:
        read_source_csv(path, spec)
    return info.value


# --- finding the file ------------------------------------------------------------------------------------------


def test_missing_file_names_the_expected_files_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        find_source_file(tmp_path, ERRORS)
    message = str(info.value)
    assert "PdM_errors.csv" in message and "PdM_errors.csv.gz" in message and str(tmp_path) in message


def test_both_csv_and_gz_present_is_an_error(tmp_path):
    write(tmp_path, "PdM_errors.csv", '"datetime","machineID","errorID"\n')
    write(tmp_path, "PdM_errors.csv.gz", '"datetime","machineID","errorID"\n')
    with pytest.raises(SourceFileError) as info:
        find_source_file(tmp_path, ERRORS)
    assert "PdM_errors.csv and PdM_errors.csv.gz" in str(info.value)
    assert "keep one" in str(info.value)


@pytest.mark.parametrize("name", ["PdM_maint.csv", "PdM_maint.csv.gz"])
def test_the_single_file_is_found(tmp_path, name):
    write(tmp_path, name, '"datetime","machineID","comp"\n')
    assert find_source_file(tmp_path, MAINTENANCE) == tmp_path / name


# --- files that cannot be parsed -------------------------------------------------------------------------------

# (case id, file name, file content, crlf, line named in the error, key words of the problem)
UNREADABLE = [
    ("empty file", "t.csv", "", False, 1, "empty file"),
    ("empty gzip", "t.csv.gz", "", False, 1, "empty file"),
    ("only blank lines", "t.csv", "\n\n", True, 1, "empty file"),
    (
        "not UTF-8",
        "t.csv",
        TELEMETRY_HEADER.encode() + ROW_06.encode() + b"2015-01-01 07:00:00,1,\xe9,1,1,1\n",
        False,
        3,
        "not UTF-8",
    ),
    (
        "missing column",
        "t.csv",
        "datetime,machineID,volt,rotate,pressure\n" + ROW_06,
        False,
        1,
        "lacks the required column(s) ['vibration']",
    ),
    (
        "repeated column",
        "t.csv",
        TELEMETRY_HEADER.rstrip() + ",volt\n" + ROW_06,
        False,
        1,
        "names column(s) ['volt'] more than once",
    ),
    (
        "semicolons",
        "t.csv",
        (TELEMETRY_HEADER + ROW_06).replace(",", ";"),
        False,
        1,
        "not comma-separated (found ';' as delimiter?)",
    ),
    (
        "quoted header, semicolons",
        "t.csv",
        '"datetime";"machineID";"volt";"rotate";"pressure";"vibration"\n',
        True,
        1,
        "not comma-separated (found ';'",
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "crlf", "line", "problem"), [c[1:] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE]
)
def test_unreadable_file_names_file_line_and_problem(tmp_path, name, content, crlf, line, problem):
    path = write(tmp_path, name, content, crlf=crlf)
    error = raised(path)
    assert error.path == path and error.line == line
    assert str(error).startswith(f"{path}, line {line}: ")
    assert problem in str(error)


# --- problems of one line stay with that line ---------------------------------------------------------------

# (case id, file name, content, crlf, the bad line's number, its problem, its raw text, its timestamp or None)
ROW_LEVEL = [
    (
        "too many fields",
        "t.csv",
        TELEMETRY_HEADER + ROW_06 + ROW_07.rstrip() + ",9.9\n" + ROW_08,
        False,
        3,
        "expected 6 fields, found 7",
        ROW_07.rstrip() + ",9.9",
        "2015-01-01 07:00:00",
    ),
    (
        "too few fields",
        "t.csv",
        TELEMETRY_HEADER + ROW_06 + "2015-01-01 07:00:00,1,170.0\n" + ROW_08,
        True,
        3,
        "expected 6 fields, found 3",
        "2015-01-01 07:00:00,1,170.0",
        "2015-01-01 07:00:00",
    ),
    ("blank line in the middle", "t.csv", TELEMETRY_HEADER + ROW_06 + "\n" + ROW_08, False, 3, "blank line", "", None),
    (
        "trailing blank line, CRLF gzip",
        "t.csv.gz",
        TELEMETRY_HEADER + ROW_06 + ROW_08 + "\n",
        True,
        4,
        "blank line",
        "",
        None,
    ),
    (
        "unparseable timestamp",
        "t.csv",
        TELEMETRY_HEADER + ROW_06 + ROW_07.replace("2015-01-01", "2015-13-45") + ROW_08,
        False,
        3,
        "datetime: not a timestamp '2015-13-45 07:00:00'",
        ROW_07.replace("2015-01-01", "2015-13-45").rstrip(),
        None,
    ),
    (
        "impossible date",
        "t.csv.gz",
        TELEMETRY_HEADER + ROW_06 + ROW_07.replace("01-01", "02-30") + ROW_08,
        True,
        3,
        "datetime: not a timestamp '2015-02-30 07:00:00'",
        ROW_07.replace("01-01", "02-30").rstrip(),
        None,
    ),
    (
        "empty timestamp",
        "t.csv",
        TELEMETRY_HEADER + ROW_06 + ",1,170.0,450.0,100.0,40.0\n" + ROW_08,
        True,
        3,
        "datetime: missing timestamp",
        ",1,170.0,450.0,100.0,40.0",
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "content", "crlf", "line", "problem", "raw", "stamp"),
    [c[1:] for c in ROW_LEVEL],
    ids=[c[0] for c in ROW_LEVEL],
)
def test_a_bad_line_is_a_row_with_its_problem_and_the_others_are_read(
    tmp_path, name, content, crlf, line, problem, raw, stamp
):
    frame = read_source_csv(write(tmp_path, name, content, crlf=crlf), TELEMETRY)
    bad = frame[frame[LINE_COLUMN] == line]
    assert len(bad) == 1 and problem in bad[PROBLEM_COLUMN].iloc[0], bad[PROBLEM_COLUMN].tolist()
    assert bad[RAW_COLUMN].iloc[0] == raw
    assert pd.isna(bad["datetime"].iloc[0]) if stamp is None else bad["datetime"].iloc[0] == pd.Timestamp(stamp)
    good = frame[frame[LINE_COLUMN] != line]
    assert (good[PROBLEM_COLUMN] == "").all() and (good[RAW_COLUMN] == "").all() and len(good) == 2
    assert good["datetime"].tolist() == [pd.Timestamp("2015-01-01 06:00"), pd.Timestamp("2015-01-01 08:00")]
    assert good["volt"].notna().all()


@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz"])
@pytest.mark.parametrize("final_newline", [True, False])
def test_pieces_of_a_file_are_the_whole_file_parsed(tmp_path, crlf, name, final_newline):
    """Every bad-line case of ROW_LEVEL in one file, a repeated header and a stray quote among 300 good lines, read
    in pieces of 1 byte to the whole file: concatenated, the same frame as one read (line numbers, problems and
    raw text included)."""
    lines = [ROW_06, ROW_07, ROW_08] * 100
    for i, (_, _, content, *_rest) in enumerate(ROW_LEVEL):
        lines.insert(20 * i + 7, content.split("\n")[2] + "\n")  # each case's bad line
    lines.insert(150, TELEMETRY_HEADER)
    lines.insert(200, '2015-01-01 09:00:00,1,"17"0.1,440.2,99.9,40.2\n')
    text = TELEMETRY_HEADER + "".join(lines)
    path = write(tmp_path, name, text if final_newline else text.rstrip("\n"), crlf=crlf)
    whole = read_source_csv(path, TELEMETRY)
    assert (whole[PROBLEM_COLUMN] != "").sum() >= len(ROW_LEVEL)
    for piece_bytes in (1, 100, 4_000, 10**9):
        pieces = list(read_source_pieces(path, TELEMETRY, piece_bytes))
        assert len(pieces) > 1 or piece_bytes == 10**9
        # (a piece that the fallback parser read has its text columns as object, as a whole file read so has)
        got = pd.concat(pieces, ignore_index=True).astype({PROBLEM_COLUMN: object, RAW_COLUMN: object})
        pd.testing.assert_frame_equal(got, whole.astype({PROBLEM_COLUMN: object, RAW_COLUMN: object}), check_exact=True)


def test_every_bad_timestamp_is_its_own_row_problem(tmp_path):
    bad = ROW_06.replace("06:00:00", "6am") + ROW_07.replace("07:00:00", "7am")
    frame = read_source_csv(write(tmp_path, "t.csv", TELEMETRY_HEADER + bad + ROW_08), TELEMETRY)
    assert frame[PROBLEM_COLUMN].tolist() == [
        "datetime: not a timestamp '2015-01-01 6am'",
        "datetime: not a timestamp '2015-01-01 7am'",
        "",
    ]
    assert frame[LINE_COLUMN].tolist() == [2, 3, 4]


def test_truncated_gzip_names_the_file(tmp_path):
    path = write(tmp_path, "PdM_telemetry.csv.gz", TELEMETRY_HEADER + ROW_06 * 200, truncate=True)
    error = raised(path)
    assert error.line is None
    assert str(error).startswith(f"{path}: cannot decompress")


# --- accepted formats ------------------------------------------------------------------------------------------

EVENTS = ['2015-01-01 06:00:00,1,"error1"\n', '2015-01-01 06:00:00,1,"error3"\n', '2015-01-02 07:00:00,2,"error5"\n']


@pytest.mark.parametrize("crlf", [False, True], ids=["LF", "CRLF"])
@pytest.mark.parametrize(
    "header",
    ['"datetime","machineID","errorID"\n', "datetime,machineID,errorID\n"],
    ids=["quoted header", "unquoted header"],
)
@pytest.mark.parametrize("name", ["PdM_errors.csv", "PdM_errors.csv.gz"])
def test_accepted_formats_give_the_same_frame(tmp_path, name, header, crlf):
    frame = read_source_csv(write(tmp_path, name, header + "".join(EVENTS), crlf=crlf), ERRORS)
    expected = pd.DataFrame(
        {
            "datetime": pd.to_datetime(["2015-01-01 06:00", "2015-01-01 06:00", "2015-01-02 07:00"]).astype(
                "datetime64[ns]"
            ),
            "machineID": [1.0, 1.0, 2.0],
            "errorID": pd.Series(["error1", "error3", "error5"], dtype=object),
            LINE_COLUMN: [2, 3, 4],
        }
    )
    pd.testing.assert_frame_equal(frame[[*ERRORS.columns, LINE_COLUMN]], expected)
    assert frame[PROBLEM_COLUMN].tolist() == ["", "", ""]


@pytest.mark.parametrize(
    "text",
    ['"machineID","model","age"\n', '"machineID","model","age"', "machineID,model,age\r\n"],
    ids=["quoted", "no final newline", "unquoted CRLF"],
)
def test_header_only_file_is_valid_and_empty(tmp_path, text):
    frame = read_source_csv(write(tmp_path, "PdM_machines.csv", text), MACHINES)
    assert len(frame) == 0
    assert list(frame.columns) == [*MACHINES.columns, LINE_COLUMN, PROBLEM_COLUMN, RAW_COLUMN]


# --- fast path and slow path agree -----------------------------------------------------------------------------


def read_slow(path: Path, spec, monkeypatch) -> pd.DataFrame:
    """read_source_csv with the fast reader refusing every file, so that every line is parsed alone (_parse_lines)."""

    def refuse(*args):
        raise pa.ArrowInvalid("forced slow path")

    with monkeypatch.context() as patch:
        patch.setattr(parsing, "_arrow_parse", refuse)
        return read_source_csv(path, spec)


def assert_same_parse(fast: pd.DataFrame, slow: pd.DataFrame, spec) -> None:
    columns = [*spec.columns, LINE_COLUMN]
    pd.testing.assert_frame_equal(fast[columns], slow[columns], check_exact=True)
    assert fast[PROBLEM_COLUMN].tolist() == slow[PROBLEM_COLUMN].tolist()


def test_fast_and_slow_paths_agree_on_a_clean_inline_file(tmp_path, monkeypatch):
    path = write(
        tmp_path, "t.csv", TELEMETRY_HEADER + ROW_06 + ROW_07 + "2015-01-01 08:00:00,2,0.1,1e3,-0.0,7\n", crlf=True
    )
    fast = read_source_csv(path, TELEMETRY)
    assert len(fast) == 3
    assert_same_parse(fast, read_slow(path, TELEMETRY, monkeypatch), TELEMETRY)


@pytest.mark.parametrize(
    ("relative", "spec"),
    [
        ("PdM_errors.csv.gz", ERRORS),
        ("PdM_failures.csv.gz", FAILURES),
        ("PdM_maint.csv.gz", MAINTENANCE),
        ("PdM_machines.csv.gz", MACHINES),
        (Q1_SUBSET, TELEMETRY),
        (UNION_PARTIAL, TELEMETRY),
    ],
    ids=["errors", "failures", "maintenance", "machines", "telemetry Q1", "telemetry union"],
)
def test_fast_and_slow_paths_agree_on_real_files(real_data_dir, monkeypatch, relative, spec):
    path = real_data_dir / relative
    fast = read_source_csv(path, spec)
    assert len(fast) > 0
    assert_same_parse(fast, read_slow(path, spec, monkeypatch), spec)


# --- tolerant headers and timestamps ---------------------------------------------------------------------------


def test_a_byte_order_mark_is_ignored(tmp_path):
    plain = read_source_csv(write(tmp_path, "a.csv", '"datetime","machineID","errorID"\n' + "".join(EVENTS)), ERRORS)
    path = tmp_path / "b.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ('"datetime","machineID","errorID"\r\n' + "".join(EVENTS)).encode())
    pd.testing.assert_frame_equal(read_source_csv(path, ERRORS), plain)


@pytest.mark.parametrize("monkey", [False, True], ids=["fast path", "slow path"])
def test_columns_are_matched_by_name_and_extra_ones_reported(tmp_path, monkeypatch, monkey):
    reference = read_source_csv(write(tmp_path, "a.csv", TELEMETRY_HEADER + ROW_06 + ROW_07), TELEMETRY)
    fields = [line.rstrip("\n").split(",") for line in (TELEMETRY_HEADER, ROW_06, ROW_07)]
    order = [1, 5, 0, 3, 2, 4]  # machineID, vibration, datetime, rotate, volt, pressure
    lines = [",".join([*(f[i] for i in order), extra]) for f, extra in zip(fields, ["humidity", "55.5", "56.5"])]
    path = write(tmp_path, "b.csv", "\n".join(lines) + "\n")
    frame = read_slow(path, TELEMETRY, monkeypatch) if monkey else read_source_csv(path, TELEMETRY)
    assert_same_parse(frame, reference, TELEMETRY)
    assert frame.attrs["extra_columns"] == ["humidity"] and reference.attrs["extra_columns"] == []


@pytest.mark.parametrize(
    "stamp",
    [
        "2015-01-01T07:00:00",
        "2015-01-01T07:00:00Z",
        "2015-01-01 07:00:00+00:00",
        "2015-01-01T09:00:00+02:00",
        "2015-01-01T02:00:00-05:00",
    ],
)
def test_iso_8601_timestamps_are_converted_to_utc(tmp_path, stamp):
    frame = read_source_csv(
        write(tmp_path, "t.csv", TELEMETRY_HEADER + ROW_06 + ROW_07.replace("2015-01-01 07:00:00", stamp)), TELEMETRY
    )
    assert frame["datetime"].tolist() == [pd.Timestamp("2015-01-01 06:00"), pd.Timestamp("2015-01-01 07:00")]
    assert frame["datetime"].dtype == "datetime64[ns]"


def test_a_character_across_the_slices_of_the_utf8_check_is_text(tmp_path):
    """UTF-8 is checked 16 MB at a time: a two-byte character split by that boundary is still text, and a bad
    byte after it is named with its position and line."""
    body = b"a" * (16 * 2**20 - 1) + "é".encode() + b"\nb\n"
    path = tmp_path / "t.csv"
    path.write_bytes(body)
    assert parsing.read_bytes(path) == body
    path.write_bytes(body + b"\xff\n")
    with pytest.raises(SourceFileError, match=f"byte {len(body)},") as info:
        parsing.read_bytes(path)
    assert info.value.line == 3
