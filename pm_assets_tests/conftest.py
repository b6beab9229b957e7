"""Shared fixtures.

Tests that read the real Azure PdM files find them in ``../shared/data/azure_pm`` beside the checkout (or in
``PM_REAL_DATA_DIR``). When the folder is absent they skip, except under ``CI=true``, where they must run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The tests run on the 2015 calendar of the Kaggle files, with the partitions open-ended as deployed (so a
# schedule evaluated years later sees real partitions). Set before pm_assets is imported; processes the tests start
# (the end-to-end test) set their own.
os.environ["PM_PARTITION_START"] = "2015-01-01"
os.environ.pop("PM_PARTITION_END", None)

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
