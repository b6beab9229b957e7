"""Reading the Kaggle CSV files: strict about structure, precise about where a problem is.

Two levels of bad input:

- a file that cannot be read at all (missing, empty, truncated gzip, not UTF-8, wrong delimiter, a required
  column missing or repeated) raises :class:`SourceFileError` naming the file, the line and the problem;
- a problem of one line (wrong number of fields, a blank line, a timestamp that is not one, text where a number
  belongs, NUL bytes, the header repeated mid-file) stays with that row: the value is NaN/NaT, the problem is in
  ``parse_problem`` and the line's text in ``raw_line``, so that validation quarantines it with a reason and the
  rest of the file is read.

One reader for clean and corrupted files: pyarrow's typed CSV reader, single-threaded (on two cores threads gain
nothing, and only then does it number the lines it refuses). A line with the wrong number of fields is handed to
our ``invalid_row_handler`` and parsed again alone (:func:`_parse_lines`); when a column holds a value that is no
number, that column is read as text and converted with pyarrow compute, the bad values found by one vectorized
test. So corruption costs work only where it occurs. Should pyarrow join lines (a stray quote), the file's line
count tells, and the whole file is read line by line (:func:`_parse_lines` again).

Both quoted and unquoted headers and both CRLF and LF line endings are accepted (the real files have both), and a
leading byte-order mark. Columns are matched by name, in any order; columns the table does not use are ignored and
reported (``frame.attrs["extra_columns"]``); a missing required column is an error. Timestamps are the Kaggle
format (naive, UTC) or ISO 8601 (``T``, ``Z``, ``+HH:MM``; converted to UTC). Numbers are what pyarrow reads
(``1e3``, ``-0.5``, ``inf``); ``NaN``, ``null``, ``NA`` and the other spellings of pyarrow's default null values
are a missing value; decimal commas and thousands separators are not guessed (``'1,5'`` is no number).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from pm_assets.core.schema import TIMESTAMP_FORMAT, TableSpec

#: Columns the parser adds to every table.
LINE_COLUMN = "source_line"
PROBLEM_COLUMN = "parse_problem"
#: The raw text of a line that had a problem ("" for clean lines): a quarantined row can be recovered as it was.
RAW_COLUMN = "raw_line"
BOM = b"\xef\xbb\xbf"
#: Spellings the reader takes as a missing number ("", "NaN", "NA", "null", ...), on every path.
NULL_SPELLINGS = frozenset(pacsv.ConvertOptions().null_values)
#: A number as pyarrow's reader writes it (what the text fallback accepts); anything else is "not a number".
NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$|^\s*[-+]?(inf|Inf|INF|infinity|Infinity)\s*$"
#: What a line that is no row of the table is (the start of its problem).
SHAPE_PROBLEMS = (
    "the line holds NUL bytes",
    "blank line",
    "the header repeated mid-file (two exports joined?)",
    "expected",
)
#: Characters of a raw line quoted in a problem's reason (the whole line stays in ``raw_line``).
QUOTED_CHARS = 120


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


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes (decompressed when the name ends in .gz, without a byte-order mark), checked to be UTF-8
    text, or a SourceFileError saying why not."""
    path = Path(path)
    if path.is_dir():
        raise SourceFileError(path, "is a directory, not a file")
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
    except FileNotFoundError:
        raise
    except (EOFError, OSError, zlib.error) as exc:  # truncated or corrupt gzip, a symlink loop, no permission
        problem = (
            "cannot decompress" if path.suffix == ".gz" and not isinstance(exc, PermissionError) else "cannot read"
        )
        raise SourceFileError(path, f"{problem} ({exc})") from exc
    data = data.removeprefix(BOM)  # a byte-order mark, as Excel and Windows exports write
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 16 * 2**20  # checked a slice at a time: the text of a large file is never all in memory
    for start in range(0, max(len(data), 1), step):
        try:
            decoder.decode(data[start : start + step], final=start + step >= len(data))
        except UnicodeDecodeError as exc:
            at = _first_bad_byte(data)  # the rare error path: the exact byte as one decode finds it
            line = data[:at].count(b"\n") + 1
            byte = data[at : at + 1]
            raise SourceFileError(
                path, f"not UTF-8 text (byte {at}, {byte!r}: a Windows-1252 or Latin-1 export? save it as UTF-8)", line
            ) from exc
    return data


