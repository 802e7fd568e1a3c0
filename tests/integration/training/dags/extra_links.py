"""Test DAG: two tasks with the MLflow extra links, one that pushed a run URL and one that did not."""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, BaseOperator

from airflow_mlops_provider.links.mlflow import XCOM_RUN_URL, MlflowModelVersionLink, MlflowRunLink

RUN_URL = "http://127.0.0.1:5000/#/experiments/1/runs/0123456789abcdef"


class LinkedOperator(BaseOperator):
    """Pushes ``url`` as the MLflow run URL, or nothing, as a rejected promotion does."""

    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink())

    def __init__(self, *, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.url = url

    def execute(self, context: Any) -> None:
        if self.url:
            context["ti"].xcom_push(key=XCOM_RUN_URL, value=self.url)


with DAG("extra_links", schedule=None, tags=["test"], default_args={"retries": 0}):
    LinkedOperator(task_id="rejected") >> LinkedOperator(task_id="promoted", url=RUN_URL)
