"""Reading the Kaggle CSV files: strict about structure, precise about where a problem is.

Two levels of bad input:

- a file that cannot be read at all (missing, empty, truncated gzip, not UTF-8, wrong delimiter, a required
  column missing or repeated) raises :class:`SourceFileError` naming the file, the line and the problem;
- a problem of one line (wrong number of fields, a blank line, a timestamp that is not one, text where a number
  belongs) stays with that row: the value is NaN/NaT, the problem is in ``parse_problem`` and the line's text in
  ``raw_line``, so that validation quarantines it with a reason and the rest of the file is read.

Fast path: pyarrow's typed CSV reader (about 0.1 s for a year of telemetry). Only when it refuses the file do
we take the slow path, which reads line by line (for now the whole file: a corrupted year is not yet as fast as
a clean one).

Both quoted and unquoted headers and both CRLF and LF line endings are accepted (the real files have both), and a
leading byte-order mark. Columns are matched by name, in any order; columns the table does not use are ignored and
reported (``frame.attrs["extra_columns"]``); a missing required column is an error. Timestamps are the Kaggle
format (naive, UTC) or ISO 8601 (``T``, ``Z``, ``+HH:MM``; converted to UTC).
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from pm_assets.core.schema import TIMESTAMP_FORMAT, TableSpec

#: Columns the parser adds to every table.
LINE_COLUMN = "source_line"
PROBLEM_COLUMN = "parse_problem"
#: The raw text of a line that had a problem ("" for clean lines): a quarantined row can be recovered as it was.
RAW_COLUMN = "raw_line"
BOM = "\ufeff"
#: How many offending lines an error message quotes.
MAX_QUOTED_LINES = 5
#: Spellings the fast reader takes as a missing number ("", "NaN", "NA", ...): the slow path must agree.
NULL_SPELLINGS = frozenset(pacsv.ConvertOptions().null_values)


class SourceFileError(ValueError):
    """A source file that cannot be read; the message names the file, the line and the problem."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None):
        self.path, self.problem, self.line = Path(path), problem, line
        where = f"{self.path}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {problem}")


def find_source_file(raw_dir: str | Path, spec: TableSpec) -> Path:
    """The file for ``spec`` in ``raw_dir``: ``<stem>.csv`` or ``<stem>.csv.gz``, exactly one of them."""
    raw_dir = Path(raw_dir)
    found = [p for p in (raw_dir / f"{spec.file_stem}.csv", raw_dir / f"{spec.file_stem}.csv.gz") if p.exists()]
    if not found:
        raise FileNotFoundError(
            f"{spec.name}: no {spec.file_stem}.csv or {spec.file_stem}.csv.gz in {raw_dir} "
            "(see data/README.md, or run `pm-assets simulate`)"
        )
    if len(found) > 1:
        raise SourceFileError(found[0], f"both {found[0].name} and {found[1].name} exist; keep one of them")
    return found[0]


def read_text(path: str | Path) -> str:
    """The file's text (gzip when the name ends in .gz), or a SourceFileError saying why not."""
    path = Path(path)
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except FileNotFoundError:
        raise
    except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt gzip
        raise SourceFileError(path, f"cannot decompress ({exc})") from exc
    try:
        return data.decode("utf-8").removeprefix(BOM)  # a byte-order mark, as Excel and Windows exports write
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise SourceFileError(path, f"not UTF-8 text (byte {exc.start})", line) from exc


def read_header(path: Path, text: str, spec: TableSpec) -> list[str]:
    """The file's header (quoted or not), checked: every column of ``spec`` is there, by name, in any order.
    Columns the spec does not know are allowed (an export may add a sensor): the caller reports them."""
    first = text.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        raise SourceFileError(path, "empty file: expected the header " + ",".join(spec.columns), 1)
    header = [c.strip() for c in next(csv.reader([first]))]
    if header == list(spec.columns):
        return header
    if len(header) == 1 and len(spec.columns) > 1:
        guess = next((d for d in (";", "\t", "|") if d in first), None)
        hint = f" (found '{guess}' as delimiter?)" if guess else ""
        raise SourceFileError(path, f"header is not comma-separated{hint}: {first!r}", 1)
    missing = [c for c in spec.columns if c not in header]
    if missing:
        raise SourceFileError(path, f"header {header} lacks the required column(s) {missing}", 1)
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        raise SourceFileError(path, f"header {header} names column(s) {repeated} more than once", 1)
    return header


