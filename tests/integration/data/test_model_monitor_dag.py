"""``dags/model_monitor.py`` run for real (``airflow dags test``) on captured traffic, against a real
MLflow server: skew, drift, live performance from delayed labels, the decay asset and the rollback."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops_provider.lineage import TAG_BENTO_CAPTURE_URI, TAG_TASK_TYPE, TAG_TRAINING_PROFILE_URI
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from airflow_mlops_provider.promotion import (
    TAG_METRICS,
    TAG_PREVIOUS_CHAMPION,
    TAG_ROLLBACK_REASON,
    TAG_STATUS,
)
from mlops_demo.churn import FEATURES, TARGET, fit_baseline_model, generate_week
from tests.conftest import REPO
from tests.integration.data.conftest import CONTEXT, asset_events, run_dag, task_states, try_number

pytestmark = pytest.mark.integration
DAGS = REPO / "dags"
DAG_ID = "model_monitor"
SIGNATURE = [
    {"name": "tenure", "type": "long"},
    {"name": "contract", "type": "string"},
    {"name": "monthly_charges", "type": "double"},
    {"name": "support_calls", "type": "long"},
    {"name": "days_since_last_login", "type": "double"},
    {"name": "senior_citizen", "type": "long"},
    {"name": "payment_method", "type": "string"},
]


@pytest.fixture(scope="module")
def model() -> Any:
    return fit_baseline_model(generate_week("baseline", rows=3_000, seed=9, week=0))


@pytest.fixture(scope="module")
def model_after_price_rise() -> Any:
    return fit_baseline_model(generate_week("drift", rows=3_000, seed=9, week=0))


def register(trained_on: str, tmp_path: Path) -> dict[str, Any]:
    """A registered model whose v1 is champion: trained on ``trained_on`` (its profile recorded),
    evaluated offline at ROC AUC 0.80, its Bento capturing to ``tmp_path / "capture"``."""
    import pandas as pd

    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    # What the training run profiles: the features and the target, not the customer id.
    train = tmp_path / "train.csv"
    pd.read_csv(trained_on).drop(columns=["customer_id"]).to_csv(train, index=False)
    reference = WhylogsProfileOperator(
        task_id="p", dataset_uri=str(train), output_uri=str(tmp_path / "ref")
    ).execute(CONTEXT)
    name = f"churn-{uuid.uuid4().hex[:8]}"
    client = MlflowHook().get_client()
    client.create_registered_model(name)
    state = {
        "name": name,
        "client": client,
        "capture_uri": str(tmp_path / "capture"),
        "profile": reference["profile_uri"],
    }
    add_version(state)
    client.set_registered_model_alias(name, "champion", "1")
    return state


@pytest.fixture
def monitored(mlflow_conn: Any, data: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """Champion v1 trained on the baseline market."""
    return register(data["reference"], tmp_path)


def add_version(state: dict[str, Any], replaced: str | None = None) -> str:
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    client = state["client"]
    experiment = MlflowHook().get_or_create_experiment("model-monitor")
    run = client.create_run(
        experiment, tags={TAG_TRAINING_PROFILE_URI: state["profile"], TAG_TASK_TYPE: "classification"}
    )
    client.set_terminated(run.info.run_id)
    mv = client.create_model_version(state["name"], f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    # As the promotion records its evaluation of the version.
    evaluation = {"rows": 1000, "overall": {"roc_auc": 0.80}, "slices": {}}
    tags = {TAG_METRICS: json.dumps(evaluation), TAG_BENTO_CAPTURE_URI: state["capture_uri"]}
    if replaced:
        tags[TAG_PREVIOUS_CHAMPION] = replaced
    for key, value in tags.items():
        client.set_model_version_tag(state["name"], mv.version, key, value)
    return str(mv.version)


def serve(state: dict[str, Any], version: str, model: Any, traffic: Any) -> list[str]:
    """Capture ``traffic`` as the Bento of ``version`` would (the same writer); return the request ids."""
    from airflow_mlops_provider.serving.capture import CaptureConfig, CaptureWriter
    from airflow_mlops_provider.serving.schema import to_frame, to_records

    labels = {
        "mlflow_model_name": state["name"],
        "mlflow_model_version": version,
        "mlflow_run_id": "r",
        "data_fingerprint": "sha256:00",
    }
    writer = CaptureWriter(
        CaptureConfig(uri=state["capture_uri"]),
        labels,
        SIGNATURE,
        lambda rows: to_frame(rows, SIGNATURE),
        lambda frame: (list(model.classes_), model.predict_proba(frame)),
    )
    records = to_records(traffic, SIGNATURE)
    ids = [f"{version}-{c}" for c in traffic["customer_id"]]
    predictions = model.predict(traffic[FEATURES]).tolist()
    for start in range(0, len(records), 16):
        writer.record(ids[start : start + 16], records[start : start + 16], predictions[start : start + 16])
    writer.close()
    return ids


def write_labels(path: Path, ids: list[str], outcomes: Any) -> str:
    """The outcomes arriving a minute later, as the CRM would export them."""
    import pandas as pd

    path.mkdir(parents=True, exist_ok=True)
    later = datetime.now(timezone.utc) + timedelta(minutes=1)
    frame = pd.DataFrame({"request_id": ids, TARGET: list(outcomes), "labeled_at": later.isoformat()})
    frame.to_csv(path / "labels-0001.csv", index=False)
    return str(path)


def conf(state: dict[str, Any], labels_uri: str, **extra: Any) -> dict[str, Any]:
    end = (datetime.now(timezone.utc) + timedelta(minutes=5)).isoformat()
    return {"model_name": state["name"], "labels_uri": labels_uri, "window_end": end, **extra}


def test_decay_that_drift_does_not_show_emits_the_performance_asset_and_alerts(
    airflow_db: Any, mlflow_conn: Any, data: dict[str, str], model_after_price_rise: Any, tmp_path: Path
) -> None:
    # Champion trained on the market after the price rise; its customers still look like that.
    monitored = register(data["drift"], tmp_path)
    model = model_after_price_rise
    # A draw the drift check rightly finds nothing in (at p < 0.05, some draws give a false alarm).
    traffic = generate_week("concept_shift", rows=800, seed=2026, week=4)
    ids = serve(monitored, "1", model, traffic)
    labels = write_labels(tmp_path / "labels", ids, traffic[TARGET])

    log, run_id = run_dag(DAG_ID, conf(monitored, labels), DAGS)
    states = task_states(DAG_ID, run_id)
    assert states["validate_traffic"] == "success"
    assert states["no_drift"] == "success", "the customers look as they did: no data drift"
    assert states["performance_degraded"] == "success"
    assert states["performance_ok"] == "skipped"
    assert states["rollback"] == "skipped", "v1 replaced no champion: nothing to roll back to"
    (event,) = asset_events("churn_performance", run_id)
    assert event["model_name"] == monitored["name"]
    assert event["version"] == "1"
    assert event["offline"] == 0.80
    assert event["live"]["value"] < 0.6
    assert event["live"]["rows"] == 800
    assert asset_events("churn_drift", run_id) == []
    assert f"ALERT: [mlops] {monitored['name']}: live performance degraded" in log
    # The window is in the version's monitoring run, at the window's step.
    client = monitored["client"]
    (run,) = client.search_runs(
        [client.get_experiment_by_name("mlops-monitoring").experiment_id],
        filter_string=f"tags.`mlops.monitoring.model` = '{monitored['name']}'",
    )
    assert run.data.metrics["live.roc_auc"] == pytest.approx(event["live"]["value"])
    assert run.data.metrics["labels.coverage"] == 1.0


def test_rollback_policy_restores_the_champion_that_did_better_live(
    airflow_db: Any, monitored: dict[str, Any], model: Any, tmp_path: Path
) -> None:
    client, name = monitored["client"], monitored["name"]
    # v1 served baseline customers and was right about them.
    week = generate_week("baseline", rows=600, seed=9, week=6)
    ids = serve(monitored, "1", model, week)
    labels = write_labels(tmp_path / "labels-v1", ids, week[TARGET])
    _, first = run_dag(DAG_ID, conf(monitored, labels), DAGS)
    assert task_states(DAG_ID, first)["performance_ok"] == "success"

    # v2 replaced it, and is wrong about the same kind of customers.
    v2 = add_version(monitored, replaced="1")
    client.set_registered_model_alias(name, "champion", v2)
    client.set_registered_model_alias(name, "previous_champion", "1")
    week = generate_week("baseline", rows=600, seed=9, week=7)
    ids = serve(monitored, v2, model, week)
    labels = write_labels(tmp_path / "labels-v2", ids, 1 - week[TARGET])
    _log, second = run_dag(DAG_ID, conf(monitored, labels), DAGS)

    states = task_states(DAG_ID, second)
    assert states["performance_degraded"] == "success"
    assert states["rollback"] == "success"
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    rolled_back = client.get_model_version(name, v2).tags
    assert rolled_back[TAG_STATUS] == "rolled_back"
    assert "worse than v1's" in rolled_back[TAG_ROLLBACK_REASON]
    assert client.get_model_version(name, "1").tags[TAG_STATUS] == "champion"
    assert len(asset_events("churn_performance", second)) == 1


def test_zero_filled_traffic_fails_validation_once_and_alerts(
    airflow_db: Any, monitored: dict[str, Any], model: Any, data: dict[str, str], tmp_path: Path
) -> None:
    import pandas as pd

    traffic = pd.read_csv(data["zero_fill"]).head(600)
    serve(monitored, "1", model, traffic)
    log, run_id = run_dag(DAG_ID, conf(monitored, str(tmp_path / "none")), DAGS, expect_success=False)
    states = task_states(DAG_ID, run_id)
    assert states["validate_traffic"] == "failed"
    assert states["check_drift"] == "upstream_failed"
    assert states["check_performance"] == "upstream_failed"
    assert "days_since_last_login" in log
    assert f"ALERT: [mlops] {monitored['name']}: served traffic failed validation" in log
    # retries=1 in the DAG, yet one try: the same data breaks the same contract again.
    assert try_number(DAG_ID, run_id, "validate_traffic") == 1


def test_before_the_first_champion_the_monitor_skips_saying_why(airflow_db: Any, mlflow_conn: Any) -> None:
    log, run_id = run_dag(DAG_ID, {"model_name": "not-served-yet"}, DAGS)
    states = task_states(DAG_ID, run_id)
    assert states["capture_window"] == "skipped"
    assert set(states.values()) == {"skipped"}
    assert "has no 'champion' version yet: nothing is served to monitor" in log
