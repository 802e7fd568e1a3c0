"""Train the churn model, tracked in MLflow, locally or in a Kubernetes pod.

Needs: the ``mlflow_default`` connection (without it, the local default MLflow store). The runtime
comes from ``[mlops] training_runtime`` (``AIRFLOW__MLOPS__TRAINING_RUNTIME``): ``local`` (the
default) trains in a subprocess of the worker; ``kubernetes`` trains in a pod of the trainer image
(``deploy/docker/trainer.Dockerfile``) through ``kubernetes_default``, and then the data URIs must be
readable from the pod. ``prepare_data`` writes a generated dataset when the URIs hold none, so the
DAG runs on a fresh machine.
"""

from __future__ import annotations

import os
from datetime import timedelta

# Modules our tasks build on, named so that the DAG processor imports them once, before it forks to
# parse (it pre-imports the ``airflow.*`` modules a DAG file names), instead of in every parse:
# KubernetesPodOperator (training; ~0.5 s) and the PythonOperator behind @task. docs/reference-dags.md.
import airflow.providers.cncf.kubernetes.operators.pod
import airflow.providers.standard.operators.python  # noqa: F401
from airflow.sdk import Param, dag, task

from airflow_mlops_provider.operators.training import MLflowTrainingOperator

DATA_DIR = os.path.join(os.environ.get("MLOPS_HOME") or os.path.expanduser("~/.mlops"), "data", "churn")


@dag(
    schedule=None,
    catchup=False,
    tags=["mlops", "training"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1), "execution_timeout": timedelta(hours=1)},
    doc_md=__doc__,
    params={
        "train_uri": Param(f"{DATA_DIR}/train.csv", type="string", description="training data"),
        "eval_uri": Param(f"{DATA_DIR}/eval.csv", type="string", description="held-out data"),
        "n_estimators": Param(
            100, type="integer", minimum=10, maximum=1000, description="number of boosting stages"
        ),
        "max_depth": Param(3, type="integer", minimum=1, maximum=10, description="depth of each tree"),
    },
)
def churn_training():
    @task
    def prepare_data(train_uri: str, eval_uri: str) -> None:
        """Write a generated churn-like dataset where there is none (for a first run)."""
        from pathlib import Path

        if Path(train_uri).exists() and Path(eval_uri).exists():
            return
        import numpy as np
        import pandas as pd
        from sklearn.datasets import make_classification

        features, labels = make_classification(n_samples=2000, n_features=6, n_informative=4, random_state=7)
        frame = pd.DataFrame(features, columns=[f"usage_{i}" for i in range(6)])
        frame["plan"] = np.where(features[:, 0] > 0.3, "pro", "basic")
        frame["churned"] = labels
        for uri, part in ((train_uri, frame.iloc[:1500]), (eval_uri, frame.iloc[1500:])):
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            part.to_csv(uri, index=False)

    # [START churn_training_task]
    train = MLflowTrainingOperator(
        task_id="train",
        experiment_name="churn",
        entrypoint="airflow_mlops_provider.training.examples:train_sklearn",
        train_uri="{{ params.train_uri }}",
        eval_uri="{{ params.eval_uri }}",
        target="churned",
        training_params={"n_estimators": "{{ params.n_estimators }}", "max_depth": "{{ params.max_depth }}"},
        seed=42,
        code_version="{{ dag.dag_id }}-1",
        # Kubernetes runtime only:
        namespace="ml",
        cpu_request="1",
        memory_request="2Gi",
        memory_limit="4Gi",
    )
    # [END churn_training_task]

    prepare_data("{{ params.train_uri }}", "{{ params.eval_uri }}") >> train


churn_training()