def _first_bad_byte(data: bytes) -> int:
    """Where ``data`` stops being UTF-8 (it is known not to be)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return len(data)


def read_header(path: Path, first_line: str, spec: TableSpec) -> list[str]:
    """The file's header (quoted or not), checked: every column of ``spec`` is there, by name, in any order.
    Columns the spec does not know are allowed (an export may add a sensor): the caller reports them."""
    first = first_line.split("\n", 1)[0].rstrip("\r")
    if not first.strip():
        raise SourceFileError(path, "empty file: expected the header " + ",".join(spec.columns), 1)
    header = [c.strip() for c in next(csv.reader([first]))]
    if header == list(spec.columns):
        return header
    if len(header) == 1 and len(spec.columns) > 1:
        guess = next((d for d in (";", "\t", "|") if d in first), None)
        hint = f" (found '{guess}' as delimiter?)" if guess else ""
        raise SourceFileError(path, f"header is not comma-separated{hint}: {first[:QUOTED_CHARS]!r}", 1)
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
    parsed = pd.to_datetime(values, format=TIMESTAMP_FORMAT, errors="coerce").astype("datetime64[ns]")
    nat = parsed.isna().to_numpy()
    if nat.any():  # only the rows the Kaggle format refused: a clean file pays nothing
        refused = values[nat]
        retry = refused.notna() & (refused.astype(str).str.strip() != "")
        if retry.any():
            iso = pd.to_datetime(refused[retry], format="ISO8601", errors="coerce", utc=True)
            parsed.loc[retry[retry].index] = iso.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]")
    return parsed


def _timestamps(values: pa.Array) -> np.ndarray:
    """:func:`parse_timestamps` of a text column, by pyarrow where that is certain: its strptime reads the Kaggle
    format, and a row whose date does not read back the same (an impossible date rolled over, 2015-02-30 as
    2015-03-02) or that it refused is parsed by pandas."""
    parsed = pc.strptime(values, format=TIMESTAMP_FORMAT, unit="ns", error_is_null=True)
    same = pc.equal(pc.utf8_slice_codeunits(values, 0, 10), pc.cast(pc.cast(parsed, pa.date32()), pa.string()))
    out = parsed.to_numpy(zero_copy_only=False).astype("datetime64[ns]")
    doubt = np.flatnonzero(~pc.fill_null(same, False).to_numpy(zero_copy_only=False))
    if len(doubt):
        out[doubt] = parse_timestamps(values.take(pa.array(doubt, pa.int64())).to_pandas()).to_numpy()
    return out


def _quote(text: str) -> str:
    return repr(text if len(text) <= QUOTED_CHARS else text[:QUOTED_CHARS] + "...")


# --- converting columns (one definition for the reader's columns and for lines parsed alone) ------------------


def _convert(values: pa.Array, kind: str, column: str) -> tuple[np.ndarray | pd.Series, np.ndarray, list[str]]:
    """(values as the parser returns them, positions with a problem, their problems) for one column of text or of
    already typed values. Nulls (and the null spellings) are missing values, not problems."""
    if kind == "timestamp":
        values = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        parsed = _timestamps(values)
        bad = np.flatnonzero(np.isnat(parsed))
        problems = []
        for value in values.take(pa.array(bad, pa.int64())).to_pylist():
            empty = value is None or not value.strip()
            problems.append(f"{column}: missing timestamp" if empty else f"{column}: not a timestamp {_quote(value)}")
        return parsed, bad, problems
    if kind in ("id", "int", "float"):
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            ok = pc.fill_null(pc.match_substring_regex(values, NUMBER), True).to_numpy(zero_copy_only=False)
            numbers = pc.cast(pc.utf8_trim_whitespace(pc.if_else(pa.array(ok), values, None)), pa.float64())
            bad = ~ok
        else:
            numbers, bad = pc.cast(values, pa.float64()), np.zeros(len(values), bool)
        out = numbers.to_numpy(zero_copy_only=False).astype("float64")
        if kind != "float":
            fractional = np.isfinite(out) & (out != np.floor(out)) | np.isinf(out)
            bad |= fractional  # 1.5 is no id
            out[fractional] = np.nan
        positions = np.flatnonzero(bad)
        what = "a number" if kind == "float" else "an integer"
        problems = [f"{column}: not {what} {_quote(str(values[int(p)].as_py()))}" for p in positions]
        return out, positions, problems
    return (
        np.asarray(values.to_pandas(), dtype=object)
        if isinstance(values, (pa.Array, pa.ChunkedArray))
        else np.asarray(values, dtype=object),
        np.zeros(0, np.int64),
        [],
    )


def _typed_frame(columns: dict, spec: TableSpec, shape: list[str] | None = None) -> pd.DataFrame:
    """The spec's columns converted, with ``parse_problem`` holding every column's problems of a row (a row whose
    line has the wrong shape, ``shape[i]`` not empty, has that one problem)."""
    n = len(next(iter(columns.values())))
    problems: dict[int, list[str]] = {i: [p] for i, p in enumerate(shape or []) if p}
    shaped = set(problems)
    frame = {}
    for col in spec.columns:
        values, bad, messages = _convert(columns[col], spec.kinds[col], col)
        frame[col] = values
        for p, m in zip(bad.tolist(), messages):
            if p not in shaped:
                problems.setdefault(p, []).append(m)
    out = pd.DataFrame(frame)
    column = np.full(n, "", dtype=object)
    for p, messages in problems.items():
        column[p] = "; ".join(messages)
    out[PROBLEM_COLUMN] = column
    return out


# --- lines parsed alone --------------------------------------------------------------------------------------


def _parse_lines(lines: list[tuple[int, str]], spec: TableSpec, header: list[str]) -> pd.DataFrame:
    """Parse lines one by one (those the reader refused, or a whole file it cannot number): every problem stays
    with its row, which keeps its physical line number and raw text (``raw_line``).

    A line with the wrong number of fields, a blank line, a line with NUL bytes and the header repeated mid-file
    become rows whose values are missing (the timestamp is still read when the line has one where the header says,
    so that the row lands in its day's quarantine); a value that is no timestamp or no number is a problem of that
    row."""
    width = len(header)
    time_at = header.index(spec.time_column) if spec.time_column else None
    rows, shape = [], []
    for _, line in lines:
        fields = _fields(line)
        problem = ""
        if "\x00" in line:
            problem = SHAPE_PROBLEMS[0]
        elif not line.strip():
            problem = SHAPE_PROBLEMS[1]
        elif [f.strip() for f in fields] == header:
            problem = SHAPE_PROBLEMS[2]
        elif len(fields) != width:
            problem = f"{SHAPE_PROBLEMS[3]} {width} fields, found {len(fields)}: {_quote(line)}"
        if problem:
            kept = [None] * width
            if time_at is not None and time_at < len(fields) and "\x00" not in line and fields != header:
                kept[time_at] = fields[time_at]
            fields = kept
        rows.append(
            [
                None if f is not None and f.strip() in NULL_SPELLINGS and f.strip() != "" and i != time_at else f
                for i, f in enumerate(fields)
            ]
        )
        shape.append(problem)
    text = {col: pa.array([r[header.index(col)] for r in rows], pa.string()) for col in spec.columns}
    frame = _typed_frame(text, spec, shape)
    frame[LINE_COLUMN] = np.asarray([n for n, _ in lines], dtype=np.int64)
    keep = (frame[PROBLEM_COLUMN] != "").to_numpy() | _any_missing(frame, spec) if len(frame) else np.zeros(0, bool)
    frame[RAW_COLUMN] = np.where(keep, np.asarray([line for _, line in lines], dtype=object), "")
    return frame


def _fields(line: str) -> list[str]:
    if not line.strip():
        return []
    try:
        return next(csv.reader([line.replace("\x00", "")]))
    except csv.Error:  # a field longer than the csv module's limit: count the commas
        return line.split(",")


# --- the reader ----------------------------------------------------------------------------------------------


class _Unnumbered(Exception):
    """The reader joined lines (a stray quote): its rows cannot be given their line numbers."""


def _read_arrow(data: bytes, spec: TableSpec, header: list[str], text_columns: frozenset[str], threads: bool):
    """(table of the spec's columns, refused rows as (first line number, text)), by pyarrow. Only the
    single-threaded reader numbers the rows it refuses (the threaded one gives None)."""
    types = {"timestamp": pa.string(), "id": pa.int64(), "int": pa.int64(), "float": pa.float64()}
    # Timestamps are read as text and parsed by pandas: pyarrow's strptime rolls an impossible date over
    # (2015-02-30 becomes 2015-03-02) instead of refusing it.
    column_types = {
        c: pa.string() if c in text_columns else types.get(spec.kinds[c], pa.string()) for c in spec.columns
    }
    block_size = 1 << 20
    while True:
        refused = []

        def refuse(row, refused=refused) -> str:
            refused.append((row.number, row.text))
            return "skip"

        try:
            table = pacsv.read_csv(
                io.BytesIO(data),
                read_options=pacsv.ReadOptions(
                    column_names=header, skip_rows=1, use_threads=threads, block_size=block_size
                ),
                parse_options=pacsv.ParseOptions(ignore_empty_lines=False, invalid_row_handler=refuse),
                convert_options=pacsv.ConvertOptions(
                    column_types=column_types,
                    include_columns=list(spec.columns),
                    strings_can_be_null=True,
                    quoted_strings_can_be_null=False,
                ),
            )
            return table, refused
        except pa.ArrowInvalid as exc:
            if "straddl" in str(exc) and block_size < len(data):  # a line longer than a block
                block_size = len(data) + 1
                continue
            raise


def _hide_repeated_headers(data: bytes) -> bytes:
    """``data`` with each later copy of its header line overwritten by one unreadable field of the same length (so
    the reader refuses it with the others, without reading every number column as text for it). A copy this misses
    (at the very end, or right after another) is still found, the slower way."""
    end = data.find(b"\n")
    line = data[:end].rstrip(b"\r") if end > 0 else b""
    if not line or data.find(b"\n" + line, end) < 0:
        return data
    eol = data[len(line) : len(line) + 1]  # b"\r" or b"\n", as the header ends
    return data.replace(b"\n" + line + eol, b"\n" + b"\x01" * len(line) + eol)


def _arrow_parse(data: bytes, spec: TableSpec, header: list[str]) -> pd.DataFrame:
    """The file by pyarrow, lines it refused parsed alone; raises _Unnumbered if lines cannot be numbered."""
    readable = _hide_repeated_headers(data)
    text_columns: frozenset[str] = frozenset()
    # First threaded: as fast as the serial reader on a clean file, and it stops at a bad value in a few ms (the
    # serial one reads the whole file first). Once anything is wrong, serial, to know the refused lines' numbers.
    threads = True
    while True:
        try:
            table, refused = _read_arrow(readable, spec, header, text_columns, threads)
            if refused and threads:
                threads = False
                continue
            break
        except pa.ArrowInvalid as exc:  # "In CSV column #5: ... CSV conversion error to double: invalid value 'x'"
            found = re.search(r"CSV column #(\d+)", str(exc))
            column = header[int(found.group(1))] if found and int(found.group(1)) < len(header) else None
            if "conversion error" not in str(exc) or column is None or column in text_columns:
                raise
            text_columns |= {column}  # only that column is read as text, and converted below
            threads = False
    frame = _typed_frame({c: table[c].combine_chunks() for c in spec.columns}, spec)
    # rows with a problem or a missing value keep their text ("NaN", "null", a blank line: what the file said)
    with_problem = (frame[PROBLEM_COLUMN] != "").to_numpy() | _any_missing(frame, spec)
    irregular = bool(refused) or bool(with_problem.any())
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10) if irregular else None  # where each line ends
    # every physical line is a row or part of a refused row: else pyarrow joined lines (a stray quote) and the
    # rows cannot be numbered
    physical = (len(ends) if irregular else data.count(b"\n")) + (0 if data.endswith(b"\n") else 1) - 1
    consumed = np.zeros(max(physical, 0) + 2, bool)
    refused_lines = []
    for number, text in refused:
        count = text.count("\n") + 1
        consumed[number : number + count] = True
        refused_lines.extend(range(number, number + count))
    numbers = np.flatnonzero(~consumed[2:]) + 2
    if len(numbers) != table.num_rows:
        raise _Unnumbered()
    frame[LINE_COLUMN] = numbers
    frame[RAW_COLUMN] = ""
    if not irregular:
        return frame
    flagged = numbers[with_problem]
    texts = _lines(data, np.concatenate([flagged, np.asarray(refused_lines, dtype=np.int64)]), ends)
    if len(flagged):
        frame.loc[with_problem, RAW_COLUMN] = texts[: len(flagged)]
        # a blank line reads as a row of nulls, NUL bytes as odd values: say what the line is, as when it is parsed
        # alone
        blank = np.logical_and.reduce([frame[c].isna().to_numpy() for c in spec.columns])[with_problem]
        odd = np.flatnonzero(blank | np.array(["\x00" in t for t in texts[: len(flagged)]], dtype=bool))
        if len(odd):
            again = _parse_lines([(flagged[i], texts[i]) for i in odd], spec, header)
            columns = [*spec.columns, PROBLEM_COLUMN]
            frame.loc[frame.index[with_problem][odd], columns] = again[columns].to_numpy()
    if refused_lines:
        lines = _parse_lines(list(zip(refused_lines, texts[len(flagged) :])), spec, header)
        frame = pd.concat([frame, lines], ignore_index=True).sort_values(LINE_COLUMN, kind="stable", ignore_index=True)
    return frame


def _any_missing(frame: pd.DataFrame, spec: TableSpec) -> np.ndarray:
    """Rows with a missing value (a blank line reads as a row of them)."""
    return np.logical_or.reduce([frame[col].isna().to_numpy() for col in spec.columns])


def _lines(data: bytes, numbers: np.ndarray, ends: np.ndarray) -> list[str]:
    """The text of some physical lines (1-based numbers), without their line ending; ``ends``: where each line ends
    (the positions of the newlines)."""
    starts = np.concatenate([[0], ends + 1])
    ends = np.concatenate([ends, [len(data)]])
    index = np.asarray(numbers, dtype=np.int64) - 1
    joined = b"\n".join([data[a:b].rstrip(b"\r") for a, b in zip(starts[index].tolist(), ends[index].tolist())])
    return joined.decode("utf-8").split("\n") if len(index) else []


def _all_lines(data: bytes) -> list[tuple[int, str]]:
    lines = data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it starts no new one
    return [(number, line.removesuffix("\r")) for number, line in enumerate(lines[1:], start=2)]


def read_source_csv(path: str | Path, spec: TableSpec) -> pd.DataFrame:
    """Parse one Kaggle file into a frame with the spec's columns plus ``source_line``, ``parse_problem`` and
    ``raw_line``.

    Values are not yet validated: numbers may be NaN (missing or unparseable, the reason in ``parse_problem``),
    category values may be outside their domain, ids may be unknown. See :mod:`pm_assets.core.validation`.
    """
    path = Path(path)
    data = read_bytes(path)
    return _parsed(data, spec, _header_of(path, data, spec))


#: Bytes of a source file parsed at once by :func:`read_source_pieces` (whole lines).
PIECE_BYTES = 64 * 2**20


def read_source_pieces(path: str | Path, spec: TableSpec, piece_bytes: int = PIECE_BYTES):
    """:func:`read_source_csv` in pieces of whole lines, about ``piece_bytes`` each, so that a large file's parsed
    rows are never all in memory at once: a generator of frames whose rows carry their line numbers in the file.
    Concatenated, they are the frame :func:`read_source_csv` gives (asserted in the tests)."""
    path = Path(path)
    data = read_bytes(path)
    header = _header_of(path, data, spec)
    end = data.find(b"\n")
    if end < 0 or len(data) - end - 1 <= piece_bytes:
        yield _parsed(data, spec, header)
        return
    head, start, lines_before = data[: end + 1], end + 1, 0
    while start < len(data):
        stop = data.find(b"\n", start + piece_bytes)
        stop = len(data) if stop < 0 else stop + 1
        frame = _parsed(head + data[start:stop], spec, header)  # the header, then the piece's lines
        frame[LINE_COLUMN] += lines_before
        lines_before += data.count(b"\n", start, stop)
        start = stop
        yield frame


def _header_of(path: Path, data: bytes, spec: TableSpec) -> list[str]:
    end = data.find(b"\n")
    return read_header(path, data[: end if end >= 0 else len(data)].decode("utf-8"), spec)


def _parsed(data: bytes, spec: TableSpec, header: list[str]) -> pd.DataFrame:
    end = data.find(b"\n")
    try:
        frame = _arrow_parse(data, spec, header)
    except (_Unnumbered, pa.ArrowInvalid, pa.ArrowTypeError):
        frame = _parse_lines(_all_lines(data), spec, header) if end >= 0 else _parse_lines([], spec, header)
    frame = frame[[*spec.columns, LINE_COLUMN, PROBLEM_COLUMN, RAW_COLUMN]]
    for col in spec.columns:
        kind = spec.kinds[col]
        if kind == "timestamp":
            frame[col] = frame[col].astype("datetime64[ns]")
        elif kind in ("id", "int", "float"):
            frame[col] = frame[col].astype("float64")  # NaN-capable until validated
        else:
            frame[col] = frame[col].astype(object)
    frame[LINE_COLUMN] = frame[LINE_COLUMN].astype("int64")
    frame.attrs["extra_columns"] = extra_columns(header, spec)
    return frame
