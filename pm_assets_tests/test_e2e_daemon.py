"""End to end through real processes: code server, webserver and daemon on 127.0.0.1, the retraining sensor.

What runs:

- one code server, ``dagster code-server start -m pm_assets.definitions``, on a free port. The webserver and the
  daemon both read a temporary ``workspace.yaml`` with a ``grpc_server`` entry pointing at it, so the project's
  code is imported once for both (and the run workers are children of that server). The test waits until the
  server lists the repository (gRPC ``list_repositories``, which the code server answers only once the code is
  loaded) before starting the other two, so neither of them sees a location still loading.
  (``python_module`` in the workspace would make the webserver and the daemon each start their own code server:
  two more imports of the project on a 2-core machine, and two copies of the code that could disagree.)
- ``dagster-webserver -w workspace.yaml`` and ``dagster-daemon run -w workspace.yaml``, with a temporary
  ``DAGSTER_HOME`` holding a copy of the project's ``dagster.yaml`` (its storage paths are relative, so every
  process runs with the working directory ``DAGSTER_HOME``). Its ``concurrency.runs`` block makes run submission
  queued: the daemon's run queue dequeues and launches every run, the ones the webserver submits included.

The scenario: a simulated fleet (20 machines, 2015-01-01 .. 2015-04-01) with drift injected from 2015-03-17 (volt
and pressure +2 sd, failure rate x3). Through the webserver's GraphQL API (``DagsterGraphQLClient``):

1. ``main_job`` over 2015-01-01 .. 2015-03-16 as one run (history before the drift: model v0001, monitoring green);
2. turn ``retraining_sensor`` on; its first tick skips (``no retraining needed``);
3. ``daily_job`` over 2015-03-17 .. 2015-03-31: monitoring of 2015-03-31 compares 14 drifted days with 60 clean
   ones and fires score_drift, feature_drift and performance_decay (seed 1; at least two are asserted);
4. the daemon's sensor requests one ``retrain_job`` run, the queue launches it, it succeeds and registers v0002;
5. a tick that completes after the retraining run ended skips, and there is still exactly one ``retrain_job`` run
   (the retraining run's own monitoring result must not trigger another one).

Runs use the executor the code location defines (no run config), so the test follows the project's choice. Every
wait is bounded; processes are started in their own process group and the whole group is stopped (SIGTERM, then
SIGKILL after 10 s) whatever happens. A failure message carries the tails of the three process logs and, for a run
that did not succeed, its error events.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from pm_assets.core.registry import LocalRegistry
from pm_assets.core.simulate import DriftSpec, SimulationConfig, simulate, write_kaggle_csv

pytestmark = [
    pytest.mark.e2e,
    # dagster_graphql's client calls gql with arguments gql 4 deprecates; not this project's code
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "pm_assets"
START, END = "2015-01-01", "2015-04-01"  # partitions 2015-01-01 .. 2015-03-31
DRIFT_START = "2015-03-17"
HISTORY = ("2015-01-01", "2015-03-16")
DRIFTED = ("2015-03-17", "2015-03-31")
SENSOR_INTERVAL = 3  # seconds; the daemon's sensor loop runs at most every 5 s anyway
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    """The last lines of a process log, without the Beta/Preview warnings every import of the project prints."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    kept, skip_next = [], False
    for line in text:
        if skip_next and line.startswith("  "):
            skip_next = False
            continue
        skip_next = "BetaWarning:" in line or "PreviewWarning:" in line
        if not skip_next:
            kept.append(line)
    return "\n".join(kept[-lines:])


