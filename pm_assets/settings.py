"""Load-time settings: where data lives, which days the partitions cover, how often the sensors look.

These are read once when the code location loads (partitions and sensor intervals must exist before any run config
does), from environment variables with documented defaults. Run-time settings live in Dagster ``Config`` and
``ConfigurableResource`` classes next to the assets and resources that use them.

| variable | default | meaning |
|---|---|---|
| ``PM_DATA_DIR`` | ``<project>/data`` | root of everything the project reads and writes |
| ``PM_STORE_URL`` | empty: ``$PM_DATA_DIR`` | an object store for the warehouse, quarantine, registry and outputs, e.g. ``az://pm-assets`` (credentials from the environment: ``AZURE_STORAGE_CONNECTION_STRING``); landing and staging stay in ``$PM_DATA_DIR`` |
| ``PM_LANDING_DIR`` | ``$PM_DATA_DIR/landing`` | where files in the Kaggle format arrive (``.csv`` or ``.csv.gz``) |
| ``PM_PARTITION_START`` | ``2025-12-01`` | first daily partition (UTC): the start of the fleet's history |
| ``PM_PARTITION_END`` | empty: open-ended | end of the last daily partition, exclusive (``2016-01-02`` for the 2015 Kaggle files) |
| ``PM_SENSOR_INTERVAL_SECONDS`` | ``30`` | minimum seconds between two ticks of ``retraining_sensor`` |
| ``PM_LIVE_INTERVAL_SECONDS`` | ``5`` | minimum seconds between two ticks of ``landing_sensor`` and ``downstream_sensor`` |
| ``PM_DATA_DEADLINE_CRON`` | ``0 6 * * *`` | when a day's data must have arrived (UTC): later, its freshness check fails |
| ``PM_BACKFILL_CHUNK_DAYS`` | empty: one run | a backfill as runs of at most this many days each (a cluster); empty: a single run (one machine) |
| ``DAGSTER_EVENT_BATCH_SIZE`` | ``1000`` | Dagster's own: a ranged run's planned events and a step's materializations are stored in batches of this many (``0``: one by one); this project's storages write a batch in two transactions |
| ``PM_CHUNK_DAYS`` | ``30`` | days a daily step computes at once in a ranged run (its memory is one chunk and the chunk's lookback, not the range) |
| ``PM_AUTOMATION`` | ``off`` | ``on``: every schedule and sensor starts RUNNING (until toggled in the UI), for demos |

Open-ended, the daily partitions end with the last complete UTC day: tonight, yesterday gets its partition. The
default start is the first day of the demo fleet that ``pm-assets main`` simulates up to yesterday.
"""

from __future__ import annotations

import os
from pathlib import Path

from pm_assets.core.chunks import DEFAULT_CHUNK_DAYS
from pm_assets.core.locations import as_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("PM_DATA_DIR", PROJECT_ROOT / "data"))
LANDING_DIR = Path(os.environ.get("PM_LANDING_DIR", DATA_DIR / "landing"))
STAGING_DIR = DATA_DIR / "staging"  # landed files parsed once, split by day, and the ledger of every file seen
#: Where the stores below live: the data folder, or an object store shared by every worker (``PM_STORE_URL``).
STORE_URL = os.environ.get("PM_STORE_URL") or None
_STORES = as_path(STORE_URL) if STORE_URL else DATA_DIR
WAREHOUSE_DIR = _STORES / "warehouse"  # parquet written by the IO manager, one file per asset partition
QUARANTINE_DIR = _STORES / "quarantine"  # rejected rows with their reasons, one file per table partition
MODELS_DIR = _STORES / "models"  # the model registry (versions, cards, champion pointer)
OUTPUTS_DIR = _STORES / "outputs"  # reports for people: monitoring CSV/JSON/HTML

PARTITION_START = os.environ.get("PM_PARTITION_START", "2025-12-01")
PARTITION_END = os.environ.get("PM_PARTITION_END") or None
SENSOR_INTERVAL_SECONDS = int(os.environ.get("PM_SENSOR_INTERVAL_SECONDS", "30"))
LIVE_INTERVAL_SECONDS = int(os.environ.get("PM_LIVE_INTERVAL_SECONDS", "5"))
DATA_DEADLINE_CRON = os.environ.get("PM_DATA_DEADLINE_CRON", "0 6 * * *")
BACKFILL_CHUNK_DAYS = int(os.environ["PM_BACKFILL_CHUNK_DAYS"]) if os.environ.get("PM_BACKFILL_CHUNK_DAYS") else None
CHUNK_DAYS = int(os.environ.get("PM_CHUNK_DAYS") or DEFAULT_CHUNK_DAYS)
AUTOMATION_ON = os.environ.get("PM_AUTOMATION", "off").lower() in ("on", "1", "true", "running")
#: Dagster reads this variable at every event, in the process that writes it; every process that runs this code
#: location's steps imports this module first.
EVENT_BATCH_SIZE = int(os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000"))
