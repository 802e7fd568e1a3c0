"""A local training task whose entrypoint module sits beside its DAG file, under ``airflow dags test``.

The DAG templates its hyper-parameters from typed params; the entrypoint hands them to scikit-learn
as they arrive, which refuses text, so the run succeeding says they kept their types.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops_provider import lineage
from tests.integration.training.conftest import dags_test

pytestmark = pytest.mark.integration

DAGS = Path(__file__).parent / "dags"


def pushed_result(dag_id: str, dag_run_id: str) -> dict[str, Any]:
    database = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(database) as db:
        (value,) = db.execute(
            "select value from xcom where dag_id = ? and task_id = 'train' and run_id = ? "
            "and key = 'return_value'",
            (dag_id, dag_run_id),
        ).fetchone()
    pushed = json.loads(value)
    return json.loads(pushed) if isinstance(pushed, str) else pushed


@pytest.fixture(scope="module")
def trained(airflow_db, mlflow_server, churn_data) -> dict[str, Any]:
    """One run of ``entrypoint_beside_dag`` against the real MLflow server; the result it pushed."""
    conf = {"train_uri": str(churn_data["train"]), "eval_uri": str(churn_data["eval"]), "learning_rate": 0.25}
    log, dag_run_id = dags_test(
        "entrypoint_beside_dag", conf, DAGS, AIRFLOW_CONN_MLFLOW_DEFAULT=mlflow_server.conn_uri()
    )
    return {"log": log, "dag_run_id": dag_run_id, **pushed_result("entrypoint_beside_dag", dag_run_id)}


def test_entrypoint_beside_the_dag_file_trains_locally_and_logs_a_model(trained, mlflow_conn):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    client = MlflowHook().get_client()
    run = client.get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags[lineage.TAG_ENTRYPOINT] == "my_train:train"
    assert run.data.tags[lineage.TAG_DAG_RUN_ID] == trained["dag_run_id"]
    assert trained["model_uri"].startswith("models:/")
    logged = client.search_logged_models(
        experiment_ids=[run.info.experiment_id], filter_string=f"source_run_id = '{trained['run_id']}'"
    )
    assert [m.model_uri for m in logged] == [trained["model_uri"]]
    assert 0.5 < run.data.metrics["roc_auc"] <= 1.0


def test_templated_training_params_reach_the_entrypoint_with_their_param_types(trained, mlflow_conn):
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

    run = MlflowHook().get_client().get_run(trained["run_id"])
    recorded = json.loads(run.data.tags[lineage.TAG_TRAINING_PARAMS])
    assert recorded == {"n_estimators": 7, "learning_rate": 0.25, "warm_start": False, "label": "gb-7"}
    assert [type(recorded[k]) for k in ("n_estimators", "learning_rate", "warm_start", "label")] == [
        int,
        float,
        bool,
        str,
    ]
    # What the entrypoint itself saw, as it reported it.
    assert run.data.params["n_estimators_type"] == "int"
    assert run.data.params["learning_rate_type"] == "float"
    assert run.data.params["warm_start_type"] == "bool"
    assert run.data.params["label_type"] == "str"
