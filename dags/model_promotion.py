"""Reference DAGs: gated promotion of a trained model with human approval, and a manual rollback.

Needs: the ``mlflow_default`` connection (an MLflow tracking server, for the UI links), evaluation
data the worker can read, and a candidate whose training run carries the evidence tags
(``mlops.evidence.*``). Trigger ``model_promotion`` with conf such as
``{"candidate": "<run id or models:/m-... URI>", "registered_model_name": "churn",
"eval_data_uri": "/data/churn/eval.parquet"}``; approve or reject in the Airflow UI within 24 hours
(no answer rejects). Trigger ``model_rollback`` with the model name and a reason.
"""

from __future__ import annotations

from datetime import timedelta

# Named so that the DAG processor imports the approval operator behind the gated promotion once,
# before it forks to parse, instead of in every parse (docs/reference-dags.md).
import airflow.providers.standard.operators.hitl  # noqa: F401
from airflow.sdk import DAG, Param

from airflow_mlops_provider.operators.registry import ModelRollbackOperator, gated_promotion

# [START promotion_gates]
GATES = """
thresholds:
  - roc_auc >= 0.80
no_regression:
  - {metric: roc_auc, tolerance: 0.01}
slices:
  - name: month_to_month
    where: 'contract == "month-to-month"'
    thresholds: [roc_auc >= 0.75]
    min_rows: 50
latency: {p95_ms: 200, sample_rows: 100, repeats: 20}
evidence: {failed_statuses: [failed, error]}
"""
# [END promotion_gates]

# [START model_promotion]
with DAG(
    dag_id="model_promotion",
    schedule=None,
    catchup=False,
    tags=["mlops", "registry"],
    doc_md=__doc__,
    # A refused candidate must not be retried into the registry; evaluation is bounded.
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=30)},
    params={
        "candidate": Param("", type="string", description="Run id, runs:/ or models:/m-... URI"),
        "registered_model_name": Param("churn", type="string"),
        "eval_data_uri": Param("", type="string", description="CSV or Parquet evaluation data"),
        "drift_summary": Param("", type="string", description="Drift summary shown to approvers"),
    },
):
    gated_promotion(
        group_id="promote",
        candidate="{{ params.candidate }}",
        registered_model_name="{{ params.registered_model_name }}",
        eval_data_uri="{{ params.eval_data_uri }}",
        target_column="churned",
        gates=GATES,
        drift_summary="{{ params.drift_summary }}",
        response_timeout=timedelta(hours=24),
    )
# [END model_promotion]

# [START model_rollback]
with DAG(
    dag_id="model_rollback",
    schedule=None,
    catchup=False,
    tags=["mlops", "registry"],
    doc_md=__doc__,
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=10)},
    params={
        "registered_model_name": Param("churn", type="string"),
        "reason": Param("", type="string", minLength=1, description="Why; recorded on both versions"),
    },
):
    ModelRollbackOperator(
        task_id="rollback",
        registered_model_name="{{ params.registered_model_name }}",
        reason="{{ params.reason }}",
    )
# [END model_rollback]
