"""Benchmark: the main command over fleets of growing size, one process each: time per step, peak memory, slopes.

    .venv/bin/python benchmarks/bench_scale.py [--machines 100 300 1000] [--days 365] [--svg docs/scale.svg] [--direct]

For each fleet size, in a new temporary project folder (its own data/ and a copy of dagster.yaml, so the SQLite
instance is the real one): ``pm-assets simulate`` writes the fleet's year, then ``pm-assets main --no-drift`` runs
in its own process, whose peak resident memory (``ru_maxrss`` from ``wait4``) is the figure reported. Each step's
time comes from the run's event log (STEP_START to STEP_SUCCESS); "Dagster before the first step" is from the run's
first event to the first step's start (planning: one planned event per asset and partition). The slope of a step
is the exponent b of time ~ machines^b fitted on the sizes run (1 = linear). With --svg, a log-log plot of the
whole run and the largest steps. With --direct, after each run the same computation as plain core calls in memory
(``bench_main.py --direct-only``: no Dagster, no partition files), in its own process: its time per stage and peak
memory, the floor of the run at that size, and the run's share above it.
"""

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run_fleet(machines: int, days: int, keep: Path | None, direct: bool = False) -> dict:
    import pandas as pd

    folder = keep / f"m{machines}" if keep else Path(tempfile.mkdtemp(prefix=f"pm_scale_{machines}_"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", folder / "dagster.yaml")
    start = "2025-01-01"
    end = str((pd.Timestamp(start) + pd.Timedelta(days=days)).date())
    env = os.environ | {
        "DAGSTER_HOME": str(folder),
        "PM_DATA_DIR": str(folder / "data"),
        "PM_PARTITION_START": start,
        "PM_PARTITION_END": end,
    }
    started = time.perf_counter()
    subprocess.run(
        [
            str(BIN / "pm-assets"),
            "simulate",
            "--machines",
            str(machines),
            "--start",
            start,
            "--end",
            end,
            "--out",
            str(folder / "data" / "landing"),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    simulated = time.perf_counter() - started
    log = (folder / "main.log").open("w")
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(BIN / "pm-assets"), "main", "--no-drift"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    log.close()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"pm-assets main failed for {machines} machines: see {folder / 'main.log'}")
    figures = {"machines": machines, "simulate_s": simulated, "process_s": wall, "peak_rss_gb": usage.ru_maxrss / 1e6}
    figures |= _steps(folder, env)
    if direct:
        figures["direct"] = _direct(folder, start, end)
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return figures


def _direct(folder: Path, start: str, end: str) -> dict:
    """``bench_main.py --direct-only`` over the fleet's landed files, in its own process: stage times, their
    total, the process's peak RSS."""
    import json

    command = [sys.executable, str(REPO / "benchmarks" / "bench_main.py"), "--direct-only"]
    process = subprocess.Popen([*command, str(folder / "data" / "landing"), start, end], stdout=subprocess.PIPE)
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"the direct calls failed for {folder}")
    stages = json.loads(out.decode().strip().splitlines()[-1])
    return {"stages": stages, "total_s": sum(stages.values()), "peak_rss_gb": usage.ru_maxrss / 1e6}


def _steps(folder: Path, env: dict) -> dict:
    """Step times and event counts of the run, read from its instance in a separate process."""
    probe = r"""
import json, os
from dagster import DagsterEventType, DagsterInstance
instance = DagsterInstance.get()
run = instance.get_runs(limit=1)[0]
records = instance.all_logs(run.run_id)
steps = {}
for r in records:
    e = r.dagster_event
    if e is not None and e.event_type in (DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS):
        steps.setdefault(e.step_key, {})[e.event_type_value] = r.timestamp
first_step = min(v["STEP_START"] for v in steps.values())
print(json.dumps({"run_s": records[-1].timestamp - records[0].timestamp,
                  "before_first_step_s": first_step - records[0].timestamp, "events": len(records),
                  "steps": {k: v["STEP_SUCCESS"] - v["STEP_START"] for k, v in steps.items()}}))
"""
    import json

    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=folder, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def slope(xs, ys) -> float:
    """Least-squares exponent b of y = a * x^b."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-3)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def svg(results: list[dict], series: list[str]) -> str:
    """A small log-log chart: seconds against machines, one line per series."""
    width, height, pad = 560, 340, 50
    xs = [r["machines"] for r in results]
    values = {name: [_value(r, name) for r in results] for name in series}
    low = min(max(v, 0.05) for vs in values.values() for v in vs)
    high = max(v for vs in values.values() for v in vs)
    x0, x1, y0, y1 = math.log10(min(xs)), math.log10(max(xs)), math.log10(low) - 0.1, math.log10(high) + 0.1

    def px(x):
        return pad + (math.log10(x) - x0) / max(x1 - x0, 1e-9) * (width - 2 * pad)

    def py(y):
        return height - pad - (math.log10(max(y, 0.05)) - y0) / (y1 - y0) * (height - 2 * pad)

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        f'font-size="11"><rect width="100%" height="100%" fill="white"/>',
        f'<text x="{pad}" y="20" font-size="13">pm-assets main, seconds per step (log-log)</text>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#333"/>',
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#333"/>',
    ]
    for x in xs:
        parts.append(f'<text x="{px(x):.0f}" y="{height - pad + 15}" text-anchor="middle">{x}</text>')
    for exponent in range(math.floor(y0), math.ceil(y1) + 1):
        if y0 <= exponent <= y1:
            parts.append(
                f'<text x="{pad - 6}" y="{py(10**exponent) + 4:.0f}" text-anchor="end">{10**exponent:g}</text>'
            )
    parts.append(f'<text x="{width / 2:.0f}" y="{height - 12}" text-anchor="middle">machines (1 year each)</text>')
    for i, (name, vs) in enumerate(values.items()):
        colour = colours[i % len(colours)]
        points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, vs))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        parts.append(f'<text x="{width - pad + 4}" y="{py(vs[-1]) + 4:.0f}" fill="{colour}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _value(result: dict, name: str) -> float:
    return result["run_s"] if name == "whole run" else result["steps"].get(name, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, nargs="+", default=[100, 300, 1000])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keep", help="keep each fleet's project folder under this folder")
    parser.add_argument("--svg", help="write the log-log chart here")
    parser.add_argument("--direct", action="store_true", help="also the direct core calls of each fleet (no Dagster)")
    args = parser.parse_args()
    results = []
    for machines in args.machines:
        result = run_fleet(machines, args.days, Path(args.keep) if args.keep else None, args.direct)
        results.append(result)
        print(
            f"{machines} machines: run {result['run_s']:.1f} s (process {result['process_s']:.1f} s), peak RSS "
            f"{result['peak_rss_gb']:.2f} GB, {result['events']:,} events, {result['before_first_step_s']:.1f} s "
            "before the first step",
            flush=True,
        )
        if args.direct:
            d = result["direct"]
            stages = ", ".join(f"{k} {v:.1f} s" for k, v in d["stages"].items())
            share = 1 - d["total_s"] / result["run_s"]
            print(
                f"  direct core calls: {d['total_s']:.1f} s ({stages}), peak RSS {d['peak_rss_gb']:.2f} GB; the "
                f"run's share above them {share:.0%}",
                flush=True,
            )
    steps = sorted(results[-1]["steps"], key=lambda k: -results[-1]["steps"][k])
    header = "| step | " + " | ".join(f"{r['machines']:,} machines" for r in results) + " | ratio | slope |"
    print("\n" + header + "\n|---|" + "---:|" * (len(results) + 2))
    rows = [
        ("whole run", [r["run_s"] for r in results]),
        ("Dagster before the first step", [r["before_first_step_s"] for r in results]),
    ]
    rows += [(step, [r["steps"].get(step, 0.0) for r in results]) for step in steps]
    for name, values in rows:
        ratio = values[-1] / values[0] if values[0] > 0 else float("nan")
        fit = slope([r["machines"] for r in results], values) if len(results) > 1 and min(values) > 0 else float("nan")
        print(f"| {name} | " + " | ".join(f"{v:.1f} s" for v in values) + f" | {ratio:.1f}x | {fit:.2f} |")
    print(
        "| peak RSS | "
        + " | ".join(f"{r['peak_rss_gb']:.2f} GB" for r in results)
        + f" | {results[-1]['peak_rss_gb'] / results[0]['peak_rss_gb']:.1f}x | |"
    )
    if args.svg:
        Path(args.svg).write_text(svg(results, ["whole run", *steps[:5]]))
        print(f"chart: {args.svg}")


if __name__ == "__main__":
    main()
