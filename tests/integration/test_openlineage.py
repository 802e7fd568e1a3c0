"""OpenLineage from a real ``continuous_training`` run: the provider's listener, a file transport.

The week's batch goes in; its profile, the validation report, the trained model, the registered
model version and the Bento come out, each reported by the task that read or wrote it.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from mlops_demo.churn import write_week
from tests.conftest import REPO
from tests.integration.data.conftest import run_dag

pytestmark = pytest.mark.integration


def _events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_continuous_training_run_reports_its_datasets_and_model_version(
    airflow_db, mlflow_conn, tmp_path, monkeypatch
):
    events_file = tmp_path / "openlineage.jsonl"
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(
        "AIRFLOW__OPENLINEAGE__TRANSPORT",
        json.dumps({"type": "file", "log_file_path": str(events_file), "append": True}),
    )
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__NAMESPACE", "mlops-test")
    week = write_week(tmp_path / "week1.csv", "baseline", rows=3_000, seed=7, week=1)
    model = f"churn-{uuid.uuid4().hex[:6]}"

    run_dag("continuous_training", {"data_uri": str(week), "model_name": model}, REPO / "dags")

    completed = {}
    for event in _events(events_file):
        if event.get("eventType") == "COMPLETE" and "." in event["job"]["name"]:
            task = event["job"]["name"].split(".", 1)[1]
            completed[task] = event
    names = {
        task: (
            {(d["namespace"], d["name"]) for d in event.get("inputs", [])},
            {(d["namespace"], d["name"]) for d in event.get("outputs", [])},
        )
        for task, event in completed.items()
    }
    home = os.path.abspath(tmp_path / "home")
    inputs, outputs = names["profile_training_data"]
    assert any(ns == "file" and name.startswith(home) and name.endswith(".csv") for ns, name in inputs)
    assert any(ns == "file" and name.startswith(os.path.join(home, "profiles")) for ns, name in outputs)
    inputs, outputs = names["validate"]
    assert any(name.endswith(".csv") for _, name in inputs)
    assert any(name.startswith(os.path.join(home, "validation")) for _, name in outputs)
    inputs, outputs = names["train"]
    assert any(name.endswith(".csv") for _, name in inputs)
    assert any(name.startswith(("runs:/", "models:/")) for _, name in outputs), names["train"]
    inputs, outputs = names["promote"]
    assert any(name.startswith(("runs:/", "models:/")) for _, name in inputs), names["promote"]
    assert {name for _, name in outputs} >= {f"models:/{model}/1"}
    inputs, outputs = names["package_champion"]
    assert {name for _, name in inputs} == {f"models:/{model}/1"}
    assert any(ns == "bentoml" for ns, _ in outputs)
