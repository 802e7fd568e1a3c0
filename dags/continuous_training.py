"""Continuous training of the churn model: weekly, or as soon as new data or drift arrives.

ingest (content-addressed snapshot, fingerprint, train/eval split) → validate (explicit contract plus
one derived from the champion's training data) → profile → drift check against the champion →
skip when the data is what the champion was trained on → train (``MLflowTrainingOperator``, runtime
from ``[mlops] training_runtime``) → gated promotion (with human approval when asked) → BentoML
packaging of the champion → an event for the ``churn_champion`` asset.

Scheduled every Monday at 03:00 UTC **or** when the ``churn_batch`` asset (new data), the
``churn_drift`` asset (``model_monitor`` found drift in served traffic) or the ``churn_performance``
asset (``model_monitor`` found the champion's live performance degraded) is updated; one run at a
time.

Needs: the ``mlflow_default`` connection; for the kubernetes runtime, ``kubernetes_default`` and the
trainer image. Data lives under ``$MLOPS_HOME/data`` unless ``data_uri`` says otherwise.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

# Modules our tasks build on, named so that the DAG processor imports them once, before it forks to
# parse (it pre-imports the ``airflow.*`` modules a DAG file names), instead of in every parse:
# KubernetesPodOperator (training; ~0.5 s), the PythonOperator behind @task and the approval
# operator behind the gated promotion. docs/reference-dags.md.
import airflow.providers.cncf.kubernetes.operators.pod
import airflow.providers.standard.operators.hitl
import airflow.providers.standard.operators.python  # noqa: F401
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, Param, task
from airflow.timetables.trigger import CronTriggerTimetable

from airflow_mlops_provider.operators.bentoml import BentoPackageOperator
from airflow_mlops_provider.operators.drift import DriftCheckOperator
from airflow_mlops_provider.operators.profiling import WhylogsProfileOperator
from airflow_mlops_provider.operators.registry import ModelPromotionOperator, gated_promotion
from airflow_mlops_provider.operators.training import MLflowTrainingOperator
from airflow_mlops_provider.operators.validation import DataValidationOperator

MLOPS_HOME = os.environ.get("MLOPS_HOME", os.path.expanduser("~/.mlops"))
CHURN_BATCH = Asset(name="churn_batch", uri="mlops://churn/batch")
CHURN_DRIFT = Asset(name="churn_drift", uri="mlops://churn/drift")
CHURN_PERFORMANCE = Asset(name="churn_performance", uri="mlops://churn/performance")
CHURN_CHAMPION = Asset(name="churn_champion", uri="mlops://churn/champion")
#: One seed for the train/eval split and the model: same data + params + seed = same model.
SEED = 42

# [START churn_contract]
# Rules that hold whatever the champion was trained on; the derived contract adds the rest.
CONTRACT = {
    "name": "churn",
    "min_rows": 500,
    "columns": {
        "customer_id": {"dtype": "string", "unique": True},
        "tenure": {"dtype": "integral", "max_null_fraction": 0.01, "min_value": 0, "max_value": 100},
        "contract": {"dtype": "string", "allowed_values": ["month-to-month", "one-year", "two-year"]},
        "monthly_charges": {"dtype": "numeric", "min_value": 0},
        "days_since_last_login": {"dtype": "numeric", "max_null_fraction": 0.01, "min_value": 0},
        "churned": {"dtype": "integral", "min_value": 0, "max_value": 1},
    },
}
# [END churn_contract]

# [START churn_gates]
GATES = """
thresholds:
  - roc_auc >= {{ params.min_roc_auc }}
no_regression:
  - {metric: roc_auc, tolerance: {{ params.regression_tolerance }}}
slices:
  - name: month_to_month
    where: 'contract == "month-to-month"'
    thresholds: [roc_auc >= {{ params.min_slice_roc_auc }}]
    min_rows: 50
latency: {p95_ms: 500, sample_rows: 100, repeats: 10}
fairness:
  - name: senior_citizen
    sensitive: [senior_citizen]
    metrics: [roc_auc]
    max_metric_difference: 0.2
    max_equalized_odds_difference: 0.35
    min_group_rows: 50
