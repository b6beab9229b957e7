"""Row validation: every parsed row is kept (typed) or rejected with its rules, a reason and its line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pm_assets.core.parsing import LINE_COLUMN, RAW_COLUMN, find_source_file, read_source_csv
from pm_assets.core.schema import ERRORS, FAILURES, MACHINES, MAINTENANCE, TELEMETRY, TableSpec
from pm_assets.core.validation import (
    ALL_RULES,
    CONFLICT_RULE,
    REASON_COLUMN,
    RULES_COLUMN,
    Fleet,
    ValidationResult,
    count_violations,
    rule_applies,
    validate_rows,
)
from pm_assets_tests.conftest import Q1_SUBSET, UNION_PARTIAL

MACHINE_IDS = range(1, 11)
STORED_DTYPES = {
    "timestamp": np.dtype("datetime64[ns]"),
    "id": np.dtype("int32"),
    "int": np.dtype("int64"),
    "float": np.dtype("float64"),
}
HEADERS = {
    "telemetry": "datetime,machineID,volt,rotate,pressure,vibration\n",
    "errors": '"datetime","machineID","errorID"\n',
    "maintenance": '"datetime","machineID","comp"\n',
    "failures": '"datetime","machineID","failure"\n',
    "machines": '"machineID","model","age"\n',
}
SPECS = {s.name: s for s in (TELEMETRY, ERRORS, MAINTENANCE, FAILURES, MACHINES)}
GOOD = "2015-01-01 06:00:00,1,170.0,450.0,100.0,40.0"


def assert_conserved(parsed: pd.DataFrame, result: ValidationResult, spec: TableSpec, machine_ids) -> None:
    """Nothing lost, nothing invented; kept rows are typed per schema and break no rule."""
    kept, rejected = result.kept, result.rejected
    assert len(parsed) == len(kept) + len(rejected) == result.rows_in
    rejected_lines = rejected[LINE_COLUMN].tolist()
    assert len(set(rejected_lines)) == len(rejected_lines)
    rest = parsed[~parsed[LINE_COLUMN].isin(rejected_lines)].reset_index(drop=True)
    assert set(rest[LINE_COLUMN]) | set(rejected_lines) == set(parsed[LINE_COLUMN]) == set(range(2, len(parsed) + 2))
    for c in spec.columns:  # the kept rows are the parsed rows of the lines not rejected, in file order
        assert kept[c].astype(object).tolist() == rest[c].astype(object).tolist(), c
    assert list(kept.columns) == list(spec.columns)
    for c in spec.columns:
        if spec.kinds[c] == "category":
            assert isinstance(kept[c].dtype, pd.CategoricalDtype)
            assert list(kept[c].cat.categories) == list(spec.categories[c])
        else:
            assert kept[c].dtype == STORED_DTYPES[spec.kinds[c]], c
    assert list(rejected.columns) == [*spec.columns, LINE_COLUMN, RAW_COLUMN, RULES_COLUMN, REASON_COLUMN]
    assert all(r in ALL_RULES for rules in rejected[RULES_COLUMN] for r in rules.split(","))
    assert count_violations(kept, spec, machine_ids) == {r: 0 for r in ALL_RULES}


def check(tmp_path: Path, table: str, rows: list[str], machine_ids=MACHINE_IDS) -> ValidationResult:
    """Write a small Kaggle file (CRLF, like the originals), parse and validate it, check conservation."""
    path = tmp_path / "input.csv"
    path.write_bytes((HEADERS[table] + "".join(r + "\r\n" for r in rows)).encode())
    spec = SPECS[table]
    parsed = read_source_csv(path, spec)
    result = validate_rows(parsed, spec, machine_ids)
    assert_conserved(parsed, result, spec, machine_ids)
    return result


def rejections(result: ValidationResult) -> dict[int, tuple[str, str]]:
    return {int(r[LINE_COLUMN]): (r[RULES_COLUMN], r[REASON_COLUMN]) for _, r in result.rejected.iterrows()}


# (case id, table, data rows (line 2 onwards), {line: (rules, [reason fragments])})
BAD_ROWS = [
    (
        "empty sensor",
        "telemetry",
        [GOOD, "2015-01-01 07:00:00,1,,450.0,100.0,40.0"],
        {3: ("missing_value", ["volt: missing value"])},
    ),
    (
        "NaN sensor",
        "telemetry",
        [GOOD, "2015-01-01 07:00:00,1,170.0,NaN,100.0,40.0"],
        {3: ("missing_value", ["rotate: missing value"])},
    ),
    # "abc" sends the whole file down the slow path: NaN must still be a missing value there
    (
        "NaN sensor beside text",
        "telemetry",
        [GOOD, "2015-01-01 07:00:00,1,170.0,NaN,100.0,40.0", "2015-01-01 08:00:00,1,170.0,450.0,abc,40.0"],
        {3: ("missing_value", ["rotate: missing value"]), 4: ("unparseable_value", ["pressure: not a number 'abc'"])},
    ),
    (
        "text sensor",
        "telemetry",
        [GOOD, "2015-01-01 07:00:00,1,abc,450.0,100.0,40.0"],
        {3: ("unparseable_value", ["volt: not a number 'abc'"])},
    ),
    (
        "off the hour",
        "telemetry",
        [GOOD, "2015-01-01 06:30:00,1,170.0,450.0,100.0,40.0"],
        {3: ("not_on_the_hour", ["datetime: 2015-01-01", "06:30:00", "not on the hour"])},
    ),
    (
        "negative rotate",
        "telemetry",
        ["2015-01-01 06:00:00,1,170.0,-5.5,100.0,40.0", GOOD.replace(",1,", ",2,")],
        {2: ("out_of_bounds", ["rotate: -5.5 outside [0, 5000]"])},
    ),
    (
        "unknown machine",
        "telemetry",
        [GOOD, GOOD.replace(",1,", ",11,")],
        {3: ("unknown_machine", ["machineID: 11 is not in the machines table"])},
    ),
    (
        "non-integer machine",
        "telemetry",
        [GOOD, GOOD.replace(",1,", ",1.5,")],
        {3: ("unparseable_value", ["machineID: not an integer '1.5'"])},
    ),
    (
        "duplicate key",
        "telemetry",
        [GOOD, GOOD.replace("06:00", "07:00"), GOOD.replace("170.0", "999.0")],
        {4: ("duplicate_key", ["duplicate of line 2", "machineID, datetime"])},
    ),
    (
        "two rules",
        "telemetry",
        [GOOD, "2015-01-01 06:30:00,42,170.0,450.0,100.0,40.0"],
        {3: ("not_on_the_hour,unknown_machine", ["06:30:00", "is not on the hour", "machineID: 42 is not in"])},
    ),
    (
        "unknown error id",
        "errors",
        ['2015-01-01 06:00:00,1,"error1"', '2015-01-01 06:00:00,1,"error9"'],
        {3: ("unknown_category", ["errorID: unknown value 'error9'", "allowed error1"])},
    ),
    (
        "empty error id",
        "errors",
        ['2015-01-01 06:00:00,1,""', "2015-01-01 07:00:00,1,"],
        {2: ("missing_value", ["errorID: missing value"]), 3: ("missing_value", ["errorID: missing value"])},
    ),
    (
        "unknown component",
        "maintenance",
        ['2014-06-01 06:00:00,1,"comp7"', '2014-06-01 06:00:00,1,"comp1"'],
        {2: ("unknown_category", ["comp: unknown value 'comp7'"])},
    ),
    (
        "failure of unknown component",
        "failures",
        ['2015-01-05 06:00:00,3,"comp0"'],
        {2: ("unknown_category", ["failure: unknown value 'comp0'"])},
    ),
    (
        "duplicate failure",
        "failures",
        ['2015-01-05 06:00:00,3,"comp1"', '2015-01-05 06:00:00,3,"comp1"'],
        {3: ("duplicate_key", ["duplicate of line 2"])},
    ),
    (
        "bad model and age",
        "machines",
        ['1,"model3",18', '2,"model9",-1'],
        {3: ("unknown_category,out_of_bounds", ["model: unknown value 'model9'", "age: -1.0 outside [0, 100]"])},
    ),
    ("fractional age", "machines", ['1,"model3",18.5'], {2: ("unparseable_value", ["age: not an integer '18.5'"])}),
    (
        "machine listed twice alike",
        "machines",
        ['1,"model3",18', '2,"model1",3', '1,"model3",18'],
        {4: ("duplicate_key", ["duplicate of line 2 (same machineID)"])},
    ),
    # which model a machine is cannot be decided by file order: both rows go, each naming both lines
    (
        "conflicting machine rows",
        "machines",
        ['1,"model3",18', '2,"model1",3', '1,"model1",3'],
        {
            2: (
                "conflicting_duplicate",
                [
                    "machineID 1 is listed with different values: line 2 (model 'model3', age 18); "
                    "line 4 (model 'model1', age 3); which is right cannot be told"
                ],
            ),
            4: (
                "conflicting_duplicate",
                [
                    "machineID 1 is listed with different values: line 2 (model 'model3', age 18); "
                    "line 4 (model 'model1', age 3)"
                ],
            ),
        },
    ),
]


@pytest.mark.parametrize(("table", "rows", "expected"), [c[1:] for c in BAD_ROWS], ids=[c[0] for c in BAD_ROWS])
def test_bad_rows_are_rejected_with_rules_and_reason(tmp_path, table, rows, expected):
    got = rejections(check(tmp_path, table, rows))
    assert sorted(got) == sorted(expected)
    for line, (rules, fragments) in expected.items():
        assert got[line][0] == rules
        for fragment in fragments:
            assert fragment in got[line][1]


def test_duplicate_of_a_rejected_row_is_kept(tmp_path):
    # the first occurrence breaks another rule, so the later one is the only valid row with that key
    result = check(tmp_path, "telemetry", [GOOD.replace("170.0", "abc"), GOOD])
    assert rejections(result) == {2: ("unparseable_value", "volt: not a number 'abc'")}
    assert result.kept["volt"].tolist() == [170.0]


def test_several_errors_in_one_hour_are_not_duplicates(tmp_path):
    result = check(tmp_path, "errors", ['2015-01-01 06:00:00,1,"error1"', '2015-01-01 06:00:00,1,"error2"'])
    assert result.rejected.empty
    assert result.kept["errorID"].tolist() == ["error1", "error2"]


def test_unknown_machine_rule_is_skipped_without_machine_ids(tmp_path):
    result = check(tmp_path, "errors", ['2015-01-01 06:00:00,999,"error1"'], machine_ids=None)
    assert result.rejected.empty and result.kept["machineID"].tolist() == [999]


def test_rejected_by_rule_counts_every_rule_broken(tmp_path):
    result = check(
        tmp_path,
        "telemetry",
        [
            GOOD,
            "2015-01-01 06:30:00,42,170.0,450.0,100.0,40.0",  # not_on_the_hour + unknown_machine
            "2015-01-01 07:00:00,1,,450.0,100.0,40.0",  # missing_value
            "2015-01-01 08:00:00,1,170.0,450.0,100.0,-1",  # out_of_bounds
            "2015-01-01 09:00:00,1,x,450.0,100.0,40.0",  # unparseable_value
            GOOD,  # duplicate_key
        ],
    )
    assert result.rejected_by_rule() == {
        "unparseable_value": 1,
        "missing_value": 1,
        "not_on_the_hour": 1,
        "unknown_category": 0,
        "out_of_bounds": 1,
        "unknown_machine": 1,
        "duplicate_key": 1,
        "implausible_time": 0,
        "rejected_machine": 0,
        "conflicting_duplicate": 0,  # need staging / a Fleet / machines
    }
    assert len(result.kept) == 1


def test_clean_and_header_only_files_reject_nothing(tmp_path):
    assert check(tmp_path, "telemetry", [GOOD]).rejected_by_rule() == {r: 0 for r in ALL_RULES}
    empty = check(tmp_path, "machines", [])
    assert len(empty.kept) == 0 and empty.rejected_by_rule() == {r: 0 for r in ALL_RULES}


def test_gaps_in_telemetry_are_not_rejected(tmp_path):
    hours = ["06", "07", "10", "23"]  # 08, 09 and 11..22 are missing
    rows = [f"2015-01-01 {h}:00:00,{m},170.0,450.0,100.0,40.0" for m in (1, 2) for h in hours]
    result = check(tmp_path, "telemetry", rows[:-1])  # machine 2 also lacks 23:00
    assert result.rejected.empty
    assert len(result.kept) == 7


# --- real data -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_machine_ids(real_data_dir):
    machines = read_source_csv(find_source_file(real_data_dir, MACHINES), MACHINES)
    return validate_rows(machines, MACHINES).kept["machineID"].tolist()


def validate_real(path: Path, spec: TableSpec, machine_ids) -> ValidationResult:
    parsed = read_source_csv(path, spec)
    result = validate_rows(parsed, spec, machine_ids)
    assert_conserved(parsed, result, spec, machine_ids)
    assert result.rejected.empty
    return result


@pytest.mark.parametrize(
    ("spec", "rows", "machines"),
    [
        (ERRORS, 3919, 100),
        (FAILURES, 761, 98),
        (MAINTENANCE, 3286, 100),
        (MACHINES, 100, 100),
    ],
    ids=lambda v: getattr(v, "name", None),
)
def test_real_event_files_are_fully_valid(real_data_dir, real_machine_ids, spec, rows, machines):
    kept = validate_real(find_source_file(real_data_dir, spec), spec, real_machine_ids).kept
    assert len(kept) == rows
    assert kept["machineID"].nunique() == machines


def test_real_machine_ids_are_1_to_100(real_machine_ids):
    assert sorted(real_machine_ids) == list(range(1, 101))


def test_real_maintenance_keeps_the_rows_before_2015(real_data_dir, real_machine_ids):
    kept = validate_real(find_source_file(real_data_dir, MAINTENANCE), MAINTENANCE, real_machine_ids).kept
    assert int((kept["datetime"] < "2015-01-01").sum()) == 400


def test_real_telemetry_q1_subset(real_data_dir, real_machine_ids):
    kept = validate_real(real_data_dir / Q1_SUBSET, TELEMETRY, real_machine_ids).kept
    assert len(kept) == 43_200
    assert sorted(kept["machineID"].unique()) == list(range(1, 21))


def test_real_telemetry_union_with_gaps_is_fully_kept(real_data_dir, real_machine_ids):
    kept = validate_real(real_data_dir / UNION_PARTIAL, TELEMETRY, real_machine_ids).kept
    assert len(kept) == 144_262
    per_machine = kept.groupby("machineID").size()
    assert len(per_machine) == 100 and per_machine.min() == 452 and per_machine.max() == 3421


def test_each_table_is_checked_by_the_rules_its_columns_allow():
    always = {"unparseable_value", "missing_value", "duplicate_key"}
    time_rules, machine_rules = {"implausible_time", "not_on_the_hour"}, {"unknown_machine", "rejected_machine"}
    expected = {
        "telemetry": always | time_rules | machine_rules | {"out_of_bounds"},
        "errors": always | time_rules | machine_rules | {"unknown_category"},
        "maintenance": always | time_rules | machine_rules | {"unknown_category"},
        "failures": always | time_rules | machine_rules | {"unknown_category"},
        "machines": always | {"unknown_category", "out_of_bounds", CONFLICT_RULE},
    }
    for name, spec in SPECS.items():
        assert {r for r in ALL_RULES if rule_applies(r, spec)} == expected[name], name


def test_a_rule_that_does_not_apply_rejects_nothing():
    """The machines table defines the machines: a fleet without its ids rejects none of them; a time rule is not
    asked of a table without time; telemetry's repeated keys are duplicates, never conflicts."""
    machines = pd.DataFrame({"machineID": [1.0, 2.0], "model": ["model1", "model2"], "age": [3.0, 4.0]})
    machines[LINE_COLUMN] = [2, 3]
    fleet = Fleet(np.array([99.0]), {1: "rejected elsewhere"})
    assert validate_rows(machines, MACHINES, fleet).rejected.empty
    counts = count_violations(machines, MACHINES, fleet)
    assert all(counts[r] == 0 for r in ALL_RULES if not rule_applies(r, MACHINES))
    times = pd.to_datetime(["2015-01-01 06:00", "2015-01-01 06:00"])
    telemetry = pd.DataFrame({"datetime": times, "machineID": [1.0, 1.0], "volt": [1.0, 2.0], "rotate": 1.0})
    telemetry = telemetry.assign(pressure=1.0, vibration=1.0, **{LINE_COLUMN: [2, 3]})
    result = validate_rows(telemetry, TELEMETRY, [1])
    assert result.rejected[RULES_COLUMN].tolist() == ["duplicate_key"]  # not conflicting_duplicate
