"""Load-time settings: where data lives and which days the partitions cover.

These are read once when the code location loads (partitions must exist before any run config does), from
environment variables with documented defaults. Run-time settings live in Dagster ``Config`` and
``ConfigurableResource`` classes next to the assets and resources that use them.

| variable | default | meaning |
|---|---|---|
| ``PM_DATA_DIR`` | ``<project>/data`` | root of everything the project reads and writes |
| ``PM_RAW_DIR`` | ``$PM_DATA_DIR/raw/azure_pm`` | the five Kaggle CSV files (``.csv`` or ``.csv.gz``) |
| ``PM_PARTITION_START`` | ``2015-01-01`` | first daily partition (UTC) |
| ``PM_PARTITION_END`` | ``2016-01-02`` | end of the last daily partition, exclusive |
| ``PM_SENSOR_INTERVAL_SECONDS`` | ``30`` | minimum seconds between two ticks of ``retraining_sensor`` |

The default range, 2015-01-01 .. 2016-01-01 (366 daily partitions), is the span of the real Kaggle files, whose
telemetry runs from 2015-01-01 06:00 to 2016-01-01 06:00. ``pm-assets main`` simulates the whole range when there
is no data.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("PM_DATA_DIR", PROJECT_ROOT / "data"))
RAW_DIR = Path(os.environ.get("PM_RAW_DIR", DATA_DIR / "raw" / "azure_pm"))
WAREHOUSE_DIR = DATA_DIR / "warehouse"  # parquet written by the IO manager, one file per asset partition
QUARANTINE_DIR = DATA_DIR / "quarantine"  # rejected rows with their reasons, one file per table partition
MODELS_DIR = DATA_DIR / "models"  # the model registry (versions, cards, champion pointer)
OUTPUTS_DIR = DATA_DIR / "outputs"  # reports for people: monitoring CSV/JSON/HTML

PARTITION_START = os.environ.get("PM_PARTITION_START", "2015-01-01")
PARTITION_END = os.environ.get("PM_PARTITION_END", "2016-01-02")
SENSOR_INTERVAL_SECONDS = int(os.environ.get("PM_SENSOR_INTERVAL_SECONDS", "30"))
