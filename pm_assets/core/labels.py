"""Failure labels per snapshot: which component fails within the horizon, and whether we can know yet.

For a snapshot at ``t``, component K is labelled when a failure of K is recorded in ``(t, t + horizon]`` (a
failure at ``t`` itself has already happened and belongs to the snapshots before it).

Maturity: a negative label is only known once the whole horizon has been observed, i.e. when
``t + horizon <= observed_until`` (the end of the failure data ingested so far). A positive label is known as
soon as its failure is recorded. Immature labels keep ``label_mature = False`` and a missing class, so training
and performance monitoring cannot take them for negatives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pm_assets.core.schema import COMPONENTS

NO_FAILURE = "none"
DEFAULT_HORIZON_HOURS = 24
LABEL_CLASSES: tuple[str, ...] = (NO_FAILURE, *COMPONENTS)


def build_labels(snapshots: pd.DataFrame, failures: pd.DataFrame, horizon_hours: int, observed_until) -> pd.DataFrame:
    """Labels for each (machineID, datetime) row of ``snapshots``.

    Columns: the keys; ``fails_comp1..4`` (bool, known positives); ``failure_component`` (category none/comp1..4,
    the earliest failing component, ties to the lower number; missing when immature); ``failure_within_horizon``
    (nullable boolean, missing when immature); ``hours_to_failure`` (NaN without failure); ``label_mature``.
    """
    horizon = pd.Timedelta(hours=horizon_hours)
    observed_until = pd.Timestamp(observed_until)
    keys = snapshots[["machineID", "datetime"]].reset_index(drop=True)
    order = pd.DataFrame(
        {
            "datetime": keys["datetime"].to_numpy(),
            "machineID": keys["machineID"].to_numpy().astype(np.int64),
            "position": np.arange(len(keys)),
        }
    ).sort_values("datetime", kind="stable")
    hours = np.full((len(keys), len(COMPONENTS)), np.nan)
    for k, comp in enumerate(COMPONENTS):
        events = failures.loc[
            (failures["failure"] == comp) & (failures["datetime"] <= observed_until), ["datetime", "machineID"]
        ]
        events = pd.DataFrame(
            {
                "datetime": events["datetime"].to_numpy(),
                "failed": events["datetime"].to_numpy(),
                "machineID": events["machineID"].to_numpy().astype(np.int64),
            }
        ).sort_values("datetime")
        merged = pd.merge_asof(
            order,
            events,
            on="datetime",
            by="machineID",
            direction="forward",
            allow_exact_matches=False,
            tolerance=horizon,
        )
        hours[merged["position"].to_numpy(), k] = (
            (merged["failed"] - merged["datetime"]) / pd.Timedelta(hours=1)
        ).to_numpy()
    out = keys.copy()
    fails = ~np.isnan(hours)
    for k, comp in enumerate(COMPONENTS):
        out[f"fails_{comp}"] = fails[:, k]
    any_failure = fails.any(axis=1)
    first = np.where(any_failure, np.nanargmin(np.where(fails, hours, np.inf), axis=1), -1)
    mature = any_failure | ((keys["datetime"] + horizon) <= observed_until).to_numpy()
    component = np.where(first >= 0, np.array(COMPONENTS, dtype=object)[np.maximum(first, 0)], NO_FAILURE)
    out["failure_component"] = pd.Categorical(np.where(mature, component, None), categories=list(LABEL_CLASSES))
    out["failure_within_horizon"] = pd.array(np.where(mature, any_failure, None), dtype="boolean")
    out["hours_to_failure"] = np.where(any_failure, np.nanmin(np.where(fails, hours, np.inf), axis=1), np.nan)
    out["label_mature"] = mature
    return out


def observed_until(first_key: str, loaded: list[str]) -> pd.Timestamp:
    """End of the contiguous run of failure partitions (YYYY-MM-DD keys in ``loaded``) that starts at
    ``first_key``: the failures known until then (the labels' ``observed_until``)."""
    day = pd.Timestamp(first_key)
    available = set(loaded)
    while day.strftime("%Y-%m-%d") in available:
        day += pd.Timedelta(days=1)
    return day


@dataclass
class LabelTotals:
    """The label tables of a ranged run, summed chunk by chunk (``add`` each): snapshots, mature ones, snapshots
    per class (immature ones as "immature"), and immature snapshots that carry a class (a leak when any)."""

    rows: int = 0
    mature: int = 0
    immature: int = 0
    leaked: int = 0
    counts: pd.Series = field(default_factory=lambda: pd.Series(dtype="int64"))
    schema: pd.DataFrame | None = None  # the columns and dtypes (no rows) of the last table added

    def add(self, table: pd.DataFrame) -> None:
        counts = table["failure_component"].astype(object).fillna("immature").value_counts()
        self.counts = self.counts.add(counts, fill_value=0)
        immature = table[~table["label_mature"]]
        self.leaked += int(
            immature["failure_component"].notna().sum() + immature["failure_within_horizon"].notna().sum()
        )
        self.immature += len(immature)
        self.rows += len(table)
        self.mature += int(table["label_mature"].sum())
        self.schema = table.head(0)

    @property
    def share_mature(self) -> float:
        return self.mature / self.rows if self.rows else 0.0

    def class_counts(self) -> pd.DataFrame:
        """Snapshots per class, most first (columns ``class``, ``snapshots``)."""
        counts = self.counts.astype("int64").sort_values(ascending=False, kind="stable")
        return counts.rename_axis("class").reset_index(name="snapshots")
