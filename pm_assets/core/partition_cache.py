"""The partition cache: the frames this process wrote last, handed back instead of reading their files again."""

from __future__ import annotations

import os
from collections import OrderedDict

import pandas as pd

from pm_assets.core.locations import is_remote
from pm_assets.core.parquet_files import read_back_table


class RecentPartitions:
    """What this process wrote last for a few assets, handed back instead of reading the same files again.

    A ranged run reads an asset's 366 files again for every downstream asset (features: four times). An entry
    is the Arrow table that was written and the row order of its files; it is used only when the same keys are
    asked for and every file still has the inode, size and mtime it had just after the write (another process
    writing any of them makes it miss). The frame it gives is built as the files would be read back
    (``read_partitions``), and asserted equal to it in the tests.

    Every recall is a deep copy of the kept frame (~30 ms for 292k rows x 60 columns, against seconds to read the
    366 files). A shallow copy would share the kept frame's arrays: under pandas 2.2 without copy-on-write any
    ``df.loc[...] = ...`` of a caller would reach the next one, and even under copy-on-write (pandas 3) a change
    through a categorical's or a datetime column's ``.array`` does.
    """

    def __init__(self, size: int = 6):
        self.size, self._entries = size, OrderedDict()

    @staticmethod
    def _stamps(paths) -> tuple | None:
        if any(is_remote(p) for p in paths):  # no cheap stamp of a blob: always read it
            return None
        try:
            return tuple((st.st_ino, st.st_size, st.st_mtime_ns) for st in (os.stat(p) for p in paths))
        except FileNotFoundError:
            return None

    def forget(self, name) -> None:
        self._entries.pop(name, None)

    def remember(self, name, keys, paths, table, order) -> None:
        """``table`` was written as the files ``paths`` (of partitions ``keys``), its rows ``order`` in file order."""
        self._entries[name] = (tuple(keys), self._stamps(paths), table, order)
        self._entries.move_to_end(name)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def recall(self, name, keys, paths) -> pd.DataFrame | None:
        entry = self._entries.get(name)
        if entry is None or entry[0] != tuple(keys) or entry[1] is None or entry[1] != self._stamps(paths):
            return None
        keys, stamps, table, order = entry
        if not isinstance(table, pd.DataFrame):  # converted on first use, then kept as a frame
            table = read_back_table(table.take(order)).to_pandas()
            self._entries[name] = (keys, stamps, table, None)
        self._entries.move_to_end(name)
        return table.copy(deep=True)  # no caller's change reaches the kept frame, with or without copy-on-write
