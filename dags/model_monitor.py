"""Daily drift monitor: is today's inference traffic still the data the champion was trained on?

Profiles the latest inference batch, validates it against a contract derived from the champion's
training profile, and checks drift against that profile. Drift emits an event for the
``churn_drift`` asset, which schedules ``continuous_training``; drift and a failed validation are
announced by :class:`~airflow_mlops_provider.notifications.alerts.MlopsAlertNotifier` (email when an
``smtp_default`` connection and ``alert_to`` are set, the task log otherwise).

Needs: the ``mlflow_default`` connection; a registered model (param ``model_name``) whose
``champion`` recorded its training profile, which ``continuous_training`` does. Before the first
champion there is nothing to compare against, and the checks are skipped, saying so.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

# Named so that the DAG processor imports the branching base of the drift check once, before it forks
# to parse, instead of in every parse (docs/reference-dags.md).
import airflow.providers.standard.operators.branch  # noqa: F401
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, Param

from airflow_mlops_provider.notifications.alerts import MlopsAlertNotifier
from airflow_mlops_provider.operators.drift import DriftCheckOperator
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from airflow_mlops_provider.operators.validation import DataValidationOperator

MLOPS_HOME = os.environ.get("MLOPS_HOME", os.path.expanduser("~/.mlops"))
# [START drift_asset]
CHURN_DRIFT = Asset(name="churn_drift", uri="mlops://churn/drift")
# [END drift_asset]
ALERT_TO = os.environ.get("MLOPS_ALERT_TO") or None

# [START drift_monitor]
with DAG(
    dag_id="drift_monitor",
    description="Profile the latest inference batch and check it against the champion's training data",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "monitoring", "churn"],
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=30),
    },
    params={
        "inference_uri": Param(
            os.path.join(MLOPS_HOME, "data", "inference"),
            type="string",
            description="Latest inference batch: a file, a partition directory or a glob",
        ),
        "model_name": Param(
            "churn", type="string", description="Registered model whose champion is the reference"
        ),
    },
    doc_md=__doc__,
) as dag:
    profile = WhylogsProfileOperator(
        task_id="profile_inference_batch", dataset_uri="{{ params.inference_uri }}"
    )
    validate = DataValidationOperator(
        task_id="validate_inference_batch",
        profile_uri="{{ ti.xcom_pull('profile_inference_batch')['profile_uri'] }}",
        contract={"min_rows": 1},
        reference_model_name="{{ params.model_name }}",
        on_failure_callback=MlopsAlertNotifier(
            subject="[mlops] {{ params.model_name }}: inference data failed validation",
            message="{{ ti.log_url }}",
            to=ALERT_TO,
        ),
    )
    drift = DriftCheckOperator(
        task_id="check_drift",
        target_profile_uri="{{ ti.xcom_pull('profile_inference_batch')['profile_uri'] }}",
        reference_model_name="{{ params.model_name }}",
        reference_alias="champion",
        on_missing_reference="skip",
        drift_asset=CHURN_DRIFT,
        branch={
            "drift": "drift_found",
            "possible_drift": "drift_found",
            "no_drift": "no_drift",
            "no_reference": "no_drift",
        },
    )
    drift_found = EmptyOperator(
        task_id="drift_found",
        on_success_callback=MlopsAlertNotifier(
            subject="[mlops] {{ params.model_name }}: drift in inference data",
            message="{{ ti.xcom_pull('check_drift') }}",
            to=ALERT_TO,
        ),
    )
    no_drift = EmptyOperator(task_id="no_drift")
    profile >> validate >> drift >> [drift_found, no_drift]
# [END drift_monitor]
