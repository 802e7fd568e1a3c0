from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from airflow_mlops_provider.data.contract import (
    ColumnRule,
    ContractError,
    DataContract,
    Tolerances,
    derive_contract,
    overlay,
    parse_duration,
    validate,
)
from airflow_mlops_provider.data.profiles import profile_dataset
from mlops_demo.churn import CONTRACTS, generate_week

CHURN = DataContract(
    name="churn",
    min_rows=1_000,
    columns={
        "customer_id": ColumnRule(dtype="string", unique=True),
        "tenure": ColumnRule(dtype="integral", max_null_fraction=0.01, min_value=0, max_value=72),
        "contract": ColumnRule(dtype="string", allowed_values=frozenset(CONTRACTS)),
        "monthly_charges": ColumnRule(dtype="numeric", min_value=0, max_value=200),
        "days_since_last_login": ColumnRule(dtype="numeric", max_null_fraction=0.01),
        "churned": ColumnRule(dtype="integral", min_value=0, max_value=1),
    },
)


def _summary(tmp_path, frame: pd.DataFrame, **kwargs):
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)
    return profile_dataset(str(path), **kwargs).summary


@pytest.fixture
def week():
    return generate_week("baseline", rows=3_000, seed=3)


def test_clean_batch_passes(tmp_path, week):
    result = validate(CHURN, _summary(tmp_path, week))
    assert result.status == "passed", [r.message for r in result.failures]
    assert len(result.results) >= 12


def _nulls(frame):
    frame.loc[frame.sample(frac=0.382, random_state=0).index, "days_since_last_login"] = None
    return frame


def _drop(frame):
    return frame.drop(columns=["tenure"])


def _retype(frame):
    frame["tenure"] = frame["tenure"].astype(str) + " months"
    return frame


def _out_of_range(frame):
    frame.loc[5, "monthly_charges"] = -12.5
    return frame


def _unseen(frame):
    frame.loc[[1, 2], "contract"] = "weekly"
    return frame


@pytest.mark.parametrize(
    ("breaks", "check", "message"),
    [
        pytest.param(
            _nulls,
            "max_null_fraction",
            "column 'days_since_last_login' has 38.2% nulls, allowed at most 1.0%",
            id="null-rate",
        ),
        pytest.param(_drop, "required", "column 'tenure' is missing", id="missing-column"),
        pytest.param(
            _retype, "dtype", "column 'tenure' has 3000 string values, expected integral", id="changed-type"
        ),
        pytest.param(
            _out_of_range,
            "min_value",
            "column 'monthly_charges' has minimum -12.5, allowed at least 0",
            id="out-of-range",
        ),
        pytest.param(
            _unseen,
            "allowed_values",
            "column 'contract' has values outside the allowed set: ['weekly'] "
            "(allowed: ['month-to-month', 'one-year', 'two-year'])",
            id="unseen-category",
        ),
    ],
)
def test_each_broken_batch_fails_naming_column_observed_and_allowed(tmp_path, week, breaks, check, message):
    result = validate(CHURN, _summary(tmp_path, breaks(week)))
    assert result.status == "failed"
    failed = [r for r in result.failures if r.check == check]
    assert len(failed) == 1, [r.message for r in result.failures]
    assert failed[0].message.startswith(message)


def test_every_failed_check_is_reported_not_just_the_first(tmp_path, week):
    result = validate(CHURN, _summary(tmp_path, _unseen(_out_of_range(_nulls(week)))))
    assert {r.check for r in result.failures} == {"max_null_fraction", "min_value", "allowed_values"}


def test_a_warn_check_is_reported_but_does_not_fail(tmp_path, week):
    contract = DataContract(
        columns={"days_since_last_login": ColumnRule(max_null_fraction=0.01, severity="warn")}
    )
    result = validate(contract, _summary(tmp_path, _nulls(week)))
    assert result.status == "warned"
    assert [r.check for r in result.warnings] == ["max_null_fraction"]
    assert result.failures == []


