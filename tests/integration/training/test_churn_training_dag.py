"""The reference training DAG under Airflow's own task runner (``airflow dags test``), local runtime."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess

import pytest

from airflow_mlops_provider import lineage
from tests.conftest import TEST_STACK

pytestmark = pytest.mark.integration


def test_churn_training_dag_trains_and_pushes_the_run_to_xcom(airflow_db, mlflow_conn, tmp_path):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    conf = {"train_uri": str(tmp_path / "train.csv"), "eval_uri": str(tmp_path / "eval.csv")}
    result = subprocess.run(
        [str(TEST_STACK.bin_dir / "airflow"), "dags", "test", "churn_training", "--conf", json.dumps(conf)],
        env={**os.environ, "AIRFLOW__MLOPS__TRAINING_RUNTIME": "local"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    dag_run_id = re.findall(r"run_id=(manual__[^ ,]+)", log)[-1]

    database = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "select value from xcom where dag_id = 'churn_training' and task_id = 'train' "
            "and run_id = ? and key = 'return_value'",
            (dag_run_id,),
        ).fetchall()
    assert len(rows) == 1
    pushed = json.loads(rows[0][0])
    pushed = json.loads(pushed) if isinstance(pushed, str) else pushed

    run = MlflowHook().get_client().get_run(pushed["run_id"])
    assert run.info.status == "FINISHED"
    assert pushed["model_uri"].startswith("models:/")
    assert pushed["metrics"]["roc_auc"] == run.data.metrics["roc_auc"]
    assert run.data.tags[lineage.TAG_DAG_ID] == "churn_training"
    assert run.data.tags[lineage.TAG_DAG_RUN_ID] == dag_run_id
    assert run.data.tags[lineage.TAG_RUNTIME] == "local"
    assert run.data.tags[lineage.TAG_CODE_VERSION] == "churn_training-1"
    assert run.data.tags[lineage.TAG_DATA_URI] == conf["train_uri"]
