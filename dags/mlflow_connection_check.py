"""Check that Airflow workers can reach MLflow through the ``mlflow_default`` connection.

Needs: the ``mlflow_default`` connection, or the one named by the ``mlflow_conn_id`` param. The
local stack defines it; without it the hook uses the documented local default store. Trigger it
after changing the connection: it fails with an error naming the tracking URI when MLflow is
unreachable or refuses the credentials.
"""

from __future__ import annotations

from datetime import timedelta

# Named so that the DAG processor imports the PythonOperator behind @task once, before it forks to
# parse, instead of in every parse (docs/reference-dags.md).
import airflow.providers.standard.operators.python  # noqa: F401
from airflow.sdk import Param, dag, task


# [START mlflow_connection_check]
@dag(
    schedule=None,
    catchup=False,
    tags=["mlops", "smoke"],
    default_args={"retries": 0, "execution_timeout": timedelta(minutes=5)},
    doc_md=__doc__,
    params={
        "mlflow_conn_id": Param("mlflow_default", type="string", description="MLflow connection to check")
    },
)
def mlflow_connection_check():
    @task
    def check_mlflow_connection(mlflow_conn_id: str) -> dict[str, str]:
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        hook = MlflowHook(mlflow_conn_id)
        hook.ensure_reachable()
        # What a training subprocess or pod receives; secrets in it are masked in this log.
        hook.log.info("MLflow environment for training processes: %s", hook.env())
        return {"tracking_uri": hook.tracking_uri, "source": hook.settings.source}

    check_mlflow_connection("{{ params.mlflow_conn_id }}")


mlflow_connection_check()
# [END mlflow_connection_check]
