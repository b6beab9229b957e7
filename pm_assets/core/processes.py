"""Processes of this machine: is a process still running, and is it the one that started a given run. No Dagster
import.

A run records which process works on it (its host name and process id). A process id is reused after its process
ends, so "alive" also asks when the process started: a process that started after the run did is not its worker.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

#: This machine, as the runs' worker tags name it.
HOST = socket.gethostname()
#: A process started this long after the run's start still counts as its worker (clock ticks, rounding).
START_SLACK_SECONDS = 5.0


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (signal 0: nothing is sent). A zombie (ended, not yet
    reaped by its parent) is not alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal said it exists


def process_start_time(pid: int) -> float | None:
    """When the process started (seconds since the epoch), from /proc; None where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of stat: start time in clock ticks after boot
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def worker_state(host: str | None, pid: int | None, run_started: float | None) -> tuple[str, str]:
    """("alive" | "dead" | "unknown", why) of the process ``pid`` on ``host`` that works on a run started at
    ``run_started`` (epoch seconds). Only processes of this machine can be checked."""
    if pid is None:
        return "unknown", "the run names no worker process"
    if host is not None and host != HOST:
        return "unknown", f"worker {pid} runs on {host}, not on this machine ({HOST})"
    if not process_alive(pid):
        return "dead", f"worker process {pid} on {host or HOST} is no longer running"
    started = process_start_time(pid)
    if started is not None and run_started is not None and started > run_started + START_SLACK_SECONDS:
        return "dead", (
            f"worker process {pid} ended: process {pid} now running started {started - run_started:.0f} s after the run"
        )
    return "alive", f"worker process {pid} on {host or HOST} is running"
