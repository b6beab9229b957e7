"""The warehouse, the quarantine, the reports and the model registry on an object store: Azure Blob Storage, as
Azurite serves it on 127.0.0.1 (``az://`` URLs through fsspec/adlfs).

The graph runs once with every store on a local folder and once with every store in a container, on the same
simulated fleet: every stored frame is the same (the report paths aside, which name where the reports are), the
model reads back verified by its sha256 and a tampered blob is refused, the reports and index are there.

Two months (60 days: every daily step writes its range in two 30-day chunks) and monitoring over the last 14 days
(a report folder, its summary and the index per day): what is compared is where each frame, file and blob goes, the
same for every day, so a longer range (it was four months, monitored every day) repeats the same writes and reads.
"""

from __future__ import annotations

import io
import json
import time

import pandas as pd
import pytest

from pm_assets.core.atomic import write_bytes_atomic, write_new
from pm_assets.core.locations import as_path, is_remote, read_bytes
from pm_assets.core.registry import LocalRegistry, RegistryError
from pm_assets.core.simulate import SimulationConfig, simulate, write_kaggle_csv
from pm_assets.resources import ModelRegistryResource, OutputsResource, ParquetIOManager
from pm_assets_tests.conftest import landing_resource, run_assets

pytestmark = pytest.mark.azurite

#: A lighter training (20 boosting iterations): what is compared is where things are stored, not the model's quality.
LIGHT = {"ops": {"failure_model": {"config": {"max_iter": 20}}}}
FIRST, LAST = "2015-01-01", "2015-03-01"  # 60 days
MONITOR_FROM = "2015-02-16"  # the last 14 days
DAYS, MONITORED = len(pd.date_range(FIRST, LAST)), len(pd.date_range(MONITOR_FROM, LAST))
STAGES = [
    (["source_files", "machines", "maintenance_history"], None),
    (["telemetry", "errors", "maintenance", "failures", "features", "labels"], (FIRST, LAST)),
    (["failure_model"], None),
    (["scores", "maintenance_worklist"], (FIRST, LAST)),
    (["monitoring"], (MONITOR_FROM, LAST)),
    (["monitoring_history"], None),
]


def _run(root, raw, stores: dict[str, str], instance) -> None:
    landing = landing_resource(root, raw, quarantine=stores["quarantine"])
    resources = {
        "landing": landing,
        "io_manager": ParquetIOManager(base_dir=stores["warehouse"]),
        "model_registry": ModelRegistryResource(root=stores["models"]),
        "outputs": OutputsResource(root=stores["outputs"]),
    }
    # the object store's reports come from the report process, the local ones from a thread: the same files
    reports = {"report_process_days": 1 if is_remote(stores["outputs"]) else MONITORED + 1}
    for selection, days in STAGES:
        run_config = LIGHT if "failure_model" in selection else None
        if "monitoring" in selection:
            run_config = {"ops": {"monitoring": {"config": reports}}}
        assert run_assets(
            instance, root, resources=resources, selection=selection, days=days, run_config=run_config
        ).success


def _files(base) -> dict[str, bytes]:
    """The bytes of every parquet file under ``base`` (a folder or a URL), by its path below ``base``."""
    base = as_path(base)
    if not is_remote(base):
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in base.rglob("*.parquet")}
    blobs = base.fs.cat([p for p in base.fs.find(base.path) if p.endswith(".parquet")])  # fetched together
    return {path[len(base.path) + 1 :]: data for path, data in blobs.items()}


def _frame(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))


@pytest.fixture(scope="module")
def runs(azurite, tmp_path_factory, instance):
    root = tmp_path_factory.mktemp("object_store")
    raw = root / "raw"
    end = (pd.Timestamp(LAST) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    write_kaggle_csv(simulate(SimulationConfig(machines=15, start=FIRST, end=end, seed=11)), raw)
    container = azurite.create_container("pm-assets-test")
    stores = {
        "local": {name: str(root / "local" / name) for name in ("warehouse", "quarantine", "models", "outputs")},
        "azure": {name: f"{container}/{name}" for name in ("warehouse", "quarantine", "models", "outputs")},
    }
    for name, where in stores.items():
        started = time.perf_counter()
        _run(root / name, raw, where, instance)
        print(f"{name}: {time.perf_counter() - started:.1f} s")
    return stores


def test_the_graph_stores_the_same_frames_in_a_container(runs):
    local, azure = _files(runs["local"]["warehouse"]), _files(runs["azure"]["warehouse"])
    assert len(local) >= 8 * DAYS + MONITORED and set(azure) == set(local)  # every daily asset's every day
    assert sum(name.startswith("monitoring/") for name in local) == MONITORED
    for name in (
        "source_files.parquet",
        "monitoring_history.parquet",
        *(n for n in local if n.startswith("monitoring/")),
    ):
        # what differs, and only that: the inventory's ingestion times, the reports' location (the container)
        here, there = _frame(local.pop(name)), _frame(azure.pop(name))
        differs = {"source_files.parquet": "ingested_at"}.get(name, "report")
        if differs == "report":
            assert there["report"].str.startswith(runs["azure"]["outputs"]).all(), name
        pd.testing.assert_frame_equal(there.drop(columns=differs), here.drop(columns=differs), obj=name)
    different = sorted(name for name in local if azure[name] != local[name])  # the rest: the same bytes
    assert not different, different[:10]
    quarantined = _files(runs["local"]["quarantine"])
    assert quarantined, "the simulated fleet quarantines rows (duplicates, bounds): nothing was compared"
    assert _files(runs["azure"]["quarantine"]) == quarantined


def test_the_registry_in_a_container_verifies_what_it_loads(runs):
    registry = LocalRegistry(runs["azure"]["models"])
    assert registry.versions() == ["v0001"] and registry.champion() == "v0001"
    local = LocalRegistry(runs["local"]["models"])
    assert registry.card("v0001")["sha256"] == local.card("v0001")["sha256"]  # the same model, byte for byte
    assert type(registry.load("v0001")).__name__ == type(local.load("v0001")).__name__
    artifact = as_path(runs["azure"]["models"]) / "v0001" / "model.joblib"
    original = artifact.read_bytes()
    write_bytes_atomic(artifact, original + b"\0")
    try:
        with pytest.raises(RegistryError, match="was changed after registration"):
            registry.load("v0001")
    finally:
        write_bytes_atomic(artifact, original)
    assert registry.load("v0001") is not None


def test_a_version_name_is_claimed_once(runs):
    models = as_path(runs["azure"]["models"])
    assert not write_new(models / "v0001" / ".claim", b"another training")  # taken by the run above
    claim = models / "v0099" / ".claim"
    assert write_new(claim, b"first") and not write_new(claim, b"second")
    assert read_bytes(claim) == b"first"
    assert LocalRegistry(runs["azure"]["models"]).versions() == ["v0001"]  # a claim without a card is no version


def test_the_reports_are_in_the_container(runs):
    monitoring = as_path(runs["azure"]["outputs"]) / "monitoring"
    summary = json.loads((monitoring / LAST / "monitoring_summary.json").read_text())
    assert summary["date"] == LAST and summary["traffic_light"] in ("green", "yellow", "red")
    assert {p.name for p in (monitoring / LAST).iterdir()} == {
        p.name for p in (as_path(runs["local"]["outputs"]) / "monitoring" / LAST).iterdir()
    }
    index = (monitoring / "index.html").read_text()
    assert f'href="{LAST}/report.html"' in index  # relative links: the page works where it is
