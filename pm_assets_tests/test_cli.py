"""The command line's run display: each step as it ends (from the run's step events) and the progress lines the
steps log (through a logger added for the run), while the run executes in process."""

from __future__ import annotations

import re

from dagster import DagsterInstance, Definitions, asset, define_asset_job

from pm_assets.assets.common import Progress
from pm_assets.cli import _execute_with_progress


@asset
def slow(context) -> int:
    progress = Progress(context.log, 3, unit="chunks", every=0.0)
    for done in range(1, 4):
        progress.update(done)
    context.log.info("an ordinary line, not shown")
    return 1


@asset
def after(slow: int) -> int:
    return slow + 1


def test_the_run_display_shows_each_step_and_its_progress_lines(capsys):
    job = Definitions(assets=[slow, after], jobs=[define_asset_job("j")]).resolve_job_def("j")
    with DagsterInstance.ephemeral() as instance:
        result = _execute_with_progress(job, instance, {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}, {})
    assert result.success
    lines = capsys.readouterr().out.splitlines()
    assert all(re.match(r"^ *\d+\.\d s  \S", line) for line in lines)  # the clock, then the line
    shown = [re.sub(r"^ *\d+\.\d s  ", "", line) for line in lines]
    progress = [line for line in shown if line.startswith("slow: ")]
    assert [p.split(",")[0] for p in progress] == ["slow: 1/3 chunks", "slow: 2/3 chunks", "slow: 3/3 chunks"]
    assert [line.split()[0:2] for line in shown if " done in " in line] == [["slow", "done"], ["after", "done"]]
    assert shown.index(progress[-1]) < next(
        i for i, line in enumerate(shown) if line.startswith("slow ") and "done" in line
    )
    assert not any("ordinary" in line for line in lines)