"""
# [END churn_gates]

with DAG(
    dag_id="continuous_training",
    description="Validate, profile, check drift, retrain, promote through gates and package the churn model",
    # [START schedule]
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"),
        assets=(CHURN_BATCH | CHURN_DRIFT | CHURN_PERFORMANCE),
    ),
    # [END schedule]
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["mlops", "training", "churn"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=2), "execution_timeout": timedelta(hours=2)},
    params={
        "data_uri": Param(
            os.path.join(MLOPS_HOME, "data", "incoming", "latest.csv"),
            type="string",
            minLength=1,
            description="The new batch: CSV or Parquet file, partition directory or glob",
        ),
        "model_name": Param(
            "churn", type="string", pattern="^[A-Za-z0-9_.-]+$", description="Registered model"
        ),
        "n_estimators": Param(100, type="integer", minimum=10, maximum=1000, description="Boosting rounds"),
        "learning_rate": Param(
            0.1, type="number", exclusiveMinimum=0, maximum=1, description="Learning rate"
        ),
        "max_depth": Param(3, type="integer", minimum=1, maximum=10, description="Tree depth"),
        "gpus": Param(0, type="integer", minimum=0, maximum=8, description="GPUs for the training pod"),
        "min_roc_auc": Param(0.70, type="number", minimum=0, maximum=1, description="Gate: ROC AUC at least"),
        "min_slice_roc_auc": Param(
            0.65, type="number", minimum=0, maximum=1, description="Gate: on month-to-month"
        ),
        "regression_tolerance": Param(
            0.02,
            type="number",
            minimum=0,
            maximum=0.5,
            description="Gate: ROC AUC may drop this much vs the champion",
        ),
        "require_approval": Param(
            False, type="boolean", description="Wait for a human to approve the promotion"
        ),
        "force_retrain": Param(False, type="boolean", description="Retrain even on the champion's own data"),
    },
    doc_md=__doc__,
) as dag:
    # [START ingest]
    @task
    def ingest(data_uri: str, dag_run=None) -> dict[str, str]:
        """Snapshot the batch to a content-addressed place and split it into train and eval.

        No batch at ``data_uri`` fails a run someone triggered by hand; a scheduled or asset-triggered
        run skips instead: no data arrived, so there is nothing to retrain on.
        """
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from airflow_mlops_provider.data.datasets import DatasetError, read_dataframe, resolve
        from airflow_mlops_provider.lineage import data_fingerprint

        try:
            resolve(data_uri)
        except DatasetError as err:
            if dag_run is not None and dag_run.run_type != "manual":
                raise AirflowSkipException(f"No new batch ({err}): nothing to retrain on") from None
            # A retry would find the same nothing.
            raise AirflowFailException(f"no batch to ingest: {err}") from None
        fingerprint = data_fingerprint(data_uri)
        snapshot = os.path.join(MLOPS_HOME, "data", "snapshots", fingerprint.replace(":", "-"))
        os.makedirs(snapshot, exist_ok=True)
        batch = read_dataframe(data_uri)
        paths = {name: os.path.join(snapshot, f"{name}.csv") for name in ("batch", "train", "eval")}
        if not all(os.path.exists(p) for p in paths.values()):
            holdout = batch.sample(frac=0.2, random_state=SEED)
            batch.to_csv(paths["batch"], index=False)
            # The id is not a feature: train and eval leave it out.
            batch.drop(index=holdout.index).drop(columns=["customer_id"]).to_csv(paths["train"], index=False)
            holdout.drop(columns=["customer_id"]).to_csv(paths["eval"], index=False)
        return {
            "batch_uri": paths["batch"],
            "train_uri": paths["train"],
            "eval_uri": paths["eval"],
            "data_fingerprint": fingerprint,
            "train_fingerprint": data_fingerprint(paths["train"]),
        }

    # [END ingest]
    snapshot = ingest("{{ params.data_uri }}")

    validate = DataValidationOperator(
        task_id="validate",
        dataset_uri="{{ ti.xcom_pull(task_ids='ingest')['batch_uri'] }}",
        contract=CONTRACT,
        reference_model_name="{{ params.model_name }}",
    )
    profile = WhylogsProfileOperator(
        task_id="profile_training_data", dataset_uri="{{ ti.xcom_pull(task_ids='ingest')['train_uri'] }}"
    )
    drift = DriftCheckOperator(
        task_id="check_drift",
        target_profile_uri="{{ ti.xcom_pull(task_ids='profile_training_data')['profile_uri'] }}",
        reference_model_name="{{ params.model_name }}",
        on_missing_reference="skip",
    )

    # [START skip_unchanged]
    @task.branch
    def decide(
        model_name: str,
        train_fingerprint: str,
        training_params: dict[str, str],
        force_retrain: str,
        dag_run=None,
    ) -> str:
        """Skip retraining on data the champion was trained on, or that already made a version with
        the same parameters and seed (it would make the same model again), unless forced."""
        from airflow_mlops_provider.decisions import record_step
        from airflow_mlops_provider.hooks.mlflow import MlflowHook
        from airflow_mlops_provider.lineage import TAG_DATA_FINGERPRINT
        from airflow_mlops_provider.promotion import CHAMPION, TAG_DECISION, alias_version, trained_version

        if str(force_retrain).lower() == "true":
            return "train"
        client = MlflowHook().get_client()
        # None only when there is no champion: an unreachable MLflow fails the task.
        champion = alias_version(client, model_name, CHAMPION)
        reason = None
        if champion is not None:
            run_id = client.get_model_version(model_name, champion).run_id
            trained_on = client.get_run(run_id).data.tags.get(TAG_DATA_FINGERPRINT)
            if trained_on == train_fingerprint:
                reason = (
                    f"champion {model_name} v{champion} was trained on this very data ({train_fingerprint})"
                )
        same = (
            None if reason else trained_version(client, model_name, train_fingerprint, training_params, SEED)
        )
        if same is not None:
            decision = (same.tags or {}).get(TAG_DECISION, "undecided")
            reason = (
                f"{model_name} v{same.version} was trained on this very data ({train_fingerprint}) with "
                f"the same parameters and seed (its promotion decision: {decision})"
            )
        if reason is None:
            return "train"
        print(f"Not retraining: {reason}; set force_retrain to retrain anyway.")
        # The decision summary (python -m airflow_mlops_provider.decisions) shows why.
        record_step(
            client,
            model_name,
            dag_id=dag_run.dag_id,
            dag_run_id=dag_run.run_id,
            step="retraining",
            payload={"decision": "skipped", "reason": "already trained on this data", "detail": reason},
            champion=champion,
        )
        return "skip_retraining"

    # [END skip_unchanged]
    hyperparameters = {
        "n_estimators": "{{ params.n_estimators }}",
        "learning_rate": "{{ params.learning_rate }}",
        "max_depth": "{{ params.max_depth }}",
    }
    choice = decide(
        "{{ params.model_name }}",
        "{{ ti.xcom_pull(task_ids='ingest')['train_fingerprint'] }}",
        hyperparameters,
        "{{ params.force_retrain }}",
    )
    skip = EmptyOperator(task_id="skip_retraining")

    # [START train]
    train = MLflowTrainingOperator(
        task_id="train",
        experiment_name="{{ params.model_name }}",
        entrypoint="airflow_mlops_provider.training.examples:train_sklearn",
        train_uri="{{ ti.xcom_pull(task_ids='ingest')['train_uri'] }}",
        eval_uri="{{ ti.xcom_pull(task_ids='ingest')['eval_uri'] }}",
        target="churned",
        training_params=hyperparameters,
        seed=SEED,
        validation_report_uri="{{ ti.xcom_pull(task_ids='validate')['report_uri'] }}",
        validation_status="{{ ti.xcom_pull(task_ids='validate')['status'] }}",
        training_profile_uri="{{ ti.xcom_pull(task_ids='profile_training_data')['profile_uri'] }}",
    )
    # [END train]

    @task.branch
    def approval_or_not(require_approval: str) -> str:
        return "gated.evaluate" if str(require_approval).lower() == "true" else "promote"

    route = approval_or_not("{{ params.require_approval }}")
    promotion_args = {
        "candidate": "{{ ti.xcom_pull(task_ids='train')['run_id'] }}",
        "registered_model_name": "{{ params.model_name }}",
        "eval_data_uri": "{{ ti.xcom_pull(task_ids='ingest')['eval_uri'] }}",
        "target_column": "churned",
        "gates": GATES,
        "drift_summary": "{{ ti.xcom_pull(task_ids='check_drift') }}",
    }
    # [START promote]
    # A refused candidate ends the task skipped, the decision in its XCom and the decision log.
    promote = ModelPromotionOperator(task_id="promote", on_reject="skip", **promotion_args)
    gated = gated_promotion(group_id="gated", require_approval=True, **promotion_args)
    # [END promote]

    package = BentoPackageOperator(
        task_id="package_champion",
        model_name="{{ params.model_name }}",
        alias="champion",
        eval_data_uri="{{ ti.xcom_pull(task_ids='ingest')['eval_uri'] }}",
        trigger_rule="none_failed_min_one_success",
        outlets=[CHURN_CHAMPION],
    )

    snapshot >> validate >> profile >> drift >> choice >> [train, skip]
    train >> route >> [promote, gated]
    [promote, gated] >> package