class Stack:
    """The three processes, their logs and small GraphQL helpers."""

    def __init__(self, root: Path):
        self.root = root
        self.home = root / "home"
        self.data = root / "data"
        self.grpc_port = _free_port()
        self.web_port = _free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.phases: list[tuple[str, float]] = []
        self._t0 = time.monotonic()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("PM_", "DAGSTER_"))},
            "DAGSTER_HOME": str(self.home),
            "PM_DATA_DIR": str(self.data),
            "PM_RAW_DIR": str(self.data / "raw" / "azure_pm"),
            "PM_PARTITION_START": START,
            "PM_PARTITION_END": END,
            "PM_SENSOR_INTERVAL_SECONDS": str(SENSOR_INTERVAL),
            "OMP_NUM_THREADS": "1",  # 2 cores, several processes: no OpenMP oversubscription
            "PYTHONUNBUFFERED": "1",
        }

    # --- processes ------------------------------------------------------------------------------------
    def start(self, name: str, *args: str) -> None:
        log = self.root / f"{name}.log"
        self.logs[name] = log
        with open(log, "wb") as out:  # the child keeps its own descriptor
            self.procs[name] = subprocess.Popen(list(args), cwd=self.home, env=self.env, stdin=subprocess.DEVNULL,
                                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop_all(self) -> None:
        """SIGTERM every process group, wait up to 10 s, then SIGKILL what is left (run workers included)."""
        groups = [p.pid for p in reversed(list(self.procs.values()))]  # daemon first: it launches runs
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
            time.sleep(0.2)
        for pgid in groups:
            _signal_group(pgid, signal.SIGKILL)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                self.fail(f"{name} exited with code {proc.returncode}")

    # --- reporting ------------------------------------------------------------------------------------
    def phase(self, name: str) -> None:
        self.phases.append((name, time.monotonic() - self._t0))

    def report(self) -> str:
        timings = ", ".join(f"{name} at {t:.1f} s" for name, t in self.phases)
        tails = "\n".join(f"----- {name} ({path}) -----\n{_tail(path)}" for name, path in self.logs.items())
        return f"phases: {timings}\n{tails}"

    def fail(self, message: str):
        pytest.fail(f"{message}\n{self.report()}", pytrace=False)

    @contextmanager
    def reporting(self):
        """Turn any assertion or error into a failure that also shows the phases and the process logs."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - re-raised as a test failure with the logs
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.fail(f"{type(exc).__name__} at {Path(frame.filename).name}:{frame.lineno}: {exc}")

    def wait_for(self, what: str, predicate, timeout: float, interval: float = 1.0):
        """Poll ``predicate`` until it returns something truthy; fail (with the logs) after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = predicate()
            except (OSError, urllib.error.URLError, GraphQLError) as exc:  # not up yet, or a transient error
                value, last_error = None, exc
            if value:
                return value
            time.sleep(interval)
        detail = f" (last error: {last_error})" if last_error else ""
        self.fail(f"timed out after {timeout:.0f} s waiting for {what}{detail}")

    # --- GraphQL --------------------------------------------------------------------------------------
    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise GraphQLError(json.dumps(payload["errors"])[:2000])
        return payload["data"]

    def runs(self, job_name: str) -> list[dict]:
        data = self.graphql(RUNS_QUERY, {"filter": {"pipelineName": job_name}})["runsOrError"]
        if data["__typename"] != "Runs":
            raise GraphQLError(str(data))
        return data["results"]

    def run(self, run_id: str) -> dict:
        data = self.graphql(RUNS_QUERY, {"filter": {"runIds": [run_id]}})["runsOrError"]
        return data["results"][0] if data.get("results") else {}

    def run_errors(self, run_id: str) -> str:
        data = self.graphql(RUN_LOGS_QUERY, {"runId": run_id})["logsForRun"]
        events = data.get("events") or []
        lines = [f"{e['__typename']}: {e.get('message', '')} {(e.get('error') or {}).get('message', '')}".strip()
                 for e in events if e.get("level") == "ERROR" or e.get("error")]
        return "\n".join(lines[-15:]) or "<no error events>"

    def wait_for_run(self, run_id: str, timeout: float) -> dict:
        def finished():
            run = self.run(run_id)
            return run if run and run["status"] in TERMINAL else None

        run = self.wait_for(f"run {run_id} to finish", finished, timeout)
        if run["status"] != "SUCCESS":
            self.fail(f"run {run_id} ({run['jobName']}) ended {run['status']}:\n{self.run_errors(run_id)}")
        return run

    def ticks(self, selector: dict) -> list[dict]:
        data = self.graphql(TICKS_QUERY, {"selector": selector})["sensorOrError"]
        if data["__typename"] != "Sensor":
            raise GraphQLError(str(data))
        return sorted(data["sensorState"]["ticks"], key=lambda t: t["timestamp"])  # oldest first


class GraphQLError(RuntimeError):
    pass


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


WORKSPACE_QUERY = """
query {
  workspaceOrError {
    __typename
    ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
      __typename
      ... on RepositoryLocation { repositories { name jobs { name } sensors { name minIntervalSeconds } } }
      ... on PythonError { message }
    } } }
  }
}"""

START_SENSOR = """
mutation ($selector: SensorSelector!) {
  startSensor(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status } }
    ... on PythonError { message }
    ... on SensorNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}"""

TICKS_QUERY = """
query ($selector: SensorSelector!) {
  sensorOrError(sensorSelector: $selector) {
    __typename
    ... on Sensor { sensorState { status ticks(limit: 100) {
      tickId status timestamp endTimestamp skipReason runIds runKeys cursor error { message }
    } } }
  }
}"""

RUNS_QUERY = """
query ($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId jobName status creationTime startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}"""

RUN_LOGS_QUERY = """
query ($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename
    ... on EventConnection { events {
      __typename
      ... on MessageEvent { message level }
      ... on ExecutionStepFailureEvent { error { message } }
      ... on RunFailureEvent { error { message } }
    } }
  }
}"""

LATEST_MONITORING = """
query {
  assetOrError(assetKey: {path: ["monitoring"]}) {
    __typename
    ... on Asset { assetMaterializations(limit: 1) {
      partition runId
      metadataEntries { label ... on IntMetadataEntry { intValue } ... on BoolMetadataEntry { boolValue }
                        ... on TextMetadataEntry { text } }
    } }
  }
}"""


def _simulate(raw_dir: Path) -> None:
    # seed 1: monitoring of 2015-03-16 is green (0 alerts), of 2015-03-31 red (score, feature and performance
    # alerts), and both trainings see every failure class.
    drift = DriftSpec(start=DRIFT_START, sensor_shift_sd={"volt": 2.0, "pressure": 2.0}, failure_rate_factor=3.0)
    config = SimulationConfig(machines=20, start=START, end=END, seed=1, drift=drift)
    write_kaggle_csv(simulate(config), raw_dir)


@pytest.fixture()
def stack(tmp_path):
    s = Stack(tmp_path)
    s.home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", s.home / "dagster.yaml")
    (s.home / "workspace.yaml").write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {s.grpc_port}\n"
        f"      location_name: {LOCATION}\n")
    try:
        yield s
    finally:
        s.stop_all()


