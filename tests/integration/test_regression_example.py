"""docs/examples/diabetes for real: a regression model's weeks through ``airflow dags test``.

The DAG folder holds the DAG file and, beside it, the training entrypoint module it names. Week 1
makes the first champion; week 2 drifts and a better challenger (lower RMSE) is promoted; week 3
has 40% of ``bp`` missing and fails validation closed; a worse challenger is refused, the task
skipped saying why. ``python -m airflow_mlops_provider.decisions diabetes`` then prints every run.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.integration.data.conftest import run_dag, task_states

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]
EXAMPLE = REPO / "docs" / "examples" / "diabetes"
DAG_ID = "diabetes_training"


def _write_week():
    spec = importlib.util.spec_from_file_location("diabetes_week", EXAMPLE / "diabetes_week.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_week


def test_regression_weeks_are_decided_on_lower_is_better_gates_and_summarised(
    airflow_db, mlflow_conn, tmp_path, monkeypatch
):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook
    from airflow_mlops_provider.lineage import TAG_BENTO_TAG, TAG_TASK_TYPE, TAG_TRAINING_PARAMS

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "home"))
    write_week = _write_week()
    batches = {
        kind: write_week(tmp_path / f"{kind}.csv", kind, seed=3) for kind in ("baseline", "drift", "nulls")
    }
    client = MlflowHook().get_client()

    _, week1 = run_dag(DAG_ID, {"batch_uri": str(batches["baseline"])}, EXAMPLE)
    assert task_states(DAG_ID, week1)["package"] == "success"
    v1 = client.get_model_version_by_alias("diabetes", "champion")
    assert v1.version == "1"
    run = client.get_run(v1.run_id)
    assert run.data.tags[TAG_TASK_TYPE] == "regression"
    # The Param's number reached the entrypoint as a number, not as the string "1.0".
    assert json.loads(run.data.tags[TAG_TRAINING_PARAMS]) == {"alpha": 1.0}

    _, week2 = run_dag(DAG_ID, {"batch_uri": str(batches["drift"])}, EXAMPLE)
    states = task_states(DAG_ID, week2)
    assert states["promote"] == "success"
    v2 = client.get_model_version_by_alias("diabetes", "champion")
    assert v2.version == "2"
    metrics = json.loads(v2.tags["mlops.promotion.metrics"])["overall"]
    champion_metrics = json.loads(v2.tags["mlops.promotion.champion_metrics"])["overall"]
    assert metrics["rmse"] < champion_metrics["rmse"]  # lower is better, and it is lower
    assert client.get_model_version("diabetes", "2").tags[TAG_BENTO_TAG] == "diabetes:v2"

    _, week3 = run_dag(DAG_ID, {"batch_uri": str(batches["nulls"])}, EXAMPLE, expect_success=False)
    states = task_states(DAG_ID, week3)
    assert (states["validate"], states["train"]) == ("failed", "upstream_failed")
    assert client.get_model_version_by_alias("diabetes", "champion").version == "2"

    # An over-regularised model on the same drifted week (it predicts ~the mean): refused, skipped.
    log, worse = run_dag(DAG_ID, {"batch_uri": str(batches["drift"]), "alpha": 1e6}, EXAMPLE)
    states = task_states(DAG_ID, worse)
    assert (states["promote"], states["package"]) == ("skipped", "skipped")
    assert "diabetes v3 not promoted: gate '" in log
    assert "gate 'threshold:r2' failed" in log
    assert "[error" not in log, [line for line in log.splitlines() if "[error" in line][:5]
    assert client.get_model_version_by_alias("diabetes", "champion").version == "2"

    summary = subprocess.run(
        [sys.executable, "-m", "airflow_mlops_provider.decisions", "diabetes"],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    header, _rule, *rows = summary.splitlines()
    assert header.split()[:3] == ["run", "validation", "drift"]
    assert [row.split()[0] for row in rows] == [week1, week2, week3, worse]
    first, second, third, fourth = rows
    assert "no champion yet" in first
    assert "promoted" in first
    assert "v1" in first.split()[-2:]
    assert "drift (" in second
    assert "v2 rmse" in second
    assert "vs v1 " in second
    assert second.split()[-2:] == ["v2", "diabetes:v2"]
    assert "FAILED: " in third
    assert "bp max_null_fraction" in third
    assert "not trained" in third
    assert third.split()[-2:] == ["v2", "diabetes:v2"]
    assert "no_regression:rmse" in fourth.split("rejected:")[0]
    assert "threshold:r2" in fourth.split("rejected:")[0]
    assert "rejected: gate '" in fourth