def extra_columns(header: list[str], spec: TableSpec) -> list[str]:
    """Columns of a header that the table does not use (ignored, and reported)."""
    return [c for c in header if c not in spec.columns]


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps as naive UTC: the Kaggle format ``YYYY-MM-DD HH:MM:SS`` (UTC, as documented), or ISO 8601 with a
    ``T``, a ``Z`` or a ``+HH:MM`` offset (converted to UTC). Anything else, impossible dates included, is NaT."""
    parsed = pd.to_datetime(values, format=TIMESTAMP_FORMAT, errors="coerce")
    retry = parsed.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if retry.any():  # only the rows the Kaggle format refused: a clean file pays nothing
        iso = pd.to_datetime(values[retry], format="ISO8601", errors="coerce", utc=True)
        parsed = parsed.astype("datetime64[ns]")
        parsed[retry] = iso.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return parsed


def _arrow_types(spec: TableSpec) -> dict[str, pa.DataType]:
    # Timestamps are read as text and parsed by pandas, as in the slow path: pyarrow's strptime rolls an
    # impossible date over (2015-02-30 becomes 2015-03-02) instead of refusing it.
    kind_type = {"timestamp": pa.string(), "id": pa.int64(), "int": pa.int64(), "float": pa.float64()}
    return {c: kind_type.get(spec.kinds[c], pa.string()) for c in spec.columns}


def _fast_parse(text: str, spec: TableSpec, header: list[str]) -> pd.DataFrame:
    table = pacsv.read_csv(
        io.BytesIO(text.encode("utf-8")),
        read_options=pacsv.ReadOptions(column_names=header, skip_rows=1),
        parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
        convert_options=pacsv.ConvertOptions(
            column_types=_arrow_types(spec),
            include_columns=list(spec.columns),  # by name, in the spec's order; other columns are not converted
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
        ),
    )
    frame = table.to_pandas()
    if spec.time_column:
        times = parse_timestamps(frame[spec.time_column])
        if times.isna().any():
            raise pa.ArrowInvalid("empty or unparseable timestamp")  # the slow path names the line
        frame[spec.time_column] = times
    frame[PROBLEM_COLUMN] = ""
    return frame


def _slow_parse(path: Path, text: str, spec: TableSpec, header: list[str]) -> pd.DataFrame:
    """Line-by-line parse of a file the fast reader refused: every problem stays with its row.

    A line with the wrong number of fields or a blank line becomes a row whose values are missing (its timestamp
    is still read when the line has one where the header says, so that the row lands in its day's quarantine), an
    unparseable timestamp or number is a problem of that row; each such row keeps its physical line number and its
    raw text (``raw_line``), so nothing of the file is lost and a fixed file can be dropped again."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it starts no new one
    width = len(header)
    time_at = header.index(spec.time_column) if spec.time_column else None
    rows, numbers, raw_lines, shape_problems = [], [], [], []
    for number, line in enumerate(lines[1:], start=2):
        line = line.removesuffix("\r")
        fields = next(csv.reader([line])) if line.strip() else []
        problem, raw = "", ""
        if len(fields) != width:
            problem = f"expected {width} fields, found {len(fields)}: {fields!r}" if fields else "blank line"
            raw = line
            kept = [None] * width
            if time_at is not None and time_at < len(fields):
                kept[time_at] = fields[time_at]
            fields = kept
        rows.append(fields)
        numbers.append(number)
        raw_lines.append(raw)
        shape_problems.append(problem)
    raw_frame = pd.DataFrame(rows, columns=header, dtype=object)[list(spec.columns)]
    frame = pd.DataFrame(index=raw_frame.index)
    shape = pd.Series(shape_problems, index=raw_frame.index, dtype=object)
    problems = pd.Series("", index=raw_frame.index, dtype=object)
    for col in spec.columns:
        kind, values = spec.kinds[col], raw_frame[col]
        if kind == "timestamp":
            parsed = parse_timestamps(values)
            bad = parsed.isna() & (shape == "")
            empty = values.isna() | (values.astype(str).str.strip() == "")
            problems[bad & empty] += f"{col}: missing timestamp; "
            problems[bad & ~empty] += f"{col}: not a timestamp " + values[bad & ~empty].map(repr) + "; "
            frame[col] = parsed
        elif kind in ("id", "int", "float"):
            parsed = pd.to_numeric(values, errors="coerce")
            if kind != "float":
                parsed = parsed.where(parsed == np.floor(parsed))  # 1.5 is no id
            frame[col] = parsed.astype("float64")
            bad = parsed.isna() & ~values.fillna("").str.strip().isin(NULL_SPELLINGS) & (shape == "")
            problems[bad] += f"{col}: not {'a number' if kind == 'float' else 'an integer'} " + values[bad].map(repr) + "; "
        else:
            frame[col] = values.where(values != "", None)
    problems = problems.str.rstrip("; ")
    frame[PROBLEM_COLUMN] = shape.where(shape != "", problems)
    frame[LINE_COLUMN] = np.asarray(numbers, dtype=np.int64)
    # the raw text of every row with a problem, so that a quarantined row can be recovered as it was
    with_problem = frame[PROBLEM_COLUMN] != ""
    raw_text = pd.Series(raw_lines, index=frame.index, dtype=object)
    raw_text[with_problem & (raw_text == "")] = [lines[n - 1].removesuffix("\r") for n in frame.loc[
        with_problem & (raw_text == ""), LINE_COLUMN]]
    frame[RAW_COLUMN] = raw_text
    return frame


def read_source_csv(path: str | Path, spec: TableSpec) -> pd.DataFrame:
    """Parse one Kaggle file into a frame with the spec's columns plus ``source_line`` and ``parse_problem``.

    Values are not yet validated: numbers may be NaN (missing or unparseable, the reason in ``parse_problem``),
    category values may be outside their domain, ids may be unknown. See :mod:`pm_assets.core.validation`.
    """
    path = Path(path)
    text = read_text(path)
    header = read_header(path, text, spec)
    try:
        frame = _fast_parse(text, spec, header)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        frame = _slow_parse(path, text, spec, header)
    lines = frame.pop(LINE_COLUMN) if LINE_COLUMN in frame else np.arange(2, len(frame) + 2, dtype=np.int64)
    frame.insert(len(spec.columns), LINE_COLUMN, np.asarray(lines, dtype=np.int64))
    if RAW_COLUMN not in frame:
        frame[RAW_COLUMN] = ""  # the fast path read every line cleanly
    for col in spec.columns:
        kind = spec.kinds[col]
        if kind == "timestamp":
            frame[col] = frame[col].astype("datetime64[ns]")
        elif kind in ("id", "int", "float"):
            frame[col] = frame[col].astype("float64")  # NaN-capable until validated
        else:
            frame[col] = frame[col].astype(object)
    frame.attrs["extra_columns"] = extra_columns(header, spec)
    return frame
