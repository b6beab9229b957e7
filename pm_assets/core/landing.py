"""The landing folder: files that arrive, staged once by content hash, read back per day.

Files in the Kaggle format land in one folder at any time (``PdM_telemetry_2026-11-30.csv``, a whole-year
``PdM_maint.csv.gz``, ...). Which table a file holds is said by its name: it contains the table's Kaggle stem
(``PdM_telemetry``, ``PdM_errors``, ``PdM_maint``, ``PdM_failures``, ``PdM_machines``) and ends in ``.csv`` or
``.csv.gz``.

A file is identified by the sha256 of its bytes. Staging parses it once and writes its rows split by UTC day,
``<staging>/<table>/<day>/<ingested_ns>-<sha12>.parquet`` (``all`` instead of a day for the machines table), and
records it in the ledger, ``<staging>/_files/<sha>.json``: name, size, when it was seen and ingested, rows per day,
or why it failed. A file whose hash is in the ledger is never staged again (a re-copied file, under any name), and
a failed file is tried again only when its bytes change (a new hash). A day's rows are the staged chunks of that
day in arrival order, so a late file for an old day adds to it (a repeated key is a duplicate, the first arrival
kept) and a day is read again without opening any file that did not change.

Pure Python, no Dagster import.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import stat
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pm_assets.core.atomic import write_bytes_atomic
from pm_assets.core.locations import sha256_of
from pm_assets.core.parquet_files import read_partitions, write_partitions_atomic
from pm_assets.core.parsing import SourceFileError, read_source_pieces
from pm_assets.core.schema import TABLES, TableSpec

# the file a staged row came from (quarantine reasons name it), and the bucket it was staged in (quarantine is
# split by it: a row whose timestamp could not be read still belongs to a day)
from pm_assets.core.validation import FILE_COLUMN, STAGED_DAY, TIME_PROBLEM, PlausibleTimes

LEDGER_FOLDER = "_files"
#: The staging bucket of an unpartitioned table (machines), and of rows whose day cannot be told.
ALL_ROWS = "all"
UNPLACED = "unplaced"

SUFFIXES = (".csv.gz", ".csv")
DAY_IN_NAME = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})(?!\d)")


@dataclass(frozen=True)
class LandedFile:
    """A file in the landing folder whose name says which table it holds."""

    path: Path
    table: str
    size: int
    mtime_ns: int

    @property
    def name(self) -> str:
        return self.path.name


def table_for_name(name: str) -> TableSpec | None:
    """The table a file name says it holds, or None (not a .csv / .csv.gz, or no Kaggle stem in the name)."""
    if not name.endswith(SUFFIXES) or name.startswith("."):
        return None
    stem = name[: -len(next(s for s in SUFFIXES if name.endswith(s)))]
    # the longest matching stem wins, so a name can never say two tables
    matches = [spec for spec in TABLES.values() if spec.file_stem.lower() in stem.lower()]
    return max(matches, key=lambda s: len(s.file_stem)) if matches else None


def list_landed(landing_dir: str | Path) -> tuple[list[LandedFile], list[str]]:
    """The table files in the landing folder (sorted by name), and the names of other files, which are ignored."""
    landing_dir = Path(landing_dir)
    files, ignored = [], []
    if not landing_dir.is_dir():
        return files, ignored
    for path in sorted(landing_dir.iterdir()):
        if not path.is_file() or path.name.startswith("."):  # temporary files of atomic writers start with a dot
            continue
        spec = table_for_name(path.name)
        if spec is None:
            ignored.append(path.name)
            continue
        info = path.stat()
        files.append(LandedFile(path, spec.name, info.st_size, info.st_mtime_ns))
    return files, ignored


def unusable(landing_dir: str | Path) -> list[tuple[str, str]]:
    """Entries of the landing folder named like a table file that are no file to read, with why: a directory, a
    link to nothing, a loop of links. They are not ignored silently: the readable-files check fails naming them."""
    landing_dir = Path(landing_dir)
    out = []
    if not landing_dir.is_dir():
        return out
    for path in sorted(landing_dir.iterdir()):
        if path.name.startswith(".") or table_for_name(path.name) is None:
            continue
        try:
            mode = os.stat(path).st_mode  # follows links
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                out.append((path.name, "is a loop of symbolic links"))
            elif path.is_symlink():
                out.append((path.name, f"is a link to nothing ({os.readlink(path)})"))
            else:
                out.append((path.name, f"cannot be read: {exc.strerror or exc}"))
            continue
        if stat.S_ISDIR(mode):
            out.append((path.name, "is a directory, not a file"))
        elif not stat.S_ISREG(mode):
            out.append((path.name, "is not a regular file"))
    return out


def declared_day(name: str) -> str | None:
    """The day a file's name says it exports (``PdM_failures_2026-11-30.csv``: 2026-11-30), if it names a valid one."""
    match = DAY_IN_NAME.search(name)
    if not match:
        return None
    try:
        return pd.Timestamp(match.group(1)).strftime("%Y-%m-%d")
    except ValueError:
        return None


