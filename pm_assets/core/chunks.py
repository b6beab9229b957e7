"""Computing a range of daily partitions in chunks, so that memory is bounded by a chunk, not the history. No
Dagster import.

A step over a year (a single-run backfill) would otherwise hold every input partition of the year at once. With
these two types it holds one chunk of days plus the lookback that chunk needs:

- :class:`StoredPartitions` is what an input declared ``chunked`` receives: the stored partitions it maps to, not
  read; ``read(first, last)`` reads the days in between.
- :class:`ChunkedFrames` is what such a step returns: its output as an iterator of (days, frame), computed as the
  IO manager consumes it, each chunk written before the next one is computed.

A chunk's result must not depend on where the chunk starts (each day reads its own lookback), so any chunk size
gives the same files, bit for bit (asserted in the tests).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd

from pm_assets.core.parquet_files import concat_partitions

#: Days a step computes at once in a ranged run.
DEFAULT_CHUNK_DAYS = 30


def day_chunks(keys: list[str], days: int = DEFAULT_CHUNK_DAYS) -> list[list[str]]:
    """The partition keys in consecutive runs of at most ``days``."""
    if days < 1:
        raise ValueError(f"chunk days must be at least 1, not {days}")
    return [keys[i : i + days] for i in range(0, len(keys), days)]


def shift_key(key: str, days: int) -> str:
    return (pd.Timestamp(key) + pd.Timedelta(days=days)).strftime("%Y-%m-%d")


@dataclass
class StoredPartitions:
    """An input's stored partitions (daily keys ``YYYY-MM-DD`` with their files), read on demand."""

    asset: str
    paths: dict[str, object]  # key -> path of its file, for the keys present, in key order
    reader: Callable[..., pd.DataFrame]  # (paths, columns=None) -> the frame of those files concatenated in order

    @property
    def keys(self) -> list[str]:
        return list(self.paths)

    _blocks: list = field(default_factory=list, repr=False)  # what read_window read last: [(keys, frame)]

    def read_window(self, first: str, last: str, time_column: str) -> pd.DataFrame:
        """:meth:`read` for a window that moves forward (a chunk and its lookback): the days the previous window
        already read are taken from it instead of their files, so a run reads each file once. ``time_column``
        holds each row's time (the partition's day)."""
        blocks = [(keys, frame) for keys, frame in self._blocks if keys and keys[-1] >= first]
        have = {key for keys, _ in blocks for key in keys}
        new = [key for key in self.paths if first <= key <= last and key not in have]
        if new:
            blocks.append((new, self.reader([self.paths[key] for key in new])))
        self._blocks = blocks
        start, end = pd.Timestamp(first), pd.Timestamp(shift_key(last, 1))
        parts = []
        for keys, frame in blocks:
            if keys[0] >= first and keys[-1] <= last:
                parts.append(frame)
            elif keys[-1] >= first and keys[0] <= last:
                times = frame[time_column]
                parts.append(frame[(times >= start) & (times < end)].reset_index(drop=True))
        return concat_partitions(parts) if parts else self.read(first, last)

    def read(self, first: str, last: str, columns: list[str] | None = None) -> pd.DataFrame:
        """The partitions from ``first`` to ``last`` (inclusive) that are stored, concatenated in order; ``columns``:
        only these."""
        return self.reader([path for key, path in self.paths.items() if first <= key <= last], columns=columns)


@dataclass
class ChunkedFrames:
    """A step's output computed chunk by chunk: ``chunks`` yields (partition keys, frame of those partitions). The
    consumer writes each chunk before asking for the next. ``metadata()`` (called after the last chunk) gives the
    output's run-level metadata, which is known only then."""

    chunks: Iterable[tuple[list[str], pd.DataFrame]]
    metadata: Callable[[], dict] = field(default=lambda: {})

    def __iter__(self) -> Iterator[tuple[list[str], pd.DataFrame]]:
        return iter(self.chunks)
