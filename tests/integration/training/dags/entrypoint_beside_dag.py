"""Test DAG: local training whose entrypoint, ``my_train``, is a module beside this file.

Its hyper-parameters are templated from typed params; ``my_train`` uses them as given.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param

from airflow_mlops_provider.operators.training import MLflowTrainingOperator

with DAG(
    "entrypoint_beside_dag",
    schedule=None,
    tags=["test"],
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=5)},
    params={
        "train_uri": Param("", type="string"),
        "eval_uri": Param("", type="string"),
        "n_estimators": Param(7, type="integer"),
        "learning_rate": Param(0.3, type="number"),
        "warm_start": Param(False, type="boolean"),
    },
):
    MLflowTrainingOperator(
        task_id="train",
        runtime="local",
        experiment_name="entrypoint-beside-dag",
        entrypoint="my_train:train",
        train_uri="{{ params.train_uri }}",
        eval_uri="{{ params.eval_uri }}",
        target="churned",
        training_params={
            "n_estimators": "{{ params.n_estimators }}",
            "learning_rate": "{{ params['learning_rate'] }}",
            "warm_start": "{{ params.warm_start }}",
            "label": "gb-{{ params.n_estimators }}",
        },
        seed=3,
    )
