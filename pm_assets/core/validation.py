"""Row validation: which parsed rows are kept (typed) and which are quarantined, with the rules they broke.

Every parsed row either is kept (typed per :mod:`pm_assets.core.schema`) or goes to the rejected table with the
rules it broke and a human reason naming the value. Nothing is dropped: ``rows in == kept + rejected``.

The same rule functions serve twice: here, to split incoming rows, and in the asset checks, to verify that what
was stored still satisfies every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pm_assets.core.parsing import LINE_COLUMN, PROBLEM_COLUMN, RAW_COLUMN
from pm_assets.core.schema import TableSpec

#: Column of staged rows naming the file they came from (see :mod:`pm_assets.core.landing`).
FILE_COLUMN = "source_file"
#: Column of staged rows read back: the staging bucket (day) they came from.
STAGED_DAY = "staged_day"
#: Column of staged rows: why the row's timestamp is not plausible ("" when it is), decided when it was staged.
TIME_PROBLEM = "time_problem"
#: Where a rejected row came from, kept with it in the quarantine when the input has them.
PROVENANCE = (FILE_COLUMN, RAW_COLUMN, STAGED_DAY)

REASON_COLUMN = "reason"
RULES_COLUMN = "rules"

#: A rule returns, for a frame, a boolean mask of violating rows and a function giving each one's message.
RuleResult = tuple[np.ndarray, Callable[[np.ndarray], list[str]]]


def _fmt(values: pd.Series, positions: np.ndarray) -> list[str]:
    return [repr(v) if isinstance(v, str) else str(v) for v in values.to_numpy()[positions]]


def _is_missing(values: pd.Series) -> np.ndarray:
    missing = values.isna().to_numpy()
    if values.dtype == object:
        missing = missing | (values.astype(str).str.strip() == "").to_numpy()
    return missing


def _by_column(masks: dict[str, np.ndarray], rows: int, message: Callable[[str, int], str]) -> RuleResult:
    """A rule checked column by column: a row violates it when any column's mask is set, and its message joins
    ``message(column, row)`` of each such column, in the columns' order."""
    mask = np.logical_or.reduce(list(masks.values())) if masks else np.zeros(rows, bool)

    def messages(pos: np.ndarray) -> list[str]:
        return ["; ".join(message(c, p) for c in masks if masks[c][p]) for p in pos]

    return mask, messages


