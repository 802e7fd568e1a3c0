"""Continuous training of a regression model: scikit-learn's diabetes data, gated on RMSE.

split (train/eval beside the batch) → validate (a contract derived from the champion's training
data) → profile → drift check against the champion → train (``diabetes_train:train``, the module
beside this file) → promotion on lower-is-better gates → BentoML packaging of the champion.

Needs: the ``mlflow_default`` connection. Outputs go under ``$MLOPS_HOME``. Every decision lands in
the decision log: ``python -m airflow_mlops_provider.decisions diabetes``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import airflow.providers.cncf.kubernetes.operators.pod
import airflow.providers.standard.operators.python  # noqa: F401
from airflow.sdk import DAG, Param, task

from airflow_mlops_provider.operators.bentoml import BentoPackageOperator
from airflow_mlops_provider.operators.drift import DriftCheckOperator
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from airflow_mlops_provider.operators.registry import ModelPromotionOperator
from airflow_mlops_provider.operators.training import MLflowTrainingOperator
from airflow_mlops_provider.operators.validation import DataValidationOperator

SEED = 7

# [START diabetes_gates]
# Lower is better for rmse and mae: no_regression reads each metric's own direction.
GATES = {
    "thresholds": ["rmse <= 70", "mae <= 60", "r2 >= 0.3"],
    "no_regression": [{"metric": "rmse", "tolerance": 0.5}],
}
# [END diabetes_gates]

with DAG(
    dag_id="diabetes_training",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlops", "training", "regression"],
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=30)},
    params={
        "batch_uri": Param("", type="string", minLength=1, description="This week's batch (CSV)"),
        "alpha": Param(1.0, type="number", exclusiveMinimum=0, description="Ridge regularisation"),
    },
    doc_md=__doc__,
) as dag:

    @task
    def split(batch_uri: str) -> dict[str, str]:
        """Hold out a fifth of the batch for evaluation, beside it, the same way every time."""
        import os

        import pandas as pd

        batch = pd.read_csv(batch_uri)
        holdout = batch.sample(frac=0.2, random_state=SEED)
        stem = os.path.splitext(batch_uri)[0]
        paths = {"train_uri": f"{stem}.train.csv", "eval_uri": f"{stem}.eval.csv"}
        batch.drop(index=holdout.index).to_csv(paths["train_uri"], index=False)
        holdout.to_csv(paths["eval_uri"], index=False)
        return paths

    data = split("{{ params.batch_uri }}")
    # [START diabetes_pipeline]
    validate = DataValidationOperator(
        task_id="validate",
        dataset_uri="{{ params.batch_uri }}",
        contract={"name": "diabetes", "min_rows": 100, "columns": {"progression": {"min_value": 0}}},
        reference_model_name="diabetes",  # plus the rules derived from the champion's training data
    )
    profile = WhylogsProfileOperator(
        task_id="profile", dataset_uri="{{ ti.xcom_pull(task_ids='split')['train_uri'] }}"
    )
    drift = DriftCheckOperator(
        task_id="drift",
        target_profile_uri="{{ ti.xcom_pull(task_ids='profile')['profile_uri'] }}",
        reference_model_name="diabetes",
        on_missing_reference="skip",
    )
    train = MLflowTrainingOperator(
        task_id="train",
        experiment_name="diabetes",
        entrypoint="diabetes_train:train",  # diabetes_train.py, beside this file
        train_uri="{{ ti.xcom_pull(task_ids='split')['train_uri'] }}",
        eval_uri="{{ ti.xcom_pull(task_ids='split')['eval_uri'] }}",
        target="progression",
        training_params={"alpha": "{{ params.alpha }}"},  # stays a number: the Param's type
        seed=SEED,
        validation_report_uri="{{ ti.xcom_pull(task_ids='validate')['report_uri'] }}",
        validation_status="{{ ti.xcom_pull(task_ids='validate')['status'] }}",
        training_profile_uri="{{ ti.xcom_pull(task_ids='profile')['profile_uri'] }}",
    )
    promote = ModelPromotionOperator(
        task_id="promote",
        candidate="{{ ti.xcom_pull(task_ids='train') }}",  # the training result as it is
        registered_model_name="diabetes",
        eval_data_uri="{{ ti.xcom_pull(task_ids='split')['eval_uri'] }}",
        target_column="progression",
        gates=GATES,
        model_kind="regression",  # a classification metric in GATES fails this file's import
        on_reject="skip",  # a refused challenger: the task ends skipped, saying why
        drift_summary="{{ ti.xcom_pull(task_ids='drift') }}",
    )
    package = BentoPackageOperator(
        task_id="package",
        model_name="diabetes",
        alias="champion",
        eval_data_uri="{{ ti.xcom_pull(task_ids='split')['eval_uri'] }}",
    )
    data >> validate >> profile >> drift >> train >> promote >> package
    # [END diabetes_pipeline]
