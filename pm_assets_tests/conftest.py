"""Shared fixtures.

Tests that read the real Azure PdM files find them in ``../shared/data/azure_pm`` beside the checkout (or in
``PM_REAL_DATA_DIR``). When the folder is absent they skip, except under ``CI=true``, where they must run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def instance():
    """One in-memory Dagster instance for the whole session (SQLite instances lock under concurrency)."""
    from dagster import DagsterInstance

    with DagsterInstance.ephemeral() as inst:
        yield inst
