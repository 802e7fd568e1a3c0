"""The data-gate operators executed directly on real files (MLflow-free paths)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from airflow_mlops_provider.data.contract import ColumnRule, DataContract
from airflow_mlops_provider.exceptions import (
    DatasetReadError,
    DataValidationError,
    DriftDetectedError,
    MissingEvidenceError,
)
from airflow_mlops_provider.lineage import data_fingerprint
from airflow_mlops_provider.operators.drift import DriftCheckOperator
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from airflow_mlops_provider.operators.validation import DataValidationOperator
from mlops_demo.churn import write_week

CONTEXT = {"dag": SimpleNamespace(dag_id="test"), "run_id": "manual__1"}


@pytest.fixture(scope="module")
def weeks(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weeks")
    return {
        "reference": write_week(root / "reference.csv", "baseline", rows=20_000, seed=5, week=0),
        "baseline": write_week(root / "baseline.csv", "baseline", rows=4_000, seed=5, week=1),
        "drift": write_week(root / "drift.csv", "drift", rows=4_000, seed=5, week=2),
        "zero_fill": write_week(root / "zero_fill.csv", "zero_fill", rows=4_000, seed=5, week=3),
    }


@pytest.fixture(scope="module")
def profiles(weeks, tmp_path_factory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("profiles")
    return {
        name: WhylogsProfileOperator(
            task_id=f"p_{name}", dataset_uri=str(path), output_uri=str(out / name)
        ).execute(CONTEXT)
        for name, path in weeks.items()
    }


def test_profile_operator_writes_profile_and_summary_and_returns_lineage(weeks, profiles):
    result = profiles["baseline"]
    assert set(result) == {"profile_uri", "summary_uri", "rows", "columns", "data_fingerprint"}
    assert result["rows"] == 4_000
    assert result["data_fingerprint"] == data_fingerprint(weeks["baseline"])
    assert Path(result["profile_uri"]).stat().st_size > 1_000
    summary = json.loads(Path(result["summary_uri"]).read_text())
    assert summary["rows"] == 4_000
    assert summary["column_stats"]["contract"]["categories"].keys() == {
        "month-to-month",
        "one-year",
        "two-year",
    }
    json.dumps(result)  # XCom-serialisable


def test_profile_operator_defaults_to_a_content_addressed_location(weeks, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    result = WhylogsProfileOperator(task_id="p", dataset_uri=str(weeks["baseline"])).execute(CONTEXT)
    key = data_fingerprint(weeks["baseline"]).replace(":", "-")
    assert result["profile_uri"] == str(tmp_path / "profiles" / key / "profile.bin")


def test_profile_operator_reports_a_bad_dataset_as_a_provider_error(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DatasetReadError, match="is empty"):
        WhylogsProfileOperator(task_id="p", dataset_uri=str(tmp_path / "empty.csv")).execute(CONTEXT)


def test_validation_fails_closed_listing_every_failed_check_and_keeps_the_report(profiles, tmp_path):
    op = DataValidationOperator(
        task_id="v",
        profile_uri=profiles["zero_fill"]["profile_uri"],
        reference_profile_uri=profiles["reference"]["profile_uri"],
        report_uri=str(tmp_path / "report"),
    )
    with pytest.raises(DataValidationError) as caught:
        op.execute(CONTEXT)
    assert "column 'days_since_last_login' has " in str(caught.value)
    assert "zeros, allowed at most" in str(caught.value)
    report = json.loads((tmp_path / "report" / "validation_report.json").read_text())
    assert report["status"] == "failed"
    assert report["data_fingerprint"] == profiles["zero_fill"]["data_fingerprint"]
    assert [f["column"] for f in report["failed"]] == ["days_since_last_login"]
    markdown = (tmp_path / "report" / "validation_report.md").read_text()
    assert markdown.startswith("# Data validation: FAILED")
    assert "days_since_last_login" in markdown


def test_validation_with_only_warnings_succeeds_and_returns_them(profiles, tmp_path):
    result = DataValidationOperator(
        task_id="v",
        profile_uri=profiles["drift"]["profile_uri"],
        reference_profile_uri=profiles["reference"]["profile_uri"],
        report_uri=str(tmp_path),
    ).execute(CONTEXT)
    assert result["status"] == "warned"
    assert any("monthly_charges" in w for w in result["warnings"])


def test_explicit_rules_override_derived_ones(profiles, tmp_path):
    contract = DataContract(columns={"days_since_last_login": ColumnRule(max_zero_fraction=0.5)})
    result = DataValidationOperator(
        task_id="v",
        contract=contract,
        profile_uri=profiles["zero_fill"]["profile_uri"],
        reference_profile_uri=profiles["reference"]["profile_uri"],
        report_uri=str(tmp_path),
    ).execute(CONTEXT)
    assert result["status"] in ("passed", "warned")


def test_validation_of_a_dataset_with_a_yaml_contract(weeks, tmp_path):
    yaml_path = tmp_path / "contract.yaml"
    yaml_path.write_text("columns:\n  tenure: {dtype: integral, min_value: 0}\n  region: {dtype: string}\n")
    with pytest.raises(DataValidationError, match="column 'region' is missing"):
        DataValidationOperator(
            task_id="v", contract=str(yaml_path), dataset_uri=str(weeks["baseline"]), report_uri=str(tmp_path)
        ).execute(CONTEXT)


def test_validation_without_contract_or_reference_fails_closed(profiles):
    with pytest.raises(MissingEvidenceError, match="nothing to validate against"):
        DataValidationOperator(task_id="v", profile_uri=profiles["baseline"]["profile_uri"]).execute(CONTEXT)


def test_validation_with_an_unreadable_reference_fails_closed(profiles, tmp_path):
    with pytest.raises(MissingEvidenceError, match="profile not found"):
        DataValidationOperator(
            task_id="v",
            profile_uri=profiles["baseline"]["profile_uri"],
            reference_profile_uri=str(tmp_path / "nope"),
        ).execute(CONTEXT)


def test_drift_operator_flags_the_drift_week_and_draws_it(profiles, tmp_path):
    result = DriftCheckOperator(
        task_id="d",
        target_profile_uri=profiles["drift"]["profile_uri"],
        reference_profile_uri=profiles["reference"]["profile_uri"],
        output_uri=str(tmp_path),
    ).execute(CONTEXT)
    assert result["outcome"] == "drift"
    assert "monthly_charges" in result["drifted_columns"]
    assert result["columns"]["tenure"]["outcome"] == "no_drift"
    assert Path(result["plot_uri"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads(Path(result["report_uri"]).read_text())["outcome"] == "drift"
    json.dumps(result)


def test_drift_operator_can_fail_the_task(profiles, tmp_path):
    op = DriftCheckOperator(
        task_id="d",
        target_profile_uri=profiles["drift"]["profile_uri"],
        reference_profile_uri=profiles["reference"]["profile_uri"],
        output_uri=str(tmp_path),
        fail_on="drift",
    )
    with pytest.raises(DriftDetectedError, match="drift outcome 'drift' reaches fail_on='drift'"):
        op.execute(CONTEXT)


def test_no_drift_on_a_normal_week(profiles, tmp_path):
    result = DriftCheckOperator(
        task_id="d",
        target_profile_uri=profiles["baseline"]["profile_uri"],
        reference_profile_uri=profiles["reference"]["profile_uri"],
        output_uri=str(tmp_path),
        fail_on="drift",
    ).execute(CONTEXT)
    assert result["outcome"] == "no_drift"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(
            {"fail_on": "yes"}, r"fail_on='yes'; expected one of \['possible_drift', 'drift'\]", id="fail_on"
        ),
        pytest.param({"on_missing_reference": "ignore"}, r"on_missing_reference='ignore'", id="missing"),
        pytest.param({"branch": {"drifted": "x"}}, r"branch key='drifted'", id="branch-key"),
    ],
)
def test_drift_operator_rejects_unknown_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DriftCheckOperator(task_id="d", target_profile_uri="x", reference_profile_uri="y", **kwargs)
