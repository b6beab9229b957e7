"""The Azure Predictive Maintenance tables: names, columns, types, value domains and keys.

One place describes each of the five Kaggle files; the parser, the validator, the simulator and the
Dagster checks all read from here. Pure Python: no Dagster import.

Stored types (what every raw parquet file holds):

- ``datetime``: ``datetime64[ns]``, tz-naive, UTC (the Kaggle files carry no zone; the Azure sample is UTC).
- ``machineID``: ``int32`` (a numeric id used for joins and sorting; the set of valid ids is the machines table).
- string domains (``errorID``, ``comp``, ``failure``, ``model``): pandas ``category`` with the fixed categories
  below, so that partitions concatenate without falling back to ``object``.
- sensors: ``float64`` (the features are checked to 1e-9 against reference loops).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SENSORS: tuple[str, ...] = ("volt", "rotate", "pressure", "vibration")
COMPONENTS: tuple[str, ...] = ("comp1", "comp2", "comp3", "comp4")
ERROR_IDS: tuple[str, ...] = ("error1", "error2", "error3", "error4", "error5")
MODELS: tuple[str, ...] = ("model1", "model2", "model3", "model4")

#: The sensor whose readings drift before each component fails (the Azure sample's design).
COMPONENT_SENSOR: dict[str, str] = {"comp1": "volt", "comp2": "rotate", "comp3": "pressure", "comp4": "vibration"}
#: The error types that announce each component's failure.
COMPONENT_ERRORS: dict[str, tuple[str, ...]] = {
    "comp1": ("error1",),
    "comp2": ("error2", "error3"),
    "comp3": ("error4",),
    "comp4": ("error5",),
}

#: Physical plausibility bounds (inclusive) for the sensors. Far wider than anything in the real data
#: (volt 97..255, rotate 138..695, pressure 51..186, vibration 14..76): a row outside is a broken reading.
SENSOR_BOUNDS: dict[str, tuple[float, float]] = {
    "volt": (0.0, 1000.0),
    "rotate": (0.0, 5000.0),
    "pressure": (0.0, 1000.0),
    "vibration": (0.0, 500.0),
}
#: Machine age in years.
AGE_BOUNDS: tuple[float, float] = (0.0, 100.0)

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class TableSpec:
    """How one Kaggle file looks and what a valid row is."""

    name: str  # short table name used for assets and folders
    file_stem: str  # Kaggle file name without extension
    columns: tuple[str, ...]  # exact header, in order
    kinds: dict[str, str]  # column -> "timestamp" | "id" | "float" | "int" | "category"
    key: tuple[str, ...]  # a row's identity; duplicates of it are rejected
    categories: dict[str, tuple[str, ...]] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: A key repeated with other values rejects every row of it (which is right cannot be told by file order);
    #: otherwise the first arrival is kept and later ones are duplicates.
    reject_conflicts: bool = False

    @property
    def time_column(self) -> str | None:
        return "datetime" if "datetime" in self.columns else None


TELEMETRY = TableSpec(
    name="telemetry",
    file_stem="PdM_telemetry",
    columns=("datetime", "machineID", *SENSORS),
    kinds={"datetime": "timestamp", "machineID": "id", **{s: "float" for s in SENSORS}},
    key=("machineID", "datetime"),
    bounds=dict(SENSOR_BOUNDS),
)


def _event_table(name: str, file_stem: str, column: str, domain: tuple[str, ...]) -> TableSpec:
    """An event file: the hour, the machine and one categorical column; the key is all three (several errors, or
    several components, may share one hour)."""
    return TableSpec(
        name=name,
        file_stem=file_stem,
        columns=("datetime", "machineID", column),
        kinds={"datetime": "timestamp", "machineID": "id", column: "category"},
        key=("machineID", "datetime", column),
        categories={column: domain},
    )


ERRORS = _event_table("errors", "PdM_errors", "errorID", ERROR_IDS)
MAINTENANCE = _event_table("maintenance", "PdM_maint", "comp", COMPONENTS)
FAILURES = _event_table("failures", "PdM_failures", "failure", COMPONENTS)
MACHINES = TableSpec(
    name="machines",
    file_stem="PdM_machines",
    columns=("machineID", "model", "age"),
    kinds={"machineID": "id", "model": "category", "age": "int"},
    key=("machineID",),
    categories={"model": MODELS},
    bounds={"age": AGE_BOUNDS},
    reject_conflicts=True,  # which model a machine is cannot be decided by file order
)

TABLES: dict[str, TableSpec] = {t.name: t for t in (TELEMETRY, ERRORS, MAINTENANCE, FAILURES, MACHINES)}
EVENT_TABLES: tuple[str, ...] = ("errors", "maintenance", "failures")
#: The tables with one partition per day (every one but machines).
DAILY_TABLES: tuple[str, ...] = ("telemetry", *EVENT_TABLES)
