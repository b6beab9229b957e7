"""Shared fixtures and helpers: the real data, servers, a browser, one way to run assets in process, and the
simulated fleets several modules train on, built once per session.

Tests that read the real Azure PdM files find them in ``../shared/data/azure_pm`` beside the checkout (or in
``PM_REAL_DATA_DIR``). When the folder is absent they skip, except under ``CI=true``, where they must run.

The session-wide fixtures (:func:`model_fleet`, :func:`simulated_pipeline`) hand each test module its own copy, so
no test can change what another module sees.
"""

from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

# The tests run on the 2015 calendar of the Kaggle files, with the partitions open-ended as deployed (so a
# schedule evaluated years later sees real partitions). Set before pm_assets is imported; processes the tests start
# (the end-to-end test) set their own.
os.environ["PM_PARTITION_START"] = "2015-01-01"
os.environ.pop("PM_PARTITION_END", None)

# pm_assets imported after the partition settings above
from pm_assets.core.model import TrainParams
from pm_assets.core.simulate import SimulationConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
REAL_DATA_DIR = Path(os.environ.get("PM_REAL_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "azure_pm"))
Q1_SUBSET = "partial/PdM_telemetry_SUBSET_machines1-20_2015Q1.csv.gz"
UNION_PARTIAL = "partial/PdM_telemetry_PARTIAL_union_144262rows.csv.gz"


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not (REAL_DATA_DIR / "PdM_machines.csv.gz").exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the real Azure PdM files are missing from {REAL_DATA_DIR}")
        pytest.skip(f"real Azure PdM files not found in {REAL_DATA_DIR}")
    return REAL_DATA_DIR


def _skip_or_fail(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium driven by Playwright, one per test module (Playwright's sync API keeps an event loop
    on the main thread while it runs: closed with the module, it does not outlive the browser tests). Skips when
    either is missing (fails under CI=true: .ci/run installs both)."""
    import shutil

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("playwright is not installed (pip install -e '.[dev]')")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _skip_or_fail("no chromium on PATH (Debian: apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser, url: str, width: int = 1280):
    """A new page at ``url`` and the console errors and page errors it logs while loading."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="load")
    return page, errors


@pytest.fixture(scope="session")
def instance():
    """One in-memory Dagster instance for the whole session (SQLite instances lock under concurrency)."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as inst:
        yield inst


def landing_resource(root: Path, raw_dir: Path, telemetry: str | None = None, quarantine: str | None = None):
    """A LandingResource over ``root`` whose landing folder holds links to the Kaggle files of ``raw_dir`` (the
    telemetry file replaced by ``telemetry``, a path relative to ``raw_dir``, when given), quarantining in
    ``quarantine`` (default ``root/quarantine``). Idempotent."""
    from pm_assets.core.landing import table_for_name
    from pm_assets.resources import LandingResource

    landing = root / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    sources = [p for p in Path(raw_dir).iterdir() if p.is_file() and table_for_name(p.name)]
    if telemetry:
        sources = [p for p in sources if table_for_name(p.name).name != "telemetry"] + [Path(raw_dir) / telemetry]
    for source in sources:
        link = landing / source.name
        if not link.exists():
            link.symlink_to(source.resolve())
    return LandingResource(
        landing_dir=str(landing),
        staging_dir=str(root / "staging"),
        quarantine_dir=quarantine or str(root / "quarantine"),
    )


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server on 127.0.0.1 for the session (Debian's package), stopped at the end. Skips when
    PostgreSQL is not installed or cannot start, except under CI=true (.ci/run installs it)."""
    from pm_assets_tests.servers import PostgresServer

    try:
        server = PostgresServer().start()
    except (FileNotFoundError, RuntimeError, KeyError) as exc:  # KeyError: no postgres user
        _skip_or_fail(f"no PostgreSQL server could be started: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture()
def postgres_home(postgres_server, tmp_path, monkeypatch):
    """A DAGSTER_HOME with the project's PostgreSQL variant (deploy/postgres/dagster.yaml) on an empty database,
    its PM_PG_* variables set."""
    import shutil

    postgres_server.reset()
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "deploy" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    for key, value in postgres_server.env.items():
        monkeypatch.setenv(key, value)
    return home


@pytest.fixture(scope="session")
def azurite():
    """One Azurite Blob server on 127.0.0.1 for the session, its connection string in the environment (adlfs reads
    AZURE_STORAGE_CONNECTION_STRING). Skips without Azurite, except under CI=true (.ci/run installs it)."""
    from pm_assets_tests.servers import AzuriteServer

    try:
        server = AzuriteServer().start()
    except (FileNotFoundError, RuntimeError, TimeoutError) as exc:
        _skip_or_fail(f"no Azurite server could be started: {exc}")
    previous = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    os.environ.update(server.env)
    try:
        yield server
    finally:
        if previous is None:
            os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
        else:
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = previous
        server.stop()


def stored_digests(data: Path) -> dict[str, str]:
    """sha256 of every parquet file under ``data/warehouse``, by its path below ``data``; the inventory
    (``source_files``) without its ingestion times, which are each run's own."""
    import hashlib

    import pandas as pd

    out = {}
    for path in sorted((data / "warehouse").rglob("*.parquet")):
        name = path.relative_to(data).as_posix()
        if name == "warehouse/source_files.parquet":
            frame = pd.read_parquet(path).drop(columns=["ingested_at"])
            out[name] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
        else:
            out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One OpenMP/BLAS thread for the whole session: on a busy 2-core machine the boosting's spinning OpenMP threads
    turn a 1 s fit into minutes; single-threaded it is fast and the timing does not depend on other processes.
    Processes the tests start set ``OMP_NUM_THREADS`` themselves."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


# --- running assets in process ------------------------------------------------------------------------------


def project_resources(root: Path, raw_dir: Path | None = None, telemetry: str | None = None) -> dict:
    """The graph's four resources with every store under ``root``: the landing folder (links to the Kaggle files of
    ``raw_dir``, default ``root/raw``; see :func:`landing_resource`), the warehouse, the model registry, the
    reports."""
    from pm_assets.resources import ModelRegistryResource, OutputsResource, ParquetIOManager

    return {
        "landing": landing_resource(root, raw_dir or root / "raw", telemetry),
        "io_manager": ParquetIOManager(base_dir=str(root / "warehouse")),
        "model_registry": ModelRegistryResource(root=str(root / "models")),
        "outputs": OutputsResource(root=str(root / "outputs")),
    }


def run_assets(
    instance,
    root: Path,
    *,
    raw_dir: Path | None = None,
    telemetry: str | None = None,
    assets=None,
    selection=None,
    days: tuple[str, str] | None = None,
    partition_key: str | None = None,
    run_config: dict | None = None,
    raise_on_error: bool = True,
    resources: dict | None = None,
):
    """Materialize ``selection`` of ``assets`` (default: the project's, ``pm_assets.definitions.defs``) in process on
    ``instance`` with :func:`project_resources` under ``root``: one ranged run over ``days`` (first, last, both
    included), the one partition ``partition_key``, or neither (unpartitioned assets). ``resources`` replaces
    :func:`project_resources` (stores elsewhere, e.g. on an object store)."""
    from dagster import materialize

    if assets is None:
        from pm_assets.definitions import defs

        assets = list(defs.assets)
    tags = (
        {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[1]} if days else None
    )
    return materialize(
        assets,
        instance=instance,
        resources=resources or project_resources(root, raw_dir, telemetry),
        selection=selection,
        tags=tags,
        partition_key=partition_key,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def check_evaluations(result) -> dict[tuple[str, str], object]:
    """The run's asset check evaluations by (asset, check name) (the last one, for a check run per partition)."""
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def materialization_metadata(result, asset: str) -> dict[str | None, dict]:
    """The metadata values of each materialization of ``asset`` in the run, by partition (None: unpartitioned)."""
    return {
        m.partition: {k: v.value for k, v in m.metadata.items()} for m in result.asset_materializations_for_node(asset)
    }


def step_failures(result) -> dict[str, str]:
    """The error message of each failed step of a run, by step (asset) name."""
    return {
        e.step_key: str(e.event_specific_data.error) for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    }


def stored_partitions(root: Path, asset: str, days=None) -> pd.DataFrame:
    """The daily partitions of ``asset`` stored in ``root/warehouse``: every stored day, or the ``days`` given."""
    from pm_assets.core.parquet_files import read_partitions

    folder = root / "warehouse" / asset
    return read_partitions(
        sorted(folder.glob("*.parquet")) if days is None else [folder / f"{d}.parquet" for d in days]
    )


# --- simulated fleets, built once per session ---------------------------------------------------------------

#: The small fleet the core model and monitoring tests train on (12 machines, four months). Every class occurs:
#: comp4 may fail at any age here (the default: from 14 years, few of 12 machines).
FLEET = SimulationConfig(machines=12, start="2015-01-01", end="2015-05-01", seed=5, component_min_age={})
FLEET_HORIZON = 24
FLEET_CUTOFF = pd.Timestamp("2015-03-20")
FLEET_PARAMS = TrainParams(max_iter=30)


@dataclass(frozen=True)
class ModelFleet:
    """:data:`FLEET` simulated, featurised over its whole span and labelled (horizon :data:`FLEET_HORIZON`); its
    training rows split at :data:`FLEET_CUTOFF`; and a bundle fitted on the train side with :data:`FLEET_PARAMS`."""

    tables: dict[str, pd.DataFrame]
    features: pd.DataFrame
    labels: pd.DataFrame
    rows: pd.DataFrame
    train: pd.DataFrame
    test: pd.DataFrame
    bundle: object


@pytest.fixture(scope="session")
def _model_fleet_once(one_thread) -> ModelFleet:
    from pm_assets.core.features import build_features
    from pm_assets.core.labels import build_labels
    from pm_assets.core.model import fit_bundle, split_by_cutoff, training_rows
    from pm_assets.core.simulate import simulate

    tables = simulate(FLEET)
    features = build_features(
        tables["telemetry"], tables["errors"], tables["maintenance"], tables["machines"], FLEET.start, FLEET.end
    )
    labels = build_labels(features[["machineID", "datetime"]], tables["failures"], FLEET_HORIZON, FLEET.end)
    rows = training_rows(features, labels)
    train, test = split_by_cutoff(rows, FLEET_CUTOFF, FLEET_HORIZON)
    return ModelFleet(tables, features, labels, rows, train, test, fit_bundle(train, FLEET_PARAMS))


@pytest.fixture(scope="module")
def model_fleet(_model_fleet_once) -> ModelFleet:
    """The :class:`ModelFleet`, built once per session; each module gets its own deep copy (frames and model)."""
    return copy.deepcopy(_model_fleet_once)


#: The fleet the training and monitoring asset tests run the graph on: 15 machines, four months; its Kaggle files
#: ingested and its features and labels built for :data:`PIPELINE_DAYS`.
PIPELINE_FLEET = SimulationConfig(machines=15, start="2015-01-01", end="2015-05-01", seed=11)
PIPELINE_DAYS = ("2015-01-01", "2015-04-30")
#: The assets :func:`simulated_pipeline` has built.
UPSTREAM = [
    "source_files",
    "machines",
    "telemetry",
    "errors",
    "maintenance",
    "maintenance_history",
    "failures",
    "features",
    "labels",
]


@pytest.fixture(scope="session")
def _simulated_pipeline_once(tmp_path_factory, instance) -> Path:
    from pm_assets.core.simulate import simulate, write_kaggle_csv

    root = tmp_path_factory.mktemp("pipeline")
    write_kaggle_csv(simulate(PIPELINE_FLEET), root / "raw")
    assert run_assets(instance, root, selection=UPSTREAM, days=PIPELINE_DAYS).success
    return root


@pytest.fixture(scope="module")
def simulated_pipeline(_simulated_pipeline_once, tmp_path_factory) -> Path:
    """A project folder (raw files, landing, staging, warehouse) holding :data:`UPSTREAM` of
    :data:`PIPELINE_FLEET`, built once per session; each module gets its own copy to train, score and monitor in
    (no registry, no reports yet)."""
    root = tmp_path_factory.mktemp("pipeline_copy")
    shutil.copytree(_simulated_pipeline_once, root, dirs_exist_ok=True)  # links copied as files: nothing shared
    return root
