"""Gates know the kind of model they judge: a typo or a metric of the other kind fails early."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from airflow_mlops_provider.exceptions import CandidateError, GateConfigError
from airflow_mlops_provider.gates import PromotionGates, compute_metrics
from airflow_mlops_provider.operators.registry import ModelPromotionOperator
from airflow_mlops_provider.promotion import resolve_candidate


def promotion(gates: Any, **kwargs: Any) -> ModelPromotionOperator:
    return ModelPromotionOperator(
        task_id="promote",
        candidate="{{ ti.xcom_pull(task_ids='train') }}",
        registered_model_name="diabetes",
        eval_data_uri="/data/eval.csv",
        target_column="progression",
        gates=gates,
        **kwargs,
    )


def test_a_typo_in_a_literal_gate_fails_when_the_operator_is_built():
    with pytest.raises(
        GateConfigError,
        match=r"unknown metric 'RMSE' \(did you mean 'rmse'\?\); .*regression metrics: mae, r2, rmse",
    ):
        promotion({"thresholds": ["RMSE <= 60"]})


@pytest.mark.parametrize(
    "gates",
    [
        pytest.param({"thresholds": ["roc_auc >= 0.8"]}, id="mapping"),
        pytest.param("thresholds:\n  - roc_auc >= 0.8\n", id="yaml-text"),
        pytest.param(PromotionGates.from_dict({"thresholds": ["roc_auc >= 0.8"]}), id="instance"),
    ],
)
def test_a_classification_gate_for_a_declared_regressor_fails_when_the_operator_is_built(gates):
    with pytest.raises(
        GateConfigError,
        match=r"gate 'thresholds: roc_auc >= 0.8' reads 'roc_auc', a classification metric, but the model "
        r"is a regression model \(model_kind=\); regression metrics: mae, r2, rmse",
    ):
        promotion(gates, model_kind="regression")


def test_templated_gates_and_a_gates_file_wait_for_the_task():
    promotion("thresholds:\n  - roc_auc >= {{ params.min_auc }}\n", model_kind="regression")
    promotion("/opt/airflow/gates/diabetes.yaml", model_kind="regression")


def test_an_unknown_model_kind_is_refused_naming_the_kinds():
    with pytest.raises(
        GateConfigError, match=r"'regressor' is not a model kind; allowed: \['classification', 'regression'\]"
    ):
        promotion({"thresholds": ["rmse <= 60"]}, model_kind="regressor")  # type: ignore[arg-type]


def test_regression_metrics_are_computed_and_classification_ones_refused_for_a_regressor():
    y = np.array([100.0, 150.0, 200.0, 250.0])
    predictions = np.array([110.0, 140.0, 210.0, 240.0])
    assert compute_metrics(y, predictions, ["rmse", "mae"], "regression") == {"rmse": 10.0, "mae": 10.0}
    # Without a kind, accuracy of a regressor's outputs is computed from "score >= 0.5": 0.0, and
    # "accuracy >= 0.0" would pass. With the kind it is refused.
    with pytest.raises(GateConfigError, match=r"metrics \['accuracy'\] do not apply to a regression model"):
        compute_metrics(y, predictions, ["accuracy"], "regression")


def test_gates_know_their_kind():
    assert (
        PromotionGates.from_dict({"thresholds": ["rmse <= 60"], "no_regression": ["mae"]}).kind
        == "regression"
    )
    assert PromotionGates.from_dict({"thresholds": ["f1 >= 0.5"]}).kind == "classification"
    assert PromotionGates.from_dict({"latency": {"p95_ms": 50}}).kind is None


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        pytest.param(
            "latest", r"'latest' is not a model reference; give the training task's result", id="word"
        ),
        pytest.param("{'metrics': {}}", r"has neither 'model_uri' nor 'run_id'", id="dict-without-a-run"),
        pytest.param("{'run_id': ", r"looks like a dict but does not parse", id="broken-dict"),
        pytest.param("", r"'' is not a model reference", id="empty"),
        pytest.param(42, r"42 is not a model reference", id="number"),
    ],
)
def test_a_candidate_that_names_no_model_is_refused_listing_the_accepted_forms(candidate, message):
    with pytest.raises(CandidateError, match=message) as info:
        resolve_candidate(None, candidate)  # type: ignore[arg-type]
    assert "a 32-character MLflow run id, a runs:/<run id>/<path> URI" in str(info.value)
