"""Promotion gates (config parsing, validation, evaluation on given metrics) and the approval view."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from airflow_mlops_provider.exceptions import GateConfigError
from airflow_mlops_provider.gates import (
    EvidenceRequirement,
    LatencyBudget,
    PromotionGates,
    RegressionGate,
    SliceGate,
    Threshold,
    apply_gates,
    compute_metrics,
    filter_mask,
    parse_filter,
)
from airflow_mlops_provider.operators.registry import (
    ModelPromotionOperator,
    approval_outcome,
    render_approval_body,
)
from airflow_mlops_provider.promotion import LeaseSettings
from airflow_mlops_provider.sensors.registry import ModelVersionSensor
from airflow_mlops_provider.triggers.registry import ModelVersionTrigger
from tests.conftest import python_in_subprocess

YAML = """
thresholds:
  - roc_auc >= 0.80
  - {metric: log_loss, max: 0.6}
no_regression:
  - {metric: roc_auc, tolerance: 0.01}
  - {metric: log_loss, tolerance: 0.05, relative: true}
slices:
  - name: month_to_month
    where: 'contract == "month-to-month" and tenure < 12'
    thresholds: [roc_auc >= 0.7]
    min_rows: 20
latency: {p95_ms: 50, sample_rows: 64, repeats: 5}
evidence: {failed_statuses: [failed]}
"""


def report(overall: dict, slices: dict | None = None) -> dict:
    return {"overall": overall, "slices": slices or {}}


def by_gate(results) -> dict:
    return {r.gate: r for r in results}


# --- configuration -----------------------------------------------------------------------------


def test_yaml_gates_load_into_typed_dataclasses():
    gates = PromotionGates.from_yaml(YAML)
    assert gates.thresholds == (Threshold("roc_auc", ">=", 0.8), Threshold("log_loss", "<=", 0.6))
    assert gates.no_regression == (
        RegressionGate("roc_auc", 0.01),
        RegressionGate("log_loss", 0.05, relative=True),
    )
    (segment,) = gates.slices
    assert segment.name == "month_to_month"
    assert segment.thresholds == (Threshold("roc_auc", ">=", 0.7),)
    assert segment.min_rows == 20
    assert gates.latency == LatencyBudget(p95_ms=50.0, sample_rows=64, repeats=5)
    assert gates.evidence == EvidenceRequirement(failed_statuses=("failed",))
    assert gates.metrics == ["log_loss", "roc_auc"]


def test_yaml_file_and_dict_round_trip(tmp_path):
    path = tmp_path / "gates.yaml"
    path.write_text(YAML)
    gates = PromotionGates.coerce(str(path))
    assert PromotionGates.from_dict(json.loads(json.dumps(gates.to_dict()))) == gates


@pytest.mark.parametrize(
    ("config", "message"),
    [
        pytest.param(
            {"thresholds": ["roc_auc => 0.8"]}, r"'<metric> <op> <number>' with op one of", id="bad-op"
        ),
        pytest.param(
            {"thresholds": ["auc >= 0.8"]},
            r"unknown metric 'auc' \(did you mean 'roc_auc'\?\); classification metrics: accuracy",
            id="unknown-metric",
        ),
        pytest.param(
            {"threshold": ["roc_auc >= 0.8"]}, r"unknown key\(s\) \['threshold'\]; allowed", id="typo-key"
        ),
        pytest.param(
            {"thresholds": [{"metric": "roc_auc", "min": 0.8, "max": 0.9}]},
            r"exactly one of 'min', 'max' or 'op'\+'value'",
            id="min-and-max",
        ),
        pytest.param(
            {"thresholds": [{"metric": "roc_auc", "op": "=", "value": 1}]},
            r"op: '='; allowed: \['>=', '>', '<=', '<'\]",
            id="op-not-allowed",
        ),
        pytest.param(
            {"thresholds": [{"metric": "roc_auc", "min": "high"}]}, r"min: expected a number", id="nan"
        ),
        pytest.param(
            {"no_regression": [{"metric": "roc_auc", "tolerance": -0.1}]},
            r"tolerance -0.1 is negative",
            id="neg",
        ),
        pytest.param(
            {"no_regression": [{"metric": "roc_auc", "relative": "yes"}]},
            r"relative: 'yes'; allowed: \[true, false\]",
            id="relative-not-bool",
        ),
        pytest.param(
            {"slices": [{"name": "s", "where": "__import__('os').system('x')", "thresholds": ["f1 >= 0.5"]}]},
            r"uses Call; allowed: comparisons",
            id="code-in-filter",
        ),
        pytest.param(
            {"slices": [{"name": "s", "where": "contract ==", "thresholds": ["f1 >= 0.5"]}]},
            r"is not a valid filter",
            id="filter-syntax",
        ),
        pytest.param(
            {"slices": [{"name": "s", "where": "1 == 1", "thresholds": ["f1 >= 0.5"]}]},
            r"each comparison must name a column",
            id="filter-no-column",
        ),
        pytest.param(
            {"slices": [{"name": "a b", "where": "x == 1", "thresholds": ["f1 >= 0.5"]}]},
            r"slice name 'a b'",
            id="slice-name",
        ),
        pytest.param(
            {"latency": {"sample_rows": 10}}, r"latency: set p50_ms, p95_ms or both", id="no-budget"
        ),
        pytest.param(
            {"latency": {"p95_ms": 10, "repeats": 0}}, r"latency.repeats: 0, expected", id="repeats"
        ),
        pytest.param(
            {"thresholds": ["roc_auc >= 0.8"], "evidence": {"validation_report": "yes"}},
            r"evidence.validation_report: 'yes'; allowed: \[true, false\]",
            id="evidence-bool",
        ),
        pytest.param({"evidence": True}, r"no gates declared", id="nothing"),
        pytest.param(
            {"thresholds": ["roc_auc >= 0.8", "rmse <= 3"]}, r"mix classification and regression", id="mix"
        ),
    ],
)
def test_malformed_gate_config_names_key_and_allowed_values(config, message):
    with pytest.raises(GateConfigError, match=message):
        PromotionGates.from_dict(config)


def test_yaml_that_is_not_a_mapping_is_refused():
    with pytest.raises(GateConfigError, match="must be a mapping"):
        PromotionGates.from_yaml("- roc_auc >= 0.8\n- f1 >= 0.5\n")


def test_slice_filter_selects_rows_without_running_code():
    import pandas as pd

    frame = pd.DataFrame(
        {"contract": ["month-to-month", "two-year", "month-to-month", "one-year"], "tenure": [3, 30, 20, -1]}
    )
    expression = 'contract == "month-to-month" and tenure < 12 or tenure in [-1]'
    assert filter_mask(parse_filter(expression), frame, expression).tolist() == [True, False, False, True]
    expression = 'not contract != "two-year"'
    assert filter_mask(parse_filter(expression), frame, expression).tolist() == [False, True, False, False]
    with pytest.raises(KeyError, match="names column 'plan', not in the evaluation data"):
        filter_mask(parse_filter("plan == 1"), frame, "plan == 1")


# --- evaluation on given metrics ---------------------------------------------------------------


def test_gates_pass_and_fail_with_observed_and_required_values():
    gates = PromotionGates.from_yaml(YAML)
    candidate = report(
        {"roc_auc": 0.85, "log_loss": 0.40},
        {"month_to_month": {"rows": 25, "metrics": {"roc_auc": 0.65}, "error": None}},
    )
    champion = report({"roc_auc": 0.87, "log_loss": 0.39})
    results = by_gate(
        apply_gates(gates, candidate, champion, champion_version="3", latency={"p50_ms": 10, "p95_ms": 80})
    )
    assert results["threshold:roc_auc"].status == "passed"
    assert results["threshold:log_loss"].status == "passed"
    # 0.85 < 0.87 - 0.01: regressed beyond the tolerance.
    regression = results["no_regression:roc_auc"]
    assert (regression.status, regression.observed, regression.required) == ("failed", 0.85, ">= 0.86")
    assert "champion v3: 0.87" in regression.detail
    # log_loss: lower is better; 0.40 <= 0.39 * 1.05 passes.
    assert results["no_regression:log_loss"].status == "passed"
    assert results["no_regression:log_loss"].required == "<= 0.4095"
    assert results["slice:month_to_month:roc_auc"].status == "failed"
    assert results["slice:month_to_month:roc_auc"].required == ">= 0.7"
    assert results["latency:p95_ms"].status == "failed"
    assert results["latency:p95_ms"].observed == 80
    assert "observed 80, required <= 50" in results["latency:p95_ms"].describe()


def test_first_model_is_judged_on_absolute_gates_alone():
    gates = PromotionGates.from_dict({"thresholds": ["roc_auc >= 0.8"], "no_regression": ["roc_auc"]})
    results = by_gate(apply_gates(gates, report({"roc_auc": 0.81}), None))
    assert results["no_regression:roc_auc"].status == "skipped"
    assert results["no_regression:roc_auc"].passed
    assert results["threshold:roc_auc"].status == "passed"


def test_missing_metric_and_small_slice_fail_closed():
    gates = PromotionGates.from_dict(
        {
            "thresholds": ["roc_auc >= 0.8"],
            "slices": [{"name": "tiny", "where": "x == 1", "thresholds": ["roc_auc >= 0.5"], "min_rows": 30}],
        }
    )
    candidate = report({"roc_auc": None}, {"tiny": {"rows": 4, "metrics": {"roc_auc": 0.9}, "error": None}})
    results = by_gate(apply_gates(gates, candidate, None))
    assert results["threshold:roc_auc"].status == "failed"
    assert results["threshold:roc_auc"].detail == "metric could not be computed"
    assert (results["slice:tiny:rows"].observed, results["slice:tiny:rows"].required) == (4, ">= 30")


def test_champion_without_the_metric_fails_the_regression_gate():
    gates = PromotionGates.from_dict({"no_regression": ["roc_auc"]})
    results = apply_gates(gates, report({"roc_auc": 0.9}), report({"roc_auc": None}), champion_version="1")
    assert [r.status for r in results] == ["failed"]


def test_one_metric_function_scores_known_values():
    y = [0, 0, 1, 1]
    scores = [0.1, 0.6, 0.4, 0.9]
    got = compute_metrics(y, scores, ["roc_auc", "accuracy", "precision", "recall", "brier"])
    assert got["roc_auc"] == pytest.approx(0.75)
    assert got["accuracy"] == pytest.approx(0.5)
    assert got["precision"] == pytest.approx(0.5)
    assert got["recall"] == pytest.approx(0.5)
    assert got["brier"] == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)
    # One class only: AUC is undefined, reported as None rather than a misleading number.
    assert compute_metrics([1, 1], [0.2, 0.9], ["roc_auc"]) == {"roc_auc": None}


# --- approval view and settings ----------------------------------------------------------------


DECISION = {
    "decision": "awaiting_approval",
    "registered_model_name": "churn",
    "version": "7",
    "run_id": "abc",
    "evaluated_against_version": "5",
    "eval_data_uri": "/data/eval.csv",
    "eval_data_fingerprint": "sha256:00",
    "metrics": {
        "candidate": {"overall": {"roc_auc": 0.91}},
        "champion": {"overall": {"roc_auc": 0.88}},
        "rows": 400,
    },
    "gates": [
        {
            "gate": "threshold:roc_auc",
            "status": "passed",
            "observed": 0.91,
            "required": ">= 0.8",
            "detail": "",
        },
        {
            "gate": "no_regression:roc_auc",
            "status": "passed",
            "observed": 0.91,
            "required": ">= 0.87",
            "detail": "",
        },
    ],
}


def test_approval_body_shows_challenger_vs_champion_each_gate_and_drift():
    body = render_approval_body(DECISION, {"tenure": {"psi": 0.31, "drifted": True}})
    assert "challenger v7 vs champion v5" in body
    assert "| roc_auc | 0.9100 | 0.8800 | +0.0300 |" in body
    assert "| threshold:roc_auc | PASS | 0.91 | >= 0.8 |" in body
    assert "| no_regression:roc_auc | PASS |" in body
    assert '"psi": 0.31' in body
    assert "No drift summary" in render_approval_body(DECISION)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            {
                "chosen_options": ["Approve"],
                "responded_by_user": {"id": "1", "name": "ana"},
                "timedout": False,
            },
            ("approved", "ana"),
            id="approve",
        ),
        pytest.param(
            {"chosen_options": ["Reject"], "responded_by_user": {"id": "2", "name": "bo"}, "timedout": False},
            ("rejected", "bo"),
            id="reject",
        ),
        pytest.param(
            {"chosen_options": ["Reject"], "responded_by_user": None, "timedout": True},
            ("timed_out", None),
            id="timeout-default",
        ),
        pytest.param({"error": "timeout", "error_type": "timeout"}, ("timed_out", None), id="timeout-error"),
    ],
)
def test_approval_outcome_reads_approve_reject_and_timeout(event, expected):
    event = {"responded_at": datetime(2026, 1, 1, tzinfo=timezone.utc), **event}
    outcome = approval_outcome(event)
    assert (outcome["decision"], outcome["by"]) == expected


def test_lease_settings_refuse_a_settle_time_that_breaks_fischer():
    with pytest.raises(ValueError, match="must exceed max_write_s"):
        LeaseSettings(max_write_s=2.0, settle_s=1.0)


def test_on_reject_names_allowed_values_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match=r"on_reject='ignore'; allowed: \['fail', 'skip', 'return'\]"):
        ModelPromotionOperator(
            task_id="p",
            candidate="x",
            registered_model_name="m",
            eval_data_uri="/x.csv",
            target_column="y",
            gates={"thresholds": ["roc_auc >= 0.5"]},
            on_reject="ignore",  # type: ignore[arg-type]
        )


def test_trigger_serialize_mirrors_init():
    trigger = ModelVersionTrigger(
        registered_model_name="m", alias="champion", away_from_version="3", poll_interval=0.5, timeout=9
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_mlops_provider.triggers.registry.ModelVersionTrigger"
    assert ModelVersionTrigger(**kwargs).serialize() == (path, kwargs)
    assert kwargs["away_from_version"] == "3"


def test_sensor_needs_exactly_one_way_to_move_an_alias():
    sensor = ModelVersionSensor(task_id="s", registered_model_name="m", alias="champion")
    with pytest.raises(ValueError, match="exactly one of target_version or away_from_version"):
        sensor._args()


def test_importing_the_registry_modules_stays_cheap():
    code = (
        "import sys\n"
        "import airflow_mlops_provider.operators.registry, airflow_mlops_provider.sensors.registry\n"
        "import airflow_mlops_provider.triggers.registry, airflow_mlops_provider.links.mlflow\n"
        "import airflow_mlops_provider.gates\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'pandas', 'sklearn', 'numpy'}))\n"
    )
    result = python_in_subprocess(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_slice_gate_accepts_a_single_threshold():
    segment = SliceGate.parse({"name": "eu", "where": 'region == "eu"', "thresholds": "f1 >= 0.6"})
    assert segment.thresholds == (Threshold("f1", ">=", 0.6),)


def test_links_point_at_the_mlflow_ui_only_for_http_servers():
    from airflow_mlops_provider.links import mlflow as links

    assert links.run_url("http://mlflow:5000/", "3", "abc") == "http://mlflow:5000/#/experiments/3/runs/abc"
    assert links.model_version_url("https://m.example", "churn model", "4") == (
        "https://m.example/#/models/churn%20model/versions/4"
    )
    assert links.model_version_url("sqlite:////tmp/mlflow.db", "churn", "4") is None
    # Reading the stored links back: tests/unit/links/test_mlflow.py.