def rule_parse_problem(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    problems = frame[PROBLEM_COLUMN].to_numpy(dtype=object) if PROBLEM_COLUMN in frame else np.full(len(frame), "")
    mask = problems != ""
    return mask, lambda pos: [str(p) for p in problems[pos]]


def rule_implausible_time(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    problems = (
        frame[TIME_PROBLEM].fillna("").to_numpy(dtype=object) if TIME_PROBLEM in frame else np.full(len(frame), "")
    )
    mask = problems != ""  # chunks staged before this rule existed have no such column (NaN when read together)
    return mask, lambda pos: [str(p) for p in problems[pos]]


@dataclass(frozen=True)
class PlausibleTimes:
    """The timestamps a row may have: not before ``earliest`` (the first partition minus the history the assets
    read), not after ``latest`` (now plus a tolerance for clocks ahead). A row outside is quarantined with the
    reason, e.g. a 2031 row in a 2015 file or the 1970-01-01 of an unset clock."""

    earliest: pd.Timestamp
    latest: pd.Timestamp
    earliest_why: str = ""
    latest_why: str = ""

    def problems(self, times: pd.Series, column: str = "datetime") -> np.ndarray:
        """The reason for each timestamp outside the range ("" inside, and for NaT)."""
        values = times.to_numpy()
        out = np.full(len(values), "", dtype=object)
        early = np.flatnonzero(values < np.datetime64(self.earliest))
        late = np.flatnonzero(values > np.datetime64(self.latest))
        for positions, side, bound, why in (
            (early, "before", self.earliest, self.earliest_why),
            (late, "after", self.latest, self.latest_why),
        ):
            for p in positions:
                out[p] = (
                    f"{column}: {pd.Timestamp(values[p])} is {side} the plausible range "
                    f"({'starts' if side == 'before' else 'ends'} {bound}{': ' + why if why else ''})"
                )
        return out


def rule_missing_value(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    problems = frame[PROBLEM_COLUMN].to_numpy(dtype=object) if PROBLEM_COLUMN in frame else np.full(len(frame), "")
    per_col = {c: _is_missing(frame[c]) & (problems == "") for c in spec.columns}
    return _by_column(per_col, len(frame), lambda c, p: f"{c}: missing value")


def rule_not_on_the_hour(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    times = frame[spec.time_column]
    mask = (times.notna() & (times != times.dt.floor("h"))).to_numpy()
    return mask, lambda pos: [f"{spec.time_column}: {t} is not on the hour" for t in times.to_numpy()[pos]]


def rule_unknown_category(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    masks = {
        c: (
            frame[c].notna()
            & ~frame[c].astype(object).isin(list(allowed))
            & ~pd.Series(_is_missing(frame[c]), index=frame.index)
        ).to_numpy()
        for c, allowed in spec.categories.items()
    }
    return _by_column(
        masks,
        len(frame),
        lambda c, p: f"{c}: unknown value {frame[c].iloc[p]!r} (allowed {', '.join(spec.categories[c])})",
    )


def rule_out_of_bounds(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    masks = {}
    for c, (lo, hi) in spec.bounds.items():
        v = frame[c].astype("float64")
        masks[c] = (v.notna() & ((v < lo) | (v > hi))).to_numpy()
    return _by_column(
        masks,
        len(frame),
        lambda c, p: f"{c}: {frame[c].iloc[p]} outside [{spec.bounds[c][0]:g}, {spec.bounds[c][1]:g}]",
    )


@dataclass(frozen=True)
class Fleet:
    """The machines other tables may name: the valid ids, and the machines the machines table rejected with why
    (so that their rows are quarantined with the true reason, not as unknown machines)."""

    ids: np.ndarray
    rejected: dict[int, str] = field(default_factory=dict)

    @classmethod
    def from_machines(cls, kept: pd.DataFrame, rejected: pd.DataFrame | None = None) -> Fleet:
        """The fleet of a validated machines table: its kept ids, and each rejected id that is not also kept (an
        exact repeat of a kept machine is no rejection of it) with the reason and where it was read."""
        ids = kept["machineID"].to_numpy(dtype="float64")
        out: dict[int, str] = {}
        if rejected is not None and len(rejected):
            known = set(ids.tolist())
            for row in rejected.itertuples(index=False):
                machine = row.machineID
                if pd.isna(machine) or float(machine) in known or int(machine) in out:
                    continue
                where = (
                    ""
                    if getattr(row, RULES_COLUMN) == CONFLICT_RULE
                    else f" ({getattr(row, FILE_COLUMN, 'PdM_machines')} line {getattr(row, LINE_COLUMN)})"
                )
                out[int(machine)] = getattr(row, REASON_COLUMN) + where
        return cls(ids, out)

    @classmethod
    def of(cls, machine_ids) -> Fleet | None:
        if machine_ids is None or isinstance(machine_ids, Fleet):
            return machine_ids
        return cls(np.asarray(list(machine_ids), dtype="float64"))


def rule_unknown_machine(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    fleet = Fleet.of(machine_ids)
    if fleet is None:
        return np.zeros(len(frame), bool), lambda pos: []
    ids = frame["machineID"]
    rejected = np.asarray(list(fleet.rejected), dtype="float64")
    mask = (ids.notna() & ~ids.isin(fleet.ids) & ~ids.isin(rejected)).to_numpy()
    return mask, lambda pos: [f"machineID: {v:g} is not in the machines table" for v in ids.to_numpy()[pos]]


def rule_rejected_machine(frame: pd.DataFrame, spec: TableSpec, machine_ids) -> RuleResult:
    fleet = Fleet.of(machine_ids)
    if fleet is None or not fleet.rejected:
        return np.zeros(len(frame), bool), lambda pos: []
    ids = frame["machineID"]
    mask = ids.isin(np.asarray(list(fleet.rejected), dtype="float64")).to_numpy()
    return mask, lambda pos: [f"machine {v:g} was rejected: {fleet.rejected[int(v)]}" for v in ids.to_numpy()[pos]]


#: The rules, in the order their reasons are listed. Duplicate keys are decided after these (see below).
RULES: dict[str, Callable[..., RuleResult]] = {
    "unparseable_value": rule_parse_problem,
    "implausible_time": rule_implausible_time,
    "missing_value": rule_missing_value,
    "not_on_the_hour": rule_not_on_the_hour,
    "unknown_category": rule_unknown_category,
    "out_of_bounds": rule_out_of_bounds,
    "unknown_machine": rule_unknown_machine,
    "rejected_machine": rule_rejected_machine,
}
DUPLICATE_RULE = "duplicate_key"
#: Rows of a table that rejects conflicts (machines) whose key repeats with other values: every one is rejected.
CONFLICT_RULE = "conflicting_duplicate"
ALL_RULES: tuple[str, ...] = (*RULES, CONFLICT_RULE, DUPLICATE_RULE)


def rule_applies(rule: str, spec: TableSpec) -> bool:
    """Whether ``rule`` (a name of :data:`ALL_RULES`) is checked on ``spec``'s table: the time rules on a table with
    a time column, the category and bound rules on one with such columns, the machine rules on every table but
    machines (which defines the machines), the conflict rule on one that rejects conflicts; the others on every
    table. Validation and the asset checks both ask this."""
    if rule in ("implausible_time", "not_on_the_hour"):
        return spec.time_column is not None
    if rule == "unknown_category":
        return bool(spec.categories)
    if rule == "out_of_bounds":
        return bool(spec.bounds)
    if rule in ("unknown_machine", "rejected_machine"):
        return spec.name != "machines"
    if rule == CONFLICT_RULE:
        return spec.reject_conflicts
    return True


def _applied_rules(spec: TableSpec) -> dict[str, Callable[..., RuleResult]]:
    """The rules of :data:`RULES` that apply to ``spec``'s table, in their order."""
    return {name: rule for name, rule in RULES.items() if rule_applies(name, spec)}


def duplicate_mask(frame: pd.DataFrame, spec: TableSpec) -> np.ndarray:
    """Rows whose key already appeared on an earlier row (the first occurrence is kept)."""
    return frame.duplicated(subset=list(spec.key), keep="first").to_numpy()


def conflict_mask(frame: pd.DataFrame, spec: TableSpec) -> np.ndarray:
    """Rows whose key repeats with different values in the other columns, when the table rejects conflicts (which
    row is right cannot be told by file order); none otherwise."""
    if not rule_applies(CONFLICT_RULE, spec) or frame.empty:
        return np.zeros(len(frame), bool)
    key, rest = list(spec.key), [c for c in spec.columns if c not in spec.key]
    distinct = frame[key + rest].astype(object).drop_duplicates().groupby(key, dropna=False).size()
    conflicting = distinct[distinct > 1].index
    return frame.set_index(key).index.isin(conflicting)


def count_violations(frame: pd.DataFrame, spec: TableSpec, machine_ids=None) -> dict[str, int]:
    """How many rows of ``frame`` break each rule: the asset checks' view of a stored table."""
    applied = _applied_rules(spec)
    counts = {name: int(applied[name](frame, spec, machine_ids)[0].sum()) if name in applied else 0 for name in RULES}
    counts[CONFLICT_RULE] = int(conflict_mask(frame, spec).sum())
    counts[DUPLICATE_RULE] = int(duplicate_mask(frame, spec).sum())
    return counts


@dataclass(frozen=True)
class ValidationResult:
    kept: pd.DataFrame  # typed per schema, without the parser's bookkeeping columns
    rejected: pd.DataFrame  # the spec's columns plus source_line, rules, reason

    @property
    def rows_in(self) -> int:
        return len(self.kept) + len(self.rejected)

    def rejected_by_rule(self) -> dict[str, int]:
        if self.rejected.empty:
            return {r: 0 for r in ALL_RULES}
        split = self.rejected[RULES_COLUMN].str.split(",").explode()
        return {r: int((split == r).sum()) for r in ALL_RULES}


@dataclass
class ValidationTotals:
    """Validation results of a range's chunks, summed: what the raw checks and a run's metadata need, without the
    kept rows (``add`` each chunk's staged rows and result in order)."""

    spec: TableSpec
    machine_ids: object = None
    rows_in: int = 0  # staged rows read
    kept_rows: int = 0
    schema: pd.DataFrame | None = None  # the kept rows' columns and dtypes (no rows), when every chunk agrees
    schema_agrees: bool = True
    stored: dict = field(default_factory=dict)  # rule -> kept rows breaking it (count_violations)
    rejected_parts: list = field(default_factory=list)
    files: dict = field(default_factory=dict)  # source file -> staged rows it brought, in arrival order
    machines_seen: set = field(default_factory=set)
    first_time: pd.Timestamp | None = None  # of the staged rows
    last_time: pd.Timestamp | None = None

    @classmethod
    def of(cls, rows: pd.DataFrame, result: ValidationResult, spec: TableSpec, machine_ids=None) -> ValidationTotals:
        totals = cls(spec, machine_ids)
        totals.add(rows, result)
        return totals

    def add(self, rows: pd.DataFrame, result: ValidationResult) -> None:
        self.rows_in += len(rows)
        self.kept_rows += len(result.kept)
        shape = result.kept.head(0)
        if self.schema is None and self.schema_agrees:
            self.schema = shape
        elif self.schema is not None and not (
            list(shape.columns) == list(self.schema.columns) and (shape.dtypes == self.schema.dtypes).all()
        ):
            self.schema, self.schema_agrees = None, False
        for rule, n in count_violations(result.kept, self.spec, self.machine_ids).items():
            self.stored[rule] = self.stored.get(rule, 0) + n
        self.rejected_parts.append(result.rejected)
        if FILE_COLUMN in rows and len(rows):
            for name, n in rows.groupby(FILE_COLUMN, sort=False).size().items():
                self.files[name] = self.files.get(name, 0) + int(n)
        if "machineID" in result.kept:
            self.machines_seen.update(result.kept["machineID"].unique().tolist())
        time_column = self.spec.time_column
        if time_column and time_column in rows and rows[time_column].notna().any():
            first, last = rows[time_column].min(), rows[time_column].max()
            self.first_time = first if self.first_time is None else min(self.first_time, first)
            self.last_time = last if self.last_time is None else max(self.last_time, last)

    @property
    def rejected(self) -> pd.DataFrame:
        parts = [p for p in self.rejected_parts if len(p)] or self.rejected_parts[:1]
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)

    @property
    def rows_validated(self) -> int:
        """Rows kept plus rows rejected: equals ``rows_in`` when no row was lost."""
        return self.kept_rows + sum(len(p) for p in self.rejected_parts)

    def rejected_by_rule(self) -> dict[str, int]:
        return ValidationResult(
            kept=self.schema if self.schema is not None else pd.DataFrame(), rejected=self.rejected
        ).rejected_by_rule()


def to_schema_types(frame: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
    """Cast validated rows to the stored types (see :mod:`pm_assets.core.schema`)."""
    out = pd.DataFrame(index=frame.index)
    for c in spec.columns:
        kind = spec.kinds[c]
        if kind == "timestamp":
            out[c] = frame[c].astype("datetime64[ns]")
        elif kind == "id":
            out[c] = frame[c].astype("int32")
        elif kind == "int":
            out[c] = frame[c].astype("int64")
        elif kind == "float":
            out[c] = frame[c].astype("float64")
        else:
            out[c] = pd.Categorical(frame[c].astype(object), categories=list(spec.categories[c]))
    return out.reset_index(drop=True)


def empty_table(spec: TableSpec) -> pd.DataFrame:
    """A table with no rows and the stored column types."""
    return to_schema_types(pd.DataFrame(columns=list(spec.columns)), spec)


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


def _where(row: pd.Series) -> str:
    line = f"line {row[LINE_COLUMN]}"
    return f"{row[FILE_COLUMN]} {line}" if FILE_COLUMN in row.index and isinstance(row[FILE_COLUMN], str) else line


def kaggle_lines(frame: pd.DataFrame, spec: TableSpec) -> list[str]:
    """Rows written as lines of their Kaggle file: timestamps ``YYYY-MM-DD HH:MM:SS``, ids as integers, floats at
    round-trip precision, strings quoted; a missing value is empty."""
    columns = []
    for c in spec.columns:
        values, kind = frame[c], spec.kinds[c]
        if kind == "timestamp":
            text = values.dt.strftime("%Y-%m-%d %H:%M:%S")
        elif kind in ("id", "int"):
            text = values.map(lambda v: "" if pd.isna(v) else f"{v:.0f}" if float(v).is_integer() else repr(float(v)))
        elif kind == "float":
            text = values.map(lambda v: "" if pd.isna(v) else repr(float(v)))
        else:
            text = values.map(lambda v: "" if pd.isna(v) else f'"{v}"')
        columns.append(text.fillna("").astype(str).tolist())
    return [",".join(fields) for fields in zip(*columns)]


def validate_rows(frame: pd.DataFrame, spec: TableSpec, machine_ids: Iterable[int] | None = None) -> ValidationResult:
    """Split parsed rows into kept (typed) and rejected (with rules and reasons).

    ``frame`` comes from :func:`pm_assets.core.parsing.read_source_csv` (or any slice of it).
    ``machine_ids``: the valid machine ids (the machines table), or a :class:`Fleet` that also says which machines
    were rejected and why; ``None`` skips those rules.
    Duplicate keys: among rows that pass every other rule, the first occurrence in the file is kept and each
    later one is rejected naming the line it repeats; in a table that rejects conflicts (machines), a key repeated
    with other values rejects every row of it, naming all their lines.
    A rejected row keeps its raw text (``raw_line``): the line as read when the parser had a problem with it, else
    the line in the Kaggle format written from its exact values (what a fixed file would hold).
    """
    frame = frame.reset_index(drop=True)
    n = len(frame)
    machine_ids = Fleet.of(machine_ids)
    reasons: dict[int, list[str]] = {}
    rules: dict[int, list[str]] = {}
    bad = np.zeros(n, bool)
    for name, rule in _applied_rules(spec).items():
        mask, messages = rule(frame, spec, machine_ids)
        pos = np.flatnonzero(mask)
        for p, msg in zip(pos, messages(pos)):
            reasons.setdefault(p, []).append(msg)
            rules.setdefault(p, []).append(name)
        bad |= mask
    clean_pos = np.flatnonzero(~bad)
    conflict = conflict_mask(frame.iloc[clean_pos], spec)
    if conflict.any():
        rows = frame.iloc[clean_pos[conflict]]
        rest = [c for c in spec.columns if c not in spec.key]
        for _, group in rows.groupby(list(spec.key), sort=False):
            where = [
                f"{_where(row)} ({', '.join(f'{c} {_shown(row[c])}' for c in rest)})" for _, row in group.iterrows()
            ]
            key = ", ".join(f"{c} {_shown(group[c].iloc[0])}" for c in spec.key)
            message = f"{key} is listed with different values: {'; '.join(where)}; which is right cannot be told"
            for p in group.index:
                reasons[p], rules[p] = [message], [CONFLICT_RULE]
        bad[clean_pos[conflict]] = True
        clean_pos = np.flatnonzero(~bad)
    dup = duplicate_mask(frame.iloc[clean_pos], spec)
    if dup.any():
        clean = frame.iloc[clean_pos]
        groups = clean.groupby(list(spec.key), observed=True, sort=False)
        first_line = groups[LINE_COLUMN].transform("first").to_numpy()
        # staged rows of several files: name the file of the first occurrence when it is another one
        first_file = groups[FILE_COLUMN].transform("first").to_numpy() if FILE_COLUMN in clean else None
        own_file = clean[FILE_COLUMN].to_numpy() if FILE_COLUMN in clean else None
        for i, (p, line) in enumerate(zip(clean_pos[dup], first_line[dup])):
            where = f"line {line}"
            if first_file is not None and first_file[dup][i] != own_file[dup][i]:
                where = f"{first_file[dup][i]} line {line}"
            reasons[p] = [f"duplicate of {where} (same {', '.join(spec.key)})"]
            rules[p] = [DUPLICATE_RULE]
        bad[clean_pos[dup]] = True

    kept = to_schema_types(frame.loc[~bad, list(spec.columns)], spec)
    rejected = frame.loc[bad, [*spec.columns, LINE_COLUMN, *(c for c in PROVENANCE if c in frame)]].copy()
    for c in spec.categories:
        rejected[c] = rejected[c].astype(object)
    for column in PROVENANCE:
        if column in rejected:
            rejected[column] = rejected[column].astype(str)  # one dtype whether or not any row was rejected
    bad_pos = np.flatnonzero(bad)
    if RAW_COLUMN in rejected:
        missing = (rejected[RAW_COLUMN] == "").to_numpy()
        if missing.any():
            rejected.loc[missing, RAW_COLUMN] = kaggle_lines(rejected.loc[missing], spec)
    rejected[RULES_COLUMN] = pd.Series([",".join(rules[p]) for p in bad_pos], index=rejected.index, dtype=str)
    rejected[REASON_COLUMN] = pd.Series(["; ".join(reasons[p]) for p in bad_pos], index=rejected.index, dtype=str)
    return ValidationResult(kept=kept, rejected=rejected.reset_index(drop=True))
