"""Test DAG: profile a batch, check drift against a model's champion, branch, validate."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset

from airflow_mlops_provider.operators.drift import DriftCheckOperator
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from airflow_mlops_provider.operators.validation import DataValidationOperator

with DAG(
    "data_gates_check",
    schedule=None,
    tags=["test"],
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=5)},
    params={
        "model_name": "",
        "reference_profile_uri": "",
        "target_uri": "",
        "out_dir": "",
        "mlflow_run_id": "",
    },
):
    profile = WhylogsProfileOperator(
        task_id="profile",
        dataset_uri="{{ params.target_uri }}",
        output_uri="{{ params.out_dir }}/profile",
        mlflow_run_id="{{ params.mlflow_run_id }}",
    )
    drift = DriftCheckOperator(
        task_id="drift",
        target_profile_uri="{{ ti.xcom_pull('profile')['profile_uri'] }}",
        reference_model_name="{{ params.model_name }}",
        reference_alias="champion",
        output_uri="{{ params.out_dir }}/drift",
        branch={"drift": "retrain", "possible_drift": "retrain", "no_drift": "keep"},
        drift_asset=Asset("churn_drift"),
        mlflow_run_id="{{ params.mlflow_run_id }}",
    )
    validate = DataValidationOperator(
        task_id="validate",
        profile_uri="{{ ti.xcom_pull('profile')['profile_uri'] }}",
        reference_profile_uri="{{ params.reference_profile_uri }}",
        report_uri="{{ params.out_dir }}/validation",
        mlflow_run_id="{{ params.mlflow_run_id }}",
    )
    retrain, keep = EmptyOperator(task_id="retrain"), EmptyOperator(task_id="keep")
    profile >> validate
    profile >> drift >> [retrain, keep]
