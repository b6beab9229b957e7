"""Crash test: `pm-assets main` killed with SIGKILL at random moments, then run again.

    .venv/bin/python benchmarks/bench_kill.py [--kills 20] [--machines 20] [--days 120] [--seed 0]

A fresh project folder per trial, at the same path (its own data/ and a copy of dagster.yaml: the real SQLite
instance), all starting from the same simulated landing files (PM_PARTITION_START/END bound the history so a run
takes seconds):

1. a reference folder: `pm-assets main` uninterrupted;
2. each trial: `pm-assets main` started and killed (SIGKILL to the process) after a random delay within the
   reference's duration, then `pm-assets main` again to the end.

After each trial it checks and prints: the re-run succeeded; every stored file (warehouse, staging, quarantine)
equals the reference's byte for byte; no temporary file is left anywhere under data/ and no registry version lacks
its card; every run of the killed process is FAILED (the re-run marks this machine's dead runs when it starts),
with the seconds from the kill to FAILED.
"""

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PM = str(Path(sys.executable).with_name("pm-assets"))
COMPARED = ("warehouse", "staging", "quarantine")


def _env(folder: Path, start: str, end: str) -> dict:
    return {
        **os.environ,
        "DAGSTER_HOME": str(folder),
        "PM_DATA_DIR": str(folder / "data"),
        "PM_PARTITION_START": start,
        "PM_PARTITION_END": end,
    }


def _project(root: Path, landing: Path) -> Path:
    """A fresh project folder, always at the same path (stored frames hold report paths: equal bytes need it)."""
    folder = root / "project"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "data").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    shutil.copytree(landing, folder / "data" / "landing")
    return folder


def _main(folder: Path, env: dict, kill_after: float | None = None) -> tuple[int, float]:
    started = time.perf_counter()
    proc = subprocess.Popen([PM, "main"], cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if kill_after is not None:
        try:
            proc.wait(kill_after)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    return proc.wait(), time.perf_counter() - started


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every stored file. Staged chunks are named by arrival time (``<ns>-<file id>.parquet``) and the
    ledger records that time: chunks are keyed by day and file id, ledger entries are not compared."""
    out = {}
    for part in COMPARED:
        base = folder / "data" / part
        for path in sorted(base.rglob("*")) if base.exists() else []:
            if not path.is_file() or path.parent.name == "_files":
                continue
            name = str(path.relative_to(folder / "data"))
            if name == "warehouse/source_files.parquet":  # the inventory: its ingestion times are the run's own
                import pandas as pd

                frame = pd.read_parquet(path).drop(columns=["ingested_at"], errors="ignore")
                out[name] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
                continue
            if part == "staging":
                name = str(path.parent.relative_to(folder / "data") / path.name.split("-", 1)[-1])
            if name in out:
                name += " (twice)"
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _orphans(folder: Path) -> list[str]:
    data = folder / "data"
    found = [str(p.relative_to(data)) for p in data.rglob("*.tmp")]
    models = data / "models"
    found += [str(p.relative_to(data)) for p in models.glob("v[0-9]*") if p.is_dir() and not (p / "card.json").exists()]
    return found


def _runs(folder: Path, env: dict) -> list[tuple[str, str, float | None]]:
    code = (
        "import os; from dagster import DagsterInstance\n"
        "for r in DagsterInstance.get().get_run_records():\n"
        "    print(r.dagster_run.run_id, r.dagster_run.status.value, r.update_timestamp.timestamp())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True, check=True)
    return [(line.split()[0], line.split()[1], float(line.split()[2])) for line in out.stdout.splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--machines", type=int, default=20)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the folder (printed)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # one line per trial as it ends, also into a file
    import pandas as pd

    start = "2015-01-01"
    end = str((pd.Timestamp(start) + pd.Timedelta(days=args.days)).date())
    root = Path(tempfile.mkdtemp(prefix="pm_bench_kill_"))
    landing = root / "landing"
    subprocess.run(
        [
            PM,
            "simulate",
            "--machines",
            str(args.machines),
            "--start",
            start,
            "--end",
            end,
            "--out",
            str(landing),
            "--seed",
            "7",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    reference = _project(root, landing)
    launched = time.time()
    code, seconds = _main(reference, _env(reference, start, end))
    if code:
        sys.exit(f"the reference run failed ({code})")
    ends = [at for _, status, at in _runs(reference, _env(reference, start, end)) if status == "SUCCESS"]
    seconds = max(ends) - launched  # kills land between the start of the process and the end of its run
    expected = _digests(reference)
    print(
        f"reference: {args.machines} machines, {args.days} days, run ended {seconds:.1f} s after the start, "
        f"{len(expected)} stored files"
    )
    rng = random.Random(args.seed)
    failures = 0
    lags = []
    print(f"{'trial':>5} {'killed at':>9} {'re-run':>7} {'equal':>6} {'orphans':>7} {'killed runs FAILED':>18}")
    for trial in range(1, args.kills + 1):
        folder = _project(root, landing)
        env = _env(folder, start, end)
        delay = rng.uniform(1.0, seconds)
        _main(folder, env, kill_after=delay)
        killed_at = time.time()
        before = {
            run_id for run_id, status, _ in _runs(folder, env) if status in ("STARTED", "STARTING", "NOT_STARTED")
        }
        code, _ = _main(folder, env)
        runs = {run_id: (status, at) for run_id, status, at in _runs(folder, env)}
        dead_failed = all(runs[r][0] == "FAILURE" for r in before)
        lag = max((runs[r][1] - killed_at for r in before), default=0.0)
        lags += [lag] if before else []
        equal = _digests(folder) == expected
        orphans = _orphans(folder)
        ok = code == 0 and equal and not orphans and dead_failed and lag < 120
        failures += not ok
        print(
            f"{trial:5d} {delay:8.1f}s {'ok' if code == 0 else 'FAIL':>7} {str(equal):>6} {len(orphans):7d} "
            f"{len(before):>4} in {lag:5.1f} s{'' if ok else '   <-- ' + ', '.join(orphans[:3])}"
        )
        if not ok:
            shutil.copytree(folder, root / f"failed-trial{trial:02d}")
    print(
        f"\n{args.kills - failures}/{args.kills} trials: re-run succeeded, stored files equal to the uninterrupted "
        f"run byte for byte, no orphans, killed runs FAILED (worst {max(lags, default=0):.1f} s after the kill)"
    )
    if args.keep or failures:
        print(f"folders in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