def test_severity_can_be_set_per_check(tmp_path, week):
    rule = ColumnRule(max_null_fraction=0.01, min_value=5, severity={"max_null_fraction": "warn"})
    result = validate(DataContract(columns={"days_since_last_login": rule}), _summary(tmp_path, _nulls(week)))
    assert [r.check for r in result.warnings] == ["max_null_fraction"]
    assert [r.check for r in result.failures] == ["min_value"]


def test_row_count_bounds(tmp_path, week):
    result = validate(DataContract(min_rows=5_000, max_rows=10_000), _summary(tmp_path, week))
    assert [r.message for r in result.failures] == ["dataset has 3000 rows, allowed at least 5000"]


def test_uniqueness_catches_duplicated_ids(tmp_path, week):
    week.loc[:600, "customer_id"] = "dup"
    result = validate(CHURN, _summary(tmp_path, week))
    (failure,) = [r for r in result.failures if r.check == "unique"]
    assert failure.message.startswith("column 'customer_id' is not unique")


def test_freshness_of_a_timestamp_column(tmp_path, week):
    week["event_time"] = pd.Timestamp("2026-11-01T00:00:00Z")
    summary = _summary(tmp_path, week, timestamp_columns=["event_time"])
    contract = DataContract(columns={"event_time": ColumnRule(dtype="timestamp", max_age="7d")})
    fresh = validate(contract, summary, now=datetime(2026, 11, 5, tzinfo=timezone.utc))
    stale = validate(contract, summary, now=datetime(2026, 11, 23, tzinfo=timezone.utc))
    assert fresh.status == "passed"
    assert [r.message for r in stale.failures] == [
        "column 'event_time' is stale: newest value 2026-11-01T00:00:00+00:00 is 22.0 days old, allowed at most 7 days"
    ]


def test_contract_from_yaml_equals_the_python_one():
    text = """
name: churn
min_rows: 1000
columns:
  tenure: {dtype: integral, max_null_fraction: 0.01, min_value: 0, max_value: 72}
  contract:
    dtype: string
    allowed_values: [month-to-month, one-year, two-year]
    severity: {allowed_values: warn}
  event_time: {dtype: timestamp, max_age: 7d}
"""
    contract = DataContract.from_yaml(text)
    assert contract.columns["tenure"] == ColumnRule(
        dtype="integral", max_null_fraction=0.01, min_value=0, max_value=72
    )
    assert contract.columns["contract"].allowed_values == frozenset(CONTRACTS)
    assert contract.columns["contract"].severity_of("allowed_values") == "warn"
    assert contract.columns["event_time"].max_age == timedelta(days=7)
    assert DataContract.from_dict(contract.to_dict()) == contract


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"colums": {}}, r"unknown contract key\(s\) \['colums'\]", id="table-key-typo"),
        pytest.param(
            {"columns": {"x": {"max_nul_fraction": 0.1}}},
            r"column 'x': unknown key\(s\) \['max_nul_fraction'\]",
            id="column-key-typo",
        ),
        pytest.param(
            {"columns": {"x": {"dtype": "int"}}},
            r"column 'x': dtype is 'int'; expected one of \['integral'",
            id="bad-dtype",
        ),
        pytest.param(
            {"columns": {"x": {"max_null_fraction": 38}}},
            r"max_null_fraction is 38; expected 0..1",
            id="percent-not-fraction",
        ),
        pytest.param(
            {"columns": {"x": {"severity": "error"}}},
            r"severity is 'error'; expected one of \['fail', 'warn'\]",
            id="bad-severity",
        ),
        pytest.param(
            {"columns": {"x": {"max_age": "a week"}}},
            r"max_age is 'a week'; expected a number and a unit",
            id="bad-duration",
        ),
    ],
)
def test_malformed_contracts_are_rejected_naming_the_key(raw, message):
    with pytest.raises(ContractError, match=message):
        DataContract.from_dict(raw)


