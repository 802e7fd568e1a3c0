"""Data gates for a batch too big for one worker: profiled as mapped tasks over its partitions.

The churn batch, a directory of daily partitions (``date=YYYY-MM-DD/part-*.csv`` or Parquet), is
split into partitions of about ``partition_size`` (files packed together, a big file cut into byte
ranges or row groups), each profiled by its own mapped task on whichever worker the executor picks,
and merged into one profile: the same ``profile.bin`` and ``summary.json``, the same data
fingerprint, as a single ``WhylogsProfileOperator`` would write. Then the usual gates read it:
validation against the churn contract, and drift against the champion's training profile (skipped
while there is no champion).

Needs: the ``mlflow_default`` connection (for the champion's training profile). On a Celery or
Kubernetes executor, ``staging_uri`` must be storage every worker reaches (``s3://…``), see
docs/data-gates.md.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

# Named so that the DAG processor imports the branching base once, before it forks to parse,
# instead of in every parse (docs/reference-dags.md).
import airflow.providers.standard.operators.branch  # noqa: F401
from airflow.sdk import DAG, Param

from airflow_mlops_provider.operators.drift import DriftCheckOperator
from airflow_mlops_provider.operators.profiling import partitioned_profile
from airflow_mlops_provider.operators.validation import DataValidationOperator

MLOPS_HOME = os.environ.get("MLOPS_HOME", os.path.expanduser("~/.mlops"))
#: The batch's own rules (the churn contract of continuous_training, less the derived part).
CONTRACT = {
    "name": "churn-batch",
    "min_rows": 500,
    "columns": {
        "customer_id": {"dtype": "string", "unique": True},
        "tenure": {"dtype": "integral", "max_null_fraction": 0.01, "min_value": 0, "max_value": 100},
        "contract": {"dtype": "string", "allowed_values": ["month-to-month", "one-year", "two-year"]},
        "monthly_charges": {"dtype": "numeric", "min_value": 0},
        "churned": {"dtype": "integral", "min_value": 0, "max_value": 1},
    },
}

with DAG(
    dag_id="partitioned_data_gates",
    description="Profile a partitioned batch as mapped tasks, merge, validate and check drift",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["mlops", "data-gates", "churn"],
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "execution_timeout": timedelta(hours=1),
    },
    params={
        "data_uri": Param(
            os.path.join(MLOPS_HOME, "data", "batch"),
            type="string",
            minLength=1,
            description="The batch: a partition directory, glob or big file (CSV or Parquet)",
        ),
        "partition_size": Param(
            "128MiB", type="string", description="Bytes per mapped task, e.g. 64MiB or 1GB"
        ),
        "staging_uri": Param(
            os.path.join(MLOPS_HOME, "profiles", "_partitions"),
            type="string",
            description="Where partition profiles go: storage every worker reaches",
        ),
        "model_name": Param(
            "churn", type="string", pattern="^[A-Za-z0-9_.-]+$", description="Registered model"
        ),
    },
    doc_md=__doc__,
) as dag:
    # [START partitioned_profile]
    profile = partitioned_profile(
        group_id="profile_batch",
        dataset_uri="{{ params.data_uri }}",
        partition_size="{{ params.partition_size }}",
        staging_uri="{{ params.staging_uri }}",
    )
    validate = DataValidationOperator(
        task_id="validate",
        profile_uri="{{ ti.xcom_pull(task_ids='profile_batch.merge')['profile_uri'] }}",
        contract=CONTRACT,
    )
    # [END partitioned_profile]
    drift = DriftCheckOperator(
        task_id="check_drift",
        target_profile_uri="{{ ti.xcom_pull(task_ids='profile_batch.merge')['profile_uri'] }}",
        reference_model_name="{{ params.model_name }}",
        on_missing_reference="skip",
    )
    profile >> [validate, drift]