def buckets(frame: pd.DataFrame, spec: TableSpec, name: str = "") -> np.ndarray:
    """The staging bucket of each row: its UTC day; for a row whose timestamp could not be read or is not plausible
    (``time_problem``), the day the file's name declares, else ``unplaced``; ``all`` for the machines table."""
    labels, codes = bucket_codes(frame, spec, name)
    return labels.astype(object)[codes]


def bucket_codes(frame: pd.DataFrame, spec: TableSpec, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """:func:`buckets` as the distinct buckets, sorted, and each row's position among them: the rows' days found by
    counting (not by sorting or comparing 8.8 M strings, a year of 1,000 machines' telemetry), each day's name
    formatted once. The day the file's name declares is among the buckets even with no row (a daily export of a day
    without failures says so)."""
    if not spec.time_column:
        return np.array([ALL_ROWS]), np.zeros(len(frame), dtype=np.intp)
    times = frame[spec.time_column]
    homeless = times.isna().to_numpy().copy()
    if TIME_PROBLEM in frame:
        homeless |= (frame[TIME_PROBLEM] != "").to_numpy()
    days = times.to_numpy().astype("datetime64[D]").astype(np.int64)
    placed = days[~homeless]
    first = int(placed.min()) if len(placed) else 0
    present = np.flatnonzero(np.bincount(placed - first)) + first if len(placed) else np.array([], dtype=np.int64)
    named = np.datetime_as_string(present.astype("datetime64[D]"), unit="D").tolist()
    declared, unplaced = declared_day(name), homeless.any()
    labels = sorted(set(named) | ({declared} if declared else set()) | ({declared or UNPLACED} if unplaced else set()))
    position = {label: i for i, label in enumerate(labels)}
    lookup = np.array([position[label] for label in named], dtype=np.intp)
    codes = np.empty(len(frame), dtype=np.intp)
    if len(placed):
        rank = np.zeros(int(present[-1]) - first + 1, dtype=np.intp)
        rank[present - first] = lookup
        codes[~homeless] = rank[placed - first]
    if unplaced:
        codes[homeless] = position[declared or UNPLACED]
    return np.array(labels, dtype=str), codes


def rows_per_day(frame: pd.DataFrame, spec: TableSpec, name: str = "") -> dict[str, int]:
    """Rows of a parsed file per staging bucket (see :func:`buckets`), in order. The day a file's name declares
    counts even with no row: a daily export of a day without failures says so."""
    labels, codes = bucket_codes(frame, spec, name)
    return dict(zip(labels.tolist(), np.bincount(codes, minlength=len(labels)).tolist()))


def file_id(sha: str, name: str) -> str:
    """A landed file's identity: the sha256 of its bytes, and the day its name declares if it declares one.

    Two header-only exports of different days have the same bytes but say different things (no failure on either
    day); a re-copied file (same bytes, same day) has the same identity under any name."""
    day = declared_day(name)
    return sha if day is None else hashlib.sha256(f"{sha}:{day}".encode()).hexdigest()


class Staging:
    """The staged rows and the ledger of every file seen (see the module docstring)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- ledger --------------------------------------------------------------------------------------
    def ledger_path(self, identity: str) -> Path:
        return self.root / LEDGER_FOLDER / f"{identity}.json"

    def entry(self, identity: str) -> dict | None:
        """The ledger entry of a file identity (see :func:`file_id`), or None."""
        path = self.ledger_path(identity)
        return json.loads(path.read_text()) if path.exists() else None

    def entries(self) -> list[dict]:
        """Every ledger entry, in the order the files were ingested (or failed)."""
        folder = self.root / LEDGER_FOLDER
        entries = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(entries, key=lambda e: (e["ingested_ns"], e["id"]))

    def _record(self, entry: dict) -> None:
        write_bytes_atomic(self.ledger_path(entry["id"]), json.dumps(entry, indent=1, sort_keys=True).encode())

    # --- staging -------------------------------------------------------------------------------------
    def entry_for(self, landed: LandedFile, sha: str) -> dict | None:
        return self.entry(file_id(sha, landed.name))

    def stage(self, landed: LandedFile, sha: str | None = None, plausible: PlausibleTimes | None = None) -> dict:
        """Stage one landed file (parse, split by day, write, record); returns its ledger entry.

        ``plausible``: the timestamps a row may have; a row outside gets its reason in ``time_problem`` and is
        staged like a row without a readable timestamp (its declared day, or unplaced), to be quarantined there.

        A file whose hash is already in the ledger is not read again: its existing entry is returned (with this
        name added to the names it was seen under). A file that cannot be read gets a ``failed`` entry whose
        ``error`` names the file and line; nothing of it is staged.
        """
        sha = sha or sha256_of(landed.path)
        with self._lock():  # two runs (or main and a sensor's run) never stage the same file twice
            return self._stage_locked(landed, sha, plausible)

    @contextmanager
    def _lock(self):
        folder = self.root / LEDGER_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _stage_locked(self, landed: LandedFile, sha: str, plausible: PlausibleTimes | None) -> dict:
        identity = file_id(sha, landed.name)
        known = self.entry(identity)
        if known is not None:
            if landed.name not in known["names"]:
                known["names"].append(landed.name)
                self._record(known)
            if known["status"] == "ingested" and not known.get("replaced_older", True):
                return self._supersede(known)  # a crash came between staging it and replacing the older version
            return known
        spec = TABLES[landed.table]
        now = time.time_ns()
        entry = {
            "id": identity,
            "sha256": sha,
            "declared_day": declared_day(landed.name),
            "table": spec.name,
            "name": landed.name,
            "names": [landed.name],
            "bytes": landed.size,
            "ingested_ns": now,
            "ingested_at": pd.Timestamp(now, unit="ns").isoformat(timespec="seconds"),
        }
        written, per_day, rows, implausible, extras = [], {}, 0, 0, []
        try:
            # a large file in pieces of whole lines, each split by day and written before the next is parsed
            for piece, frame in enumerate(read_source_pieces(landed.path, spec)):
                if piece == 0:
                    extras = frame.attrs.get("extra_columns", [])
                if spec.time_column:
                    frame[TIME_PROBLEM] = (
                        plausible.problems(frame[spec.time_column], spec.time_column) if plausible else ""
                    )
                    implausible += int((frame[TIME_PROBLEM] != "").sum())
                labels, codes = bucket_codes(frame, spec, landed.name)
                counts = np.bincount(codes, minlength=len(labels))
                days = dict(zip(labels.tolist(), counts.tolist()))
                frame[FILE_COLUMN] = landed.name
                # stored with the rows (reading a day back needs nothing else): each day's name taken, not formatted
                frame[STAGED_DAY] = pd.Series(pa.array(labels).take(pa.array(codes)), dtype="str", index=frame.index)
                for day in days.keys() - per_day.keys():
                    # chunks of a staging of this file killed before its ledger entry: replaced, not doubled
                    for leftover in (self.root / spec.name / day).glob(f"*-{identity[:12]}*.parquet"):
                        leftover.unlink()
                chunk = f"{now}-{identity[:12]}-{piece:05d}.parquet"  # arrival order within a day: by name
                order = np.argsort(codes, kind="stable")  # days is sorted, empty days included
                ends = np.cumsum(counts)
                bounds = ends - counts
                targets = [self.root / spec.name / day / chunk for day in days]
                write_partitions_atomic(
                    frame, ((target, np.sort(order[lo:hi])) for target, lo, hi in zip(targets, bounds, ends))
                )
                written.extend(targets)
                for day, count in days.items():
                    per_day[day] = per_day.get(day, 0) + count
                rows += len(frame)
        except (SourceFileError, UnicodeDecodeError) as exc:
            for path in written:  # nothing of a file that cannot be read is staged
                path.unlink(missing_ok=True)
            entry.update(status="failed", error=str(exc), rows=0, days={})
            self._record(entry)
            return entry
        entry.update(
            status="ingested",
            error=None,
            rows=rows,
            days=dict(sorted(per_day.items())),
            extra_columns=extras,
            implausible_times=implausible,
            replaced_older=False,
        )
        self._record(entry)  # a file is in the ledger only once all of its rows are staged
        return self._supersede(entry)

    def _supersede(self, entry: dict) -> dict:
        """A new version of a file (same name, other bytes: a corrected re-export) replaces the rows the older
        versions staged for the days it brings, and their rows of no day (``unplaced``). Their other days stay: a
        file rewritten every day under one name keeps the days it no longer holds. A replaced chunk is renamed
        ``.superseded`` (kept for audit, read no more) and its version's ledger entry lists the day."""
        days = set(entry["days"]) | {UNPLACED}
        for older in self.entries():
            if (
                older["id"] == entry["id"]
                or older["status"] != "ingested"
                or older["table"] != entry["table"]
                or entry["name"] not in older["names"]
                or older["ingested_ns"] > entry["ingested_ns"]
            ):
                continue
            replaced = sorted(d for d in older["days"] if d in days and d not in older.get("superseded_days", {}))
            for day in replaced:
                for chunk in (self.root / entry["table"] / day).glob(f"*-{older['id'][:12]}*.parquet"):
                    chunk.rename(chunk.with_suffix(".superseded"))
            if replaced:
                older.setdefault("superseded_days", {}).update(
                    {d: entry["name"] + " " + entry["ingested_at"] for d in replaced}
                )
                self._record(older)
        entry["replaced_older"] = True
        self._record(entry)
        return entry

    # --- reading back --------------------------------------------------------------------------------
    def chunks(self, table: str, day: str) -> list[Path]:
        """The staged chunks of one day (or ``all``) of a table, in arrival order."""
        folder = self.root / table / day
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []

    def days(self, table: str) -> list[str]:
        """The days staged for a table (not the ``unplaced`` or ``all`` buckets)."""
        folder = self.root / table
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_dir() and DAY_IN_NAME.fullmatch(p.name))

    def read(self, table: str, days: Iterable[str]) -> pd.DataFrame:
        """The staged rows of these days (parsed, not yet validated), in day order and arrival order within a day;
        ``source_line``, ``source_file`` and ``staged_day`` say where each came from."""
        paths = [p for day in days for p in self.chunks(table, day)]
        if not paths:
            return empty_staged(TABLES[table])
        return read_partitions(paths).reset_index(drop=True)