def test_parse_duration_units():
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("1.5h") == timedelta(hours=1.5)
    assert parse_duration("2w") == timedelta(weeks=2)


def test_derived_contract_passes_a_normal_week_and_catches_the_zero_fill(churn_profiles):
    contract = derive_contract(churn_profiles["reference"].summary)
    normal = validate(contract, churn_profiles["baseline"].summary)
    assert normal.failures == []
    # At most a new extreme in a long-tailed column, which is a warning.
    assert {r.check for r in normal.warnings} <= {"max_value"}
    zero_fill = validate(contract, churn_profiles["zero_fill"].summary)
    assert zero_fill.status == "failed"
    (failure,) = zero_fill.failures
    assert failure.column == "days_since_last_login"
    assert failure.check == "max_zero_fraction"
    assert failure.observed == pytest.approx(0.38, abs=0.02)
    # The null ceiling alone cannot see it: the nulls were filled.
    assert all(r.passed for r in zero_fill.results if r.check == "max_null_fraction")


def test_derived_contract_only_warns_on_a_genuine_shift(churn_profiles):
    result = validate(derive_contract(churn_profiles["reference"].summary), churn_profiles["drift"].summary)
    assert result.status == "warned"
    # Prices rose and so did churn: both show as warnings, not failures.
    assert {r.column for r in result.warnings} == {"monthly_charges", "churned"}
    assert {r.check for r in result.warnings} == {"quantiles", "max_value"}


def test_explicit_rules_win_check_by_check_and_the_derived_ones_fill_the_rest(churn_profiles):
    """An explicit rule for a column must not switch off what the derived contract checks on it:
    the explicit contract says nothing about zeros in days_since_last_login, the derived one does."""
    derived = derive_contract(churn_profiles["reference"].summary)
    merged = overlay(derived, CHURN)
    rule = merged.columns["days_since_last_login"]
    assert rule.dtype == "numeric"  # explicit
    assert rule.max_null_fraction == 0.01  # explicit
    assert rule.max_zero_fraction == derived.columns["days_since_last_login"].max_zero_fraction
    assert rule.quantiles == derived.columns["days_since_last_login"].quantiles
    assert rule.severity_of("quantiles") == "warn"  # the derived check keeps its own severity
    assert merged.columns["tenure"].max_value == 72  # explicit beats the widened derived range
    assert merged.columns["tenure"].severity_of("max_value") == "fail"
    assert merged.columns["support_calls"] == derived.columns["support_calls"]  # only derived names it
    assert merged.min_rows == CHURN.min_rows
    assert merged.name == CHURN.name

    zero_fill = validate(merged, churn_profiles["zero_fill"].summary)
    assert [(f.column, f.check) for f in zero_fill.failures] == [
        ("days_since_last_login", "max_zero_fraction")
    ]
    assert validate(merged, churn_profiles["baseline"].summary).failures == []


def test_an_explicit_optional_column_stays_optional_over_a_derived_required_one(churn_profiles):
    derived = derive_contract(churn_profiles["reference"].summary)
    explicit = DataContract(columns={"senior_citizen": ColumnRule(required=False)})
    merged = overlay(derived, explicit)
    assert merged.columns["senior_citizen"].required is False
    assert merged.columns["senior_citizen"].max_zero_fraction is not None


def test_tolerances_shape_the_derived_contract(churn_profiles):
    reference = churn_profiles["reference"].summary
    strict = derive_contract(
        reference, Tolerances(quantile_severity="fail", range_severity="fail", row_fraction=0.5)
    )
    assert strict.min_rows == reference.rows // 2
    assert validate(strict, churn_profiles["drift"].summary).status == "failed"


def test_uniqueness_of_a_float_column_fails_closed(tmp_path, week):
    contract = DataContract(columns={"monthly_charges": ColumnRule(unique=True)})
    (failure,) = validate(contract, _summary(tmp_path, week)).failures
    assert failure.message.startswith("column 'monthly_charges' cannot be checked for uniqueness")
