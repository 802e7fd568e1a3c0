"""The data gates inside a real DAG run (``dag.test()``), against a real MLflow server.

The reference profile is found the way a retraining DAG finds it: on the ``champion`` alias of a
registered model, through the training-profile tag of the version's run.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_mlops_provider.exceptions import MissingEvidenceError
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from tests.integration.data.conftest import CONTEXT, asset_events, run_dag, task_states

pytestmark = pytest.mark.integration
DAGS = Path(__file__).parent / "dags"


@pytest.mark.parametrize(
    ("week", "followed", "skipped"), [("drift", "retrain", "keep"), ("baseline", "keep", "retrain")]
)
def test_drift_against_the_champion_branches_emits_and_logs(
    airflow_db, champion, data, tmp_path, week, followed, skipped
):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    client = MlflowHook().get_client()
    run_id = client.create_run(MlflowHook().get_or_create_experiment("data-gates")).info.run_id
    conf = {
        "model_name": champion[0],
        "reference_profile_uri": champion[1],
        "target_uri": data[week],
        "out_dir": str(tmp_path),
        "mlflow_run_id": run_id,
    }
    _, dag_run_id = run_dag("data_gates_check", conf, DAGS)
    states = task_states("data_gates_check", dag_run_id)
    assert states["drift"] == "success"
    assert states[followed] == "success"
    assert states[skipped] == "skipped"
    assert states["validate"] == "success"
    artifacts = {a.path for a in client.list_artifacts(run_id, "drift")}
    assert artifacts == {"drift/drift.png", "drift/drift_report.json", "drift/drift_report.md"}
    assert {a.path for a in client.list_artifacts(run_id, "profiles")} == {
        "profiles/profile.bin",
        "profiles/summary.json",
    }
    assert {a.path for a in client.list_artifacts(run_id, "validation")} >= {
        "validation/validation_report.json"
    }
    events = asset_events("churn_drift", dag_run_id)
    if week == "drift":
        assert len(events) == 1
        assert events[0]["outcome"] == "drift"
        assert "monthly_charges" in events[0]["drifted_columns"]
    else:
        assert events == []


def test_missing_champion_is_skipped_or_failed_as_configured(mlflow_conn, data, tmp_path):
    from airflow_mlops_provider.operators.drift import DriftCheckOperator

    target = WhylogsProfileOperator(
        task_id="p", dataset_uri=data["baseline"], output_uri=str(tmp_path / "t")
    ).execute(CONTEXT)
    kwargs = {
        "task_id": "d",
        "target_profile_uri": target["profile_uri"],
        "reference_model_name": "no-such-model",
    }
    assert (
        DriftCheckOperator(**kwargs, on_missing_reference="skip").execute(CONTEXT)["outcome"]
        == "no_reference"
    )
    with pytest.raises(MissingEvidenceError, match="model 'no-such-model' alias 'champion' does not exist"):
        DriftCheckOperator(**kwargs).execute(CONTEXT)


def test_a_champion_without_a_recorded_profile_fails_closed(mlflow_conn, data, tmp_path):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.operators.drift import DriftCheckOperator

    client = MlflowHook().get_client()
    name = f"bare-{uuid.uuid4().hex[:8]}"
    run = client.create_run(MlflowHook().get_or_create_experiment("data-gates"))
    client.create_registered_model(name)
    version = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    target = WhylogsProfileOperator(
        task_id="p", dataset_uri=data["baseline"], output_uri=str(tmp_path / "t")
    ).execute(CONTEXT)
    with pytest.raises(
        MissingEvidenceError,
        match=rf"model '{name}' alias 'champion' \(version 1\) records no training-data profile",
    ):
        DriftCheckOperator(
            task_id="d",
            target_profile_uri=target["profile_uri"],
            reference_model_name=name,
            on_missing_reference="skip",
        ).execute(CONTEXT)


def test_drift_sensor_pokes_then_its_trigger_fires_when_drifted_data_arrives(data, tmp_path):
    from airflow_mlops_provider.sensors.drift import DriftSensor
    from airflow_mlops_provider.triggers.drift import DriftTrigger

    reference = WhylogsProfileOperator(
        task_id="r", dataset_uri=data["reference"], output_uri=str(tmp_path / "ref")
    ).execute(CONTEXT)
    watched = tmp_path / "latest"
    sensor = DriftSensor(
        task_id="s",
        target_profile_uri=str(watched / "profile.bin"),
        reference_profile_uri=reference["profile_uri"],
        poke_interval=0.2,
        timeout=60,
        deferrable=True,
    )
    assert not sensor.poke(CONTEXT)  # no target profile yet: keep waiting
    trigger = sensor._trigger(timeout=30)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops_provider.triggers.drift.DriftTrigger"
    rebuilt = DriftTrigger(**kwargs)

    async def run_until_event():
        async def arrive():
            await asyncio.sleep(0.5)
            WhylogsProfileOperator(
                task_id="x", dataset_uri=data["baseline"], output_uri=str(watched)
            ).execute(CONTEXT)
            await asyncio.sleep(1.0)
            WhylogsProfileOperator(task_id="y", dataset_uri=data["drift"], output_uri=str(watched)).execute(
                CONTEXT
            )

        writer = asyncio.create_task(arrive())
        event = await anext(rebuilt.run())
        await writer
        return event

    event = asyncio.run(run_until_event())
    assert event.payload["status"] == "success"
    assert event.payload["report"]["outcome"] == "drift"
    assert sensor.execute_complete(CONTEXT, event.payload)["outcome"] == "drift"


def test_drift_trigger_times_out_and_the_sensor_fails(data, tmp_path):
    from airflow.sdk.exceptions import AirflowSensorTimeout

    from airflow_mlops_provider.sensors.drift import DriftSensor
    from airflow_mlops_provider.triggers.drift import DriftTrigger

    reference = WhylogsProfileOperator(
        task_id="r", dataset_uri=data["reference"], output_uri=str(tmp_path / "ref")
    ).execute(CONTEXT)
    trigger = DriftTrigger(
        str(tmp_path / "never" / "profile.bin"), reference["profile_uri"], None, "drift", 0.1, 0.5
    )
    event = asyncio.run(anext(trigger.run()))
    assert event.payload["status"] == "timeout"
    sensor = DriftSensor(task_id="s", target_profile_uri="x", reference_profile_uri=reference["profile_uri"])
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete(CONTEXT, event.payload)


def test_drift_sensor_without_a_reference_fails_at_once(tmp_path):
    from airflow_mlops_provider.sensors.drift import DriftSensor

    sensor = DriftSensor(task_id="s", target_profile_uri="x", reference_profile_uri=str(tmp_path / "missing"))
    with pytest.raises(MissingEvidenceError):
        sensor.poke(CONTEXT)
    assert Path(tmp_path).exists()
    assert timedelta(seconds=sensor.poke_interval) > timedelta(0)
