"""The catch-up rule (which daily partitions are out of date) against a naive per-partition reference."""

from __future__ import annotations

import numpy as np
import pytest

from pm_assets.core.catchup import (
    Dependency,
    _window_max,
    _window_max_fast,
    content_changes,
    next_stage,
    out_of_date,
    ranges,
)


@pytest.mark.parametrize("start_offset, end_offset", [(0, 0), (-1, 0), (0, 2), (-14, 0), (-73, 0), (-366, 0), (-3, 4)])
def test_window_max_matches_a_naive_loop(start_offset, end_offset):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, size=400) * (rng.random(400) < 0.7)
    naive = np.array(
        [
            max([ids[j] for j in range(i + start_offset, i + end_offset + 1) if 0 <= j < len(ids)] or [0])
            for i in range(len(ids))
        ]
    )
    np.testing.assert_array_equal(_window_max(ids, start_offset, end_offset), naive)
    np.testing.assert_array_equal(_window_max_fast(ids, start_offset, end_offset), naive)


DEPS = {"b": [Dependency("a", -1, 0)], "c": [Dependency("b")], "d": [Dependency("a", 0, 1), Dependency("b")]}
ORDER = ["b", "c", "d"]


def naive_out_of_date(latest, n, changed=None):
    """Partition by partition, in order: stale if an input changed after it or is pending; due if its own day has an
    input."""
    changed = latest if changed is None else changed
    result, pending = {}, {}
    for child in ORDER:
        mask = []
        for i in range(n):
            inputs = [
                (dep.parent, j)
                for dep in DEPS[child]
                for j in range(i + dep.start_offset, i + dep.end_offset + 1)
                if 0 <= j < n
            ]
            newest = max([np.inf if pending.get((p, j)) else changed[p][j] for p, j in inputs] or [0])
            own = latest[child][i]
            same_day = any(
                latest[dep.parent][i] > 0 or pending.get((dep.parent, i))
                for dep in DEPS[child]
                if dep.start_offset <= 0 <= dep.end_offset
            )
            out = (own > 0 and newest > own) or (own == 0 and same_day)
            mask.append(out)
            if out:
                pending[(child, i)] = True
        result[child] = np.array(mask)
    return result


def test_out_of_date_matches_the_naive_rule_on_random_histories():
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = 12
        latest = {name: rng.integers(0, 60, size=n) * (rng.random(n) < 0.8) for name in "abcd"}
        got = out_of_date(n, latest, DEPS, ORDER)
        want = naive_out_of_date(latest, n)
        for name in ORDER:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_only_a_change_of_content_makes_dependents_out_of_date():
    rng = np.random.default_rng(2)
    for _ in range(50):
        n = 12
        latest = {name: rng.integers(1, 60, size=n) for name in "abcd"}
        # the content last changed at or before the latest write (equal rewrites since then)
        changed = {
            name: np.where(rng.random(n) < 0.5, ids, rng.integers(1, 60, size=n) % ids + 1)
            for name, ids in latest.items()
        }
        got = out_of_date(n, latest, DEPS, ORDER, changed)
        want = naive_out_of_date(latest, n, changed)
        for name in ORDER:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    # a parent written again with equal content after its child: nothing to redo; with new content: redo
    latest = {"a": np.array([9]), "b": np.array([5]), "c": np.array([6]), "d": np.array([7])}
    assert not out_of_date(1, latest, DEPS, ORDER, {**latest, "a": np.array([3])})["b"].any()
    assert out_of_date(1, latest, DEPS, ORDER)["b"].all() and out_of_date(1, latest, DEPS, ORDER)["c"].all()


def test_content_changes_keep_the_first_id_of_each_content():
    state = content_changes(np.array([1, 2, 3, 4, 5]), ["d1", "d2", "d1", "d1", "d2"], ["x", "y", "x", "z", None], {})
    assert state == {"d1": ["z", 4], "d2": [None, 5]}
    assert content_changes(np.array([7]), ["d1"], ["z"], state)["d1"] == ["z", 4]


def test_a_day_without_data_is_not_invented_by_a_lookback():
    latest = {"a": np.array([5, 0, 0]), "b": np.array([6, 0, 0]), "c": np.array([7, 0, 0]), "d": np.array([8, 0, 0])}
    got = out_of_date(3, latest, DEPS, ORDER)
    assert not any(got[name].any() for name in ORDER)  # b of day 2 reads a of day 1 by lookback, but day 2 sent nothing


def test_next_stage_groups_the_first_assets_with_the_same_days():
    days = ["d0", "d1", "d2", "d3"]
    stale = {"b": np.array([0, 1, 1, 0], bool), "c": np.array([0, 1, 1, 0], bool), "d": np.array([1, 1, 1, 1], bool)}
    assert next_stage(days, stale, ORDER) == (["b", "c"], [("d1", "d2")])
    assert next_stage(days, {k: np.zeros(4, bool) for k in ORDER}, ORDER) == ([], [])
    assert ranges(days, np.array([1, 0, 1, 1], bool)) == [("d0", "d0"), ("d2", "d3")]
