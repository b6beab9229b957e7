"""Timing helper shared by the benchmark scripts."""

import time


def best_of(repeat: int, fn):
    """(fastest wall-clock seconds over ``repeat`` calls, the last call's result)."""
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - started)
    return min(times), value
