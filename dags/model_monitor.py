"""Daily model monitor: is the champion still sent the data it was trained on, and is it still right?

Reads the champion's own captured traffic (every Bento captures what it serves, docs/monitoring.md)
of the last ``lookback_hours``, then:

- **skew**: validates it against a contract derived from the champion's training profile;
- **drift**: checks it against that profile; drift emits an event for the ``churn_drift`` asset;
- **performance**: joins the outcomes that have arrived (``labels_uri``: ``request_id``, ``churned``,
  ``labeled_at``) to the captured predictions and measures live ROC AUC with the promotion gates'
  metric code. Below the champion's own offline ROC AUC by more than ``max_auc_drop``, with at least
  ``min_labelled_rows`` labelled rows, it is ``degraded``: an event for the ``churn_performance``
  asset (which schedules ``continuous_training``) and an alert. Under :data:`ROLLBACK_POLICY`, when
  the champion was promoted over another and does worse live than that one did, ``rollback`` moves
  ``champion`` back (``ModelRollbackOperator``, with its audit tags).

Drift, a failed validation and decay are announced by
:class:`~airflow_mlops_provider.notifications.alerts.MlopsAlertNotifier` (email when an
``smtp_default`` connection and ``MLOPS_ALERT_TO`` are set, the task log otherwise). No champion, or
no traffic in the window, skips the checks, saying so; too few labels gives ``insufficient_data``.

Needs: the ``mlflow_default`` connection; a champion packaged by ``BentoPackageOperator`` (which
tags where its Bento captures) and served.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

# Named so that the DAG processor imports the branching base once, before it forks to parse,
# instead of in every parse (docs/reference-dags.md).
import airflow.providers.standard.operators.branch  # noqa: F401
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, Param

from airflow_mlops_provider.notifications.alerts import MlopsAlertNotifier
from airflow_mlops_provider.operators.drift import DriftCheckOperator
from airflow_mlops_provider.operators.monitoring import CaptureWindowOperator, ModelPerformanceOperator
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from airflow_mlops_provider.operators.registry import ModelRollbackOperator
from airflow_mlops_provider.operators.validation import DataValidationOperator

MLOPS_HOME = os.environ.get("MLOPS_HOME", os.path.expanduser("~/.mlops"))
# [START monitor_assets]
CHURN_DRIFT = Asset(name="churn_drift", uri="mlops://churn/drift")
CHURN_PERFORMANCE = Asset(name="churn_performance", uri="mlops://churn/performance")
# [END monitor_assets]
ALERT_TO = os.environ.get("MLOPS_ALERT_TO") or None
TARGET = "churned"
#: Roll the champion back when it decays and does worse live than the champion it replaced did.
#: A policy decided here, in review, not per run: "never" turns it off.
ROLLBACK_POLICY = "if_worse_than_replaced"
WINDOW = {
    "model_name": "{{ params.model_name }}",
    "capture_uri": "{{ params.capture_uri }}",
    "window_end": "{{ params.window_end }}",
    "lookback": timedelta(hours=24),
}

# [START model_monitor]
with DAG(
    dag_id="model_monitor",
    description="Check the champion's captured traffic for skew and drift, and its live performance",
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
        "model_name": Param(
            "churn", type="string", description="Registered model whose champion is monitored"
        ),
        "capture_uri": Param(
            "", type="string", description="Capture root; empty: where the champion's Bento captures"
        ),
        "labels_uri": Param(
            os.path.join(MLOPS_HOME, "data", "labels"),
            type="string",
            description="Outcomes that arrived: request_id, churned, labeled_at (file, directory, glob)",
        ),
        "window_end": Param(
            "", type="string", description="End of the window (aware ISO time); empty: this run's time"
        ),
        "max_auc_drop": Param(
            0.05, type="number", minimum=0, maximum=1, description="Decay: live ROC AUC below offline by more"
        ),
        "min_labelled_rows": Param(
            200, type="integer", minimum=1, description="Fewer labelled rows decide nothing"
        ),
    },
    doc_md=__doc__,
) as dag:
    window = CaptureWindowOperator(task_id="capture_window", **WINDOW)
    profile = WhylogsProfileOperator(
        task_id="profile_traffic", dataset_uri="{{ ti.xcom_pull('capture_window')['window_uri'] }}"
    )
    validate = DataValidationOperator(
        task_id="validate_traffic",
        profile_uri="{{ ti.xcom_pull('profile_traffic')['profile_uri'] }}",
        contract={"min_rows": 1},
        reference_model_name="{{ params.model_name }}",
        # Served traffic carries no outcome.
        ignore_columns=[TARGET],
        on_failure_callback=MlopsAlertNotifier(
            subject="[mlops] {{ params.model_name }}: served traffic failed validation",
            message="{{ ti.log_url }}",
            to=ALERT_TO,
        ),
    )
    drift = DriftCheckOperator(
        task_id="check_drift",
        target_profile_uri="{{ ti.xcom_pull('profile_traffic')['profile_uri'] }}",
        reference_model_name="{{ params.model_name }}",
        reference_alias="champion",
        thresholds={"ignore": [TARGET]},
        drift_asset=CHURN_DRIFT,
        branch={"drift": "drift_found", "possible_drift": "drift_found", "no_drift": "no_drift"},
    )
    drift_found = EmptyOperator(
        task_id="drift_found",
        on_success_callback=MlopsAlertNotifier(
            subject="[mlops] {{ params.model_name }}: drift in served traffic",
            message="{{ ti.xcom_pull('check_drift') }}",
            to=ALERT_TO,
        ),
    )
    no_drift = EmptyOperator(task_id="no_drift")
    # [START check_performance]
    performance = ModelPerformanceOperator(
        task_id="check_performance",
        **WINDOW,
        labels_uri="{{ params.labels_uri }}",
        label_column=TARGET,
        policy="""
            metric: roc_auc
            max_drop: {{ params.max_auc_drop }}
            min_rows: {{ params.min_labelled_rows }}
        """,
        metrics=["accuracy", "brier"],
        slices=[{"name": "month_to_month", "where": 'contract == "month-to-month"'}],
        on_missing_labels="insufficient_data",
        decay_asset=CHURN_PERFORMANCE,
        rollback=ROLLBACK_POLICY,
        branch={
            "ok": "performance_ok",
            "insufficient_data": "performance_ok",
            "degraded": "performance_degraded",
            "rollback": "rollback",
        },
    )
    # [END check_performance]
    performance_ok = EmptyOperator(task_id="performance_ok")
    degraded = EmptyOperator(
        task_id="performance_degraded",
        on_success_callback=MlopsAlertNotifier(
            subject="[mlops] {{ params.model_name }}: live performance degraded",
            message="{{ ti.xcom_pull('check_performance')['reasons'] }}",
            to=ALERT_TO,
        ),
    )
    rollback = ModelRollbackOperator(
        task_id="rollback",
        registered_model_name="{{ params.model_name }}",
        expected_champion_version="{{ ti.xcom_pull('check_performance')['version'] }}",
        reason="{{ ti.xcom_pull('check_performance')['rollback']['reason'] }}",
    )
    window >> profile >> validate >> [drift, performance]
    drift >> [drift_found, no_drift]
    performance >> [performance_ok, degraded, rollback]
# [END model_monitor]
