"""Small helpers every asset module uses: metadata for people, schemas, per-day groups, progress, the daily
decorator arguments, code versions, chunked inputs, Config to core params."""

import dataclasses
import hashlib
import importlib
import sys
import time
import types

import numpy as np
import pandas as pd
from dagster import AssetIn, TableColumn, TableSchema

from pm_assets import settings
from pm_assets.core.chunks import day_chunks
from pm_assets.core.columns import describe

#: Significant digits of a float shown in the UI (the stored data keeps full precision).
SHOWN_DIGITS = 4


def shown(metadata: dict) -> dict:
    """Metadata for people: every float rounded to 4 significant digits (0.9972727272727273 is shown 0.9973), NaN
    kept (the point is missing), everything else as it is."""
    out = {}
    for key, value in metadata.items():
        if isinstance(value, (float, np.floating)) and np.isfinite(value):
            value = float(f"{float(value):.{SHOWN_DIGITS}g}")
        elif isinstance(value, np.floating):
            value = float(value)
        out[key] = value
    return out


def run_summary(**figures) -> str:
    """What a ranged run did, as one line of text (``run``): a run's totals are no per-day figure, and as numbers the
    UI would plot them beside each partition's own. ``rows_kept=870744`` reads "rows kept 870,744"."""

    def text(value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return str(bool(value)).lower()
        if isinstance(value, (int, np.integer)):
            return f"{int(value):,}"
        if isinstance(value, (float, np.floating)):
            return f"{float(value):.{SHOWN_DIGITS}g}"
        return str(value)

    return ", ".join(f"{name.replace('_', ' ')} {text(value)}" for name, value in figures.items())


class Progress:
    """Progress of a long step in its log, at most every ``every`` seconds: ``progress: 120/366 days, 14.2 s,
    ~29 s left`` (``pm-assets main`` shows these lines as they come)."""

    def __init__(self, log, total: int, unit: str = "days", every: float = 5.0):
        self.log, self.total, self.unit, self.every = log, total, unit, every
        self.started = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        elapsed = now - self.started
        left = elapsed / done * (self.total - done) if done else float("nan")
        self.log.info(f"progress: {done}/{self.total} {self.unit}, {elapsed:.1f} s, ~{left:.0f} s left")


def column_schema(frame: pd.DataFrame) -> TableSchema:
    """The frame's columns with their stored types and descriptions (:mod:`pm_assets.core.columns`)."""
    return TableSchema(
        columns=[TableColumn(name=c, type=str(t), description=describe(c)) for c, t in frame.dtypes.items()]
    )


def by_day(frame: pd.DataFrame, column: str = "datetime"):
    """``frame`` grouped by the partition key (YYYY-MM-DD) of ``column``, days in order.

    The key strings are formatted once per distinct day (formatting every row's timestamp cost ~1 s a year)."""
    days, codes = np.unique(frame[column].to_numpy().astype("datetime64[D]"), return_inverse=True)
    codes = codes.reshape(-1)
    if len(days) and np.isnat(days[-1]):  # NaT sorts last; like a missing key, it forms no group
        codes[codes == len(days) - 1], days = -1, days[:-1]
    keys = pd.Categorical.from_codes(codes, categories=np.datetime_as_string(days, unit="D"))
    return frame.groupby(pd.Series(keys, index=frame.index, name=column), observed=True)


def backfill_policy():
    """A backfill as one run (the default: one machine, every partition in one process), or as runs of at most
    ``PM_BACKFILL_CHUNK_DAYS`` days each (a cluster: chunks run in parallel on separate workers). Every daily asset
    reads its lookback from the days before its chunk, so the chunks give the single run's results (tested)."""
    from dagster import BackfillPolicy

    from pm_assets.settings import BACKFILL_CHUNK_DAYS

    if BACKFILL_CHUNK_DAYS is None:
        return BackfillPolicy.single_run()
    return BackfillPolicy.multi_run(max_partitions_per_run=BACKFILL_CHUNK_DAYS)


def daily_partitioned(partition_expr: str = "datetime") -> dict:
    """The decorator arguments every daily asset shares: the daily partitions, the backfill policy, and the column
    the IO manager splits a ranged run's output by."""
    from pm_assets.partitions import daily_partitions

    return {
        "partitions_def": daily_partitions,
        "backfill_policy": backfill_policy(),
        "metadata": {"partition_expr": partition_expr},
    }


#: Code every asset runs through: the IO manager that stores its output.
ALWAYS_USED = ("pm_assets.resources",)


def code_modules(module_name: str) -> dict[str, str]:
    """{module name: source file} of ``module_name``, of :data:`ALWAYS_USED` and of every ``pm_assets`` module they
    use, directly or through another (found from the modules' globals: imported modules, functions, classes)."""
    seen: dict[str, str] = {}
    todo = [module_name, *ALWAYS_USED]
    for name in (module_name, *ALWAYS_USED):
        importlib.import_module(name)  # loaded now, whatever the import order, so the version is the same every time
    while todo:
        name = todo.pop()
        module = sys.modules.get(name)
        if name in seen or module is None or not getattr(module, "__file__", None):
            continue
        seen[name] = module.__file__
        for value in list(vars(module).values()):
            used = value.__name__ if isinstance(value, types.ModuleType) else getattr(value, "__module__", None)
            if isinstance(used, str) and used.startswith("pm_assets.") and used not in seen:
                todo.append(used)
    return seen


def code_version(module_name: str) -> str:
    """The code version of an asset module's assets: sha256 (first 12 hex digits) of the source of the
    :func:`code_modules` of that module (the core functions it calls, the IO manager...). Any change to that code
    is a new version, and Dagster shows the assets built before it as stale; a change elsewhere (another stage, a
    test) is not. Call it after the module's imports."""
    digest = hashlib.sha256()
    for name, path in sorted(code_modules(module_name).items()):
        with open(path, "rb") as source:
            digest.update(name.encode() + b"\0" + source.read())
    return digest.hexdigest()[:12]


def chunked_in(partition_mapping=None, **metadata) -> AssetIn:
    """An input the step reads a chunk of days at a time (a :class:`~pm_assets.core.chunks.StoredPartitions`)."""
    return AssetIn(metadata={"chunked": True, **metadata}, partition_mapping=partition_mapping)


def chunks_of(context) -> list[list[str]]:
    """The run's partition keys in chunks of ``PM_CHUNK_DAYS`` days (``pm_assets.settings``)."""
    return day_chunks(list(context.partition_keys), settings.CHUNK_DAYS)


def params_of(config, params_class, **converted):
    """The core ``params_class`` (a dataclass) from a Dagster ``config``: every field of ``params_class`` that the
    config also has, by name (``converted`` gives the values a config type cannot hold as they are, e.g. a tuple
    from a list). The one way a Config becomes core params; tests check that no field is missed."""
    names = [f.name for f in dataclasses.fields(params_class)]
    values = {name: getattr(config, name) for name in names if name in type(config).model_fields}
    return params_class(**(values | converted))