def _grpc_ready(port: int):
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    try:
        return client.list_repositories()  # raises until the code is loaded
    except Exception:  # noqa: BLE001 - any failure here means "not ready yet"
        return None


def test_sensor_retrains_once_through_webserver_and_daemon(stack: Stack):
    with stack.reporting():
        _scenario(stack)
    print(stack.report().split("\n")[0])  # the phase timings (shown with -s)


def _scenario(stack: Stack) -> None:
    from dagster_graphql import DagsterGraphQLClient

    _simulate(stack.data / "raw" / "azure_pm")
    stack.phase("simulated")

    # code server first: the webserver and daemon then find the location loaded
    stack.start("code-server", str(BIN / "dagster"), "code-server", "start", "-m", "pm_assets.definitions",
                "-h", "127.0.0.1", "-p", str(stack.grpc_port), "--location-name", LOCATION,
                "--use-python-environment-entry-point")
    stack.wait_for("the code server to load pm_assets.definitions", lambda: _grpc_ready(stack.grpc_port), 90, 0.5)
    stack.phase("code server ready")
    stack.start("webserver", str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(stack.web_port),
                "-w", "workspace.yaml")
    stack.start("daemon", str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml")

    def location_loaded():
        entries = stack.graphql(WORKSPACE_QUERY)["workspaceOrError"]["locationEntries"]
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry is None or entry["loadStatus"] != "LOADED":
            return None
        location = entry["locationOrLoadError"]
        if location["__typename"] != "RepositoryLocation":
            stack.fail(f"code location failed to load: {location}")
        return location["repositories"][0]

    repo = stack.wait_for("the webserver to serve the code location", location_loaded, 90, 0.5)
    stack.phase("webserver ready")
    assert {"main_job", "daily_job", "retrain_job"} <= {j["name"] for j in repo["jobs"]}
    sensor_info = next(s for s in repo["sensors"] if s["name"] == "retraining_sensor")
    assert sensor_info["minIntervalSeconds"] == SENSOR_INTERVAL  # PM_SENSOR_INTERVAL_SECONDS reached the code
    selector = {"repositoryLocationName": LOCATION, "repositoryName": repo["name"], "sensorName": "retraining_sensor"}
    client = DagsterGraphQLClient("127.0.0.1", port_number=stack.web_port, timeout=60)

    # 1. history before the drift, as one run
    run_id = client.submit_job_execution("main_job", repository_location_name=LOCATION, tags={
        "dagster/asset_partition_range_start": HISTORY[0], "dagster/asset_partition_range_end": HISTORY[1]})
    stack.wait_for_run(run_id, 150)
    stack.phase("main_job done")
    registry = LocalRegistry(stack.data / "models")
    assert registry.versions() == ["v0001"], registry.versions()

    # 2. sensor on; its first tick finds the green monitoring of 2015-03-16
    started = stack.graphql(START_SENSOR, {"selector": selector})["startSensor"]
    assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started
    first = stack.wait_for("the first sensor tick",
                           lambda: [t for t in stack.ticks(selector) if t["status"] != "STARTED"], 45)[0]
    assert first["status"] == "SKIPPED" and "no retraining needed" in (first["skipReason"] or ""), first
    assert HISTORY[1] in first["skipReason"], first
    stack.phase("first tick skipped")

    # 3. the drifted days: monitoring of 2015-03-31 recommends retraining
    run_id = client.submit_job_execution("daily_job", repository_location_name=LOCATION, tags={
        "dagster/asset_partition_range_start": DRIFTED[0], "dagster/asset_partition_range_end": DRIFTED[1]})
    stack.wait_for_run(run_id, 90)
    stack.phase("daily_job done")
    latest = stack.graphql(LATEST_MONITORING)["assetOrError"]["assetMaterializations"][0]
    meta = {e["label"]: e.get("intValue", e.get("boolValue", e.get("text"))) for e in latest["metadataEntries"]}
    assert latest["partition"] == DRIFTED[1] and latest["runId"] == run_id, latest
    assert meta["alert_count"] >= 2 and meta["retrain_recommended"] is True, meta
    summary = json.loads((stack.data / "outputs" / "monitoring" / DRIFTED[1] / "monitoring_summary.json").read_text())
    fired = {a["name"] for a in summary["alerts"] if a["fired"]}
    assert len(fired) == meta["alert_count"] and {"score_drift", "feature_drift"} <= fired, summary["alerts"]

    # 4. the daemon's sensor requests one retraining run, the queue launches it, it registers a new version
    retrain = stack.wait_for("the sensor to request a retrain_job run", lambda: stack.runs("retrain_job"), 60)[0]
    stack.phase("retrain requested")
    tags = {t["key"]: t["value"] for t in retrain["tags"]}
    assert tags.get("pm_assets/trigger") == "retraining_sensor", tags
    # normally 2015-03-31; a tick that falls between the 15 monitoring events of the ranged run may see an earlier
    # drifted day first (the later ones are then skipped: a retraining is already queued or running)
    assert DRIFTED[0] <= tags.get("dagster/partition", "") <= DRIFTED[1], tags
    assert tags.get("dagster/sensor_name") == "retraining_sensor", tags
    retrain = stack.wait_for_run(retrain["runId"], 150)
    stack.phase("retrain done")
    assert registry.versions() == ["v0001", "v0002"], registry.versions()
    assert registry.card("v0002")["partitions"]["last"] == DRIFTED[1]

    # 5. a tick completed after the retraining run ended skips, and nothing else was launched
    def tick_after_retrain():
        ticks = stack.ticks(selector)
        done = [t for t in ticks if t["status"] != "STARTED" and t["timestamp"] > retrain["endTime"]]
        return ticks if done else None

    ticks = stack.wait_for("a sensor tick after the retraining run", tick_after_retrain, 45)
    stack.phase("tick after retrain")
    requesting = [t for t in ticks if t["runIds"]]
    assert [t["runIds"] for t in requesting] == [[retrain["runId"]]], ticks
    later = [t for t in ticks if t["timestamp"] > requesting[0]["timestamp"] and t["status"] != "STARTED"]
    assert later and all(t["status"] == "SKIPPED" for t in later), later
    # the retraining run's own monitoring result was seen and ignored, not acted on
    assert any("came from retraining run" in (t["skipReason"] or "") for t in later), later
    assert [r["runId"] for r in stack.runs("retrain_job")] == [retrain["runId"]]
    assert registry.versions() == ["v0001", "v0002"]