def empty_staged(spec: TableSpec) -> pd.DataFrame:
    """A parsed frame with no rows (what :func:`read_source_csv` gives for a header-only file), plus the file column."""
    from pm_assets.core.parsing import LINE_COLUMN, PROBLEM_COLUMN, RAW_COLUMN

    columns = {}
    for col in spec.columns:
        kind = spec.kinds[col]
        columns[col] = pd.Series(
            dtype="datetime64[ns]" if kind == "timestamp" else "float64" if kind in ("id", "int", "float") else object
        )
    columns[LINE_COLUMN] = pd.Series(dtype="int64")
    columns[PROBLEM_COLUMN] = pd.Series(dtype=str)
    columns[RAW_COLUMN] = pd.Series(dtype=str)
    columns[FILE_COLUMN] = pd.Series(dtype=str)
    columns[STAGED_DAY] = pd.Series(dtype=str)
    if spec.time_column:
        columns[TIME_PROBLEM] = pd.Series(dtype=str)
    return pd.DataFrame(columns)


def unreadable(
    entries: list[dict], present: Iterable[str], table: str | None = None, days: Iterable[str] | None = None
) -> list[dict]:
    """The failed files still in the landing folder (``present``: its file names) whose latest version under that
    name failed, of ``table`` (any when None), touching ``days`` (the day the name declares is one of them, or the
    name declares none; any when None). Fixing a file (new bytes, staged) or removing it ends its failure."""
    latest: dict[str, dict] = {}
    for entry in entries:  # in ingestion order: a later version under the same name supersedes
        for name in entry["names"]:
            latest[name] = entry
    present, days = set(present), None if days is None else set(days)
    out = {}
    for name, entry in latest.items():
        if name not in present or entry["status"] != "failed" or (table and entry["table"] != table):
            continue
        if days is None or entry.get("declared_day") is None or entry["declared_day"] in days:
            out[entry["id"]] = entry
    return list(out.values())


