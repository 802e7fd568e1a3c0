"""``dags/drift_monitor.py`` run for real (``airflow dags test``) against a real MLflow server."""

from __future__ import annotations

import pytest

from tests.conftest import REPO
from tests.integration.data.conftest import asset_events, run_dag, task_states

pytestmark = pytest.mark.integration
DAGS = REPO / "dags"


def test_drifted_traffic_emits_the_drift_asset_and_alerts(airflow_db, champion, data):
    log, run_id = run_dag("drift_monitor", {"inference_uri": data["drift"], "model_name": champion[0]}, DAGS)
    states = task_states("drift_monitor", run_id)
    assert states["validate_inference_batch"] == "success"
    assert states["drift_found"] == "success"
    assert states["no_drift"] == "skipped"
    (event,) = asset_events("churn_drift", run_id)
    assert event["outcome"] == "drift"
    assert f"ALERT: [mlops] {champion[0]}: drift in inference data" in log


def test_zero_filled_traffic_fails_validation_and_alerts(airflow_db, champion, data):
    log, run_id = run_dag(
        "drift_monitor",
        {"inference_uri": data["zero_fill"], "model_name": champion[0]},
        DAGS,
        expect_success=False,
    )
    states = task_states("drift_monitor", run_id)
    assert states["validate_inference_batch"] == "failed"
    assert states["check_drift"] == "upstream_failed"
    assert "days_since_last_login" in log
    assert f"ALERT: [mlops] {champion[0]}: inference data failed validation" in log
    assert asset_events("churn_drift", run_id) == []


def test_before_the_first_champion_the_checks_say_there_is_nothing_to_compare(airflow_db, mlflow_conn, data):
    log, run_id = run_dag(
        "drift_monitor", {"inference_uri": data["baseline"], "model_name": "not-trained-yet"}, DAGS
    )
    states = task_states("drift_monitor", run_id)
    assert states["check_drift"] == "success"
    assert states["no_drift"] == "success"
    assert states["drift_found"] == "skipped"
    assert "has no 'champion' version yet" in log


def test_a_broken_contract_is_not_retried(airflow_db, champion, data):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _, run_id = run_dag(
        "drift_monitor",
        {"inference_uri": data["zero_fill"], "model_name": champion[0]},
        DAGS,
        expect_success=False,
    )
    with create_session() as session:
        tries = session.scalar(
            select(TaskInstance.try_number).where(
                TaskInstance.dag_id == "drift_monitor",
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == "validate_inference_batch",
            )
        )
    assert tries == 1  # retries=1 in the DAG, yet one try: the same data breaks the same contract again
