"""Reference DAG: a challenger judged offline, then in shadow on live traffic, then promoted or withdrawn.

Needs: the ``mlflow_default`` connection, evaluation data the worker can read, a champion already
serving (promote the first model with ``model_promotion``), and the labels of served requests arriving
at ``labels_uri`` (``request_id``, ``label``, ``labeled_at``; docs/monitoring.md). The shadow Bento this
DAG packages is ``<model>:v<champion>-shadow-v<challenger>``, tagged on the challenger's version as
``mlops.shadow.bento_tag``: deploy it (``helm upgrade --set modelserver.image.tag=…``, or a GitOps
controller watching that tag) for the online gate to see traffic. Trigger it with conf such as
``{"candidate": "<run id>", "registered_model_name": "churn", "eval_data_uri": "/data/churn/eval.parquet",
"labels_uri": "/data/churn/outcomes/"}``.
"""

from __future__ import annotations

from datetime import timedelta

# Named so that the DAG processor imports the approval operator behind the promotion once, before
# it forks to parse, instead of in every parse (docs/reference-dags.md).
import airflow.providers.standard.operators.hitl  # noqa: F401
from airflow.sdk import DAG, Param

from airflow_mlops_provider.operators.shadow import shadow_promotion

# [START shadow_gates]
GATES = """
thresholds:
  - roc_auc >= 0.80
no_regression:
  - {metric: roc_auc, tolerance: 0.01}
evidence: {failed_statuses: [failed, error]}
online:
  metric: roc_auc
  min_pairs: 1000
  alpha: 0.05
  max_wait_hours: 168
"""
# [END shadow_gates]

# [START shadow_promotion]
with DAG(
    dag_id="shadow_promotion",
    schedule=None,
    catchup=False,
    tags=["mlops", "registry", "serving"],
    doc_md=__doc__,
    # A refused candidate is not retried into the registry; each step is bounded (the online gate
    # waits up to the gate's max_wait_hours between short, rescheduled looks).
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=30)},
    params={
        "candidate": Param("", type="string", description="Run id, runs:/ or models:/m-... URI"),
        "registered_model_name": Param("churn", type="string"),
        "eval_data_uri": Param("", type="string", description="CSV or Parquet evaluation data"),
        "labels_uri": Param("", type="string", description="Where the served requests' outcomes arrive"),
    },
):
    shadow_promotion(
        group_id="promote",
        candidate="{{ params.candidate }}",
        registered_model_name="{{ params.registered_model_name }}",
        eval_data_uri="{{ params.eval_data_uri }}",
        labels_uri="{{ params.labels_uri }}",
        target_column="churned",
        gates=GATES,
        # Shadow only; {"canary_share": 0.05} would let the challenger answer 5% of customers.
        shadow={"canary_share": 0.0},
        poke_interval=timedelta(hours=1).total_seconds(),
        response_timeout=timedelta(hours=24),
    )
# [END shadow_promotion]