def inventory(entries: list[dict], start: str, end: str) -> pd.DataFrame:
    """One row per file in the ledger: what it is, when it came, the days it touched and the rows it brought
    before / inside / after the partition range [start, end) (days as YYYY-MM-DD), or why it failed."""
    rows = []
    for e in entries:
        days = {d: n for d, n in e["days"].items() if d not in (ALL_ROWS, UNPLACED)}
        before = sum(n for d, n in days.items() if d < start)
        after = sum(n for d, n in days.items() if d >= end)
        rows.append(
            {
                "table": e["table"],
                "name": e["name"],
                "id": e["id"],
                "sha256": e["sha256"],
                "bytes": e["bytes"],
                "ingested_at": e["ingested_at"],
                "status": e["status"],
                "rows": e["rows"],
                "first_day": min(days) if days else None,
                "last_day": max(days) if days else None,
                "days": len(days),
                "rows_before_partitions": before,
                "rows_after_partitions": after,
                "rows_unplaced": e["days"].get(UNPLACED, 0),
                "rows_implausible": e.get("implausible_times", 0),
                "days_replaced": len(e.get("superseded_days") or {}),
                "error": e.get("error") or "",
                "extra_columns": ", ".join(e.get("extra_columns") or []),
            }
        )
    columns = [
        "table",
        "name",
        "id",
        "sha256",
        "bytes",
        "ingested_at",
        "status",
        "rows",
        "first_day",
        "last_day",
        "days",
        "rows_before_partitions",
        "rows_after_partitions",
        "rows_unplaced",
        "rows_implausible",
        "days_replaced",
        "error",
        "extra_columns",
    ]
    return pd.DataFrame(rows, columns=columns).astype(
        {
            "rows_before_partitions": "int64",
            "rows_after_partitions": "int64",
            "rows_unplaced": "int64",
            "rows_implausible": "int64",
            "days_replaced": "int64",
        }
    )
