"""Which daily partitions are out of date, and which of them to bring up to date first.

The rule, over the daily assets and their partition dependencies (``Dependency``: the child's partition D reads
the parent's partitions D + start_offset .. D + end_offset):

- a partition that was materialized is **stale** when any partition it reads was materialized after it (a later
  event id), or will be brought up to date itself (staleness propagates down the graph);
- a partition never materialized is **due** when a partition it reads *of its own day* exists or is due: data
  arrived for that day. A day nobody sent data for is not invented (its earlier days' lookback alone does not
  make it due).

:func:`next_stage` takes the first assets in topological order that are out of date on exactly the same days, so
that one run (over each contiguous range of those days) brings them up to date in order, and nothing it reads is
still waiting for another run. A day's chain is then two runs: features, scores and worklist of the new day, then
labels and monitoring of the days whose labels matured.

Pure numpy, no Dagster import: event ids in, partition keys out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: A partition being brought up to date counts as newer than anything stored.
PENDING = np.iinfo(np.int64).max


@dataclass(frozen=True)
class Dependency:
    parent: str
    start_offset: int = 0
    end_offset: int = 0


def _window_max(ids: np.ndarray, start_offset: int, end_offset: int) -> np.ndarray:
    """For each day i, the largest id of ``ids`` over days i + start_offset .. i + end_offset (clipped; 0 if none)."""
    n = len(ids)
    out = np.zeros(n, dtype=np.int64)
    for offset in range(start_offset, end_offset + 1):  # offsets are few (at most the lookback's days)
        lo, hi = max(0, -offset), min(n, n - offset)
        if lo < hi:
            np.maximum(out[lo:hi], ids[lo + offset : hi + offset], out=out[lo:hi])
    return out


def _window_max_fast(ids: np.ndarray, start_offset: int, end_offset: int) -> np.ndarray:
    """:func:`_window_max` by a sliding maximum (sparse table), for long lookbacks (a year of replacements)."""
    width = end_offset - start_offset + 1
    if width <= 8:
        return _window_max(ids, start_offset, end_offset)
    n = len(ids)
    padded = np.concatenate([np.zeros(max(0, -start_offset), np.int64), ids, np.zeros(max(0, end_offset), np.int64)])
    table = [padded]
    span = 1
    while span * 2 <= width:
        prev = table[-1]
        table.append(np.maximum(prev[:-span], prev[span:]))
        span *= 2
    level = table[-1]
    base = np.arange(n) + max(0, -start_offset) + start_offset  # index of each window's first day in padded
    return np.maximum(level[base], level[base + width - span])


def out_of_date(
    n_days: int,
    latest: Mapping[str, np.ndarray],
    dependencies: Mapping[str, Sequence[Dependency]],
    order: Sequence[str],
    changed: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Boolean mask per day of every asset in ``order`` (topological; only the children): stale or due.

    ``latest[asset]``: the latest materialization event id of each of ``n_days`` days (0 = never materialized),
    for the children and their parents alike. ``changed[asset]`` (default: ``latest``): the id of the
    materialization at which each day's content last changed. A child is stale when a day it reads *changed*
    after the child's latest materialization: writing equal content again makes nothing stale.
    """
    changed = latest if changed is None else changed
    effective = {name: np.asarray(ids, dtype=np.int64) for name, ids in changed.items()}
    result = {}
    for child in order:
        own = np.asarray(latest.get(child, np.zeros(n_days, np.int64)), dtype=np.int64)
        upstream = np.zeros(n_days, np.int64)
        same_day = np.zeros(n_days, bool)
        for dep in dependencies[child]:
            parent = effective.get(dep.parent, np.zeros(n_days, np.int64))
            upstream = np.maximum(upstream, _window_max_fast(parent, dep.start_offset, dep.end_offset))
            if dep.start_offset <= 0 <= dep.end_offset:
                same_day |= parent > 0
        materialized = own > 0
        mask = (materialized & (upstream > own)) | (~materialized & same_day)
        result[child] = mask
        effective[child] = np.where(mask, PENDING, effective.get(child, own))
    return result


def content_changes(
    ids: np.ndarray, days: Sequence[str], shas: Sequence[str | None], state: dict[str, list]
) -> dict[str, list]:
    """Fold materializations (event ids ascending, their days and content hashes) into ``state`` = {day: [hash,
    id at which that content first appeared]}; a hash of None (not recorded) always counts as a change."""
    for event_id, day, sha in zip(ids, days, shas, strict=True):
        known = state.get(day)
        if sha is None or known is None or known[0] != sha:
            state[day] = [sha, int(event_id)]
    return state


def ranges(days: Sequence[str], mask: np.ndarray) -> list[tuple[str, str]]:
    """The contiguous runs of True in ``mask`` as (first day, last day) pairs."""
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return [(days[s], days[e]) for s, e in zip(starts, ends)]


def next_stage(
    days: Sequence[str], stale: Mapping[str, np.ndarray], order: Sequence[str]
) -> tuple[list[str], list[tuple[str, str]]]:
    """The first assets in ``order`` that are out of date, as long as they are so on exactly the same days, and
    those days as contiguous ranges. ([], []) when everything is up to date."""
    first = next((name for name in order if stale[name].any()), None)
    if first is None:
        return [], []
    group = []
    for name in order[order.index(first) :]:
        if not np.array_equal(stale[name], stale[first]):
            break
        group.append(name)
    return group, ranges(days, stale[first])
