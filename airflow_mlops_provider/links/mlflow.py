"""Extra links from an Airflow task page to the MLflow run and the model version it acted on.

The operators push the URLs to XCom while they run (only when the tracking URI is http(s), as a
database or file store has no UI to link to); the links read them back. Standard library only.
"""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

XCOM_RUN_URL = "mlflow_run_url"
XCOM_MODEL_VERSION_URL = "mlflow_model_version_url"
XCOM_MODEL_CARD_URL = "mlops_model_card_url"


def _ui_base(tracking_uri: str) -> str | None:
    return (
        tracking_uri.rstrip("/") if urllib.parse.urlsplit(tracking_uri).scheme in ("http", "https") else None
    )


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """Return the MLflow UI URL of a run, or ``None`` when MLflow has no web UI at ``tracking_uri``."""
    base = _ui_base(tracking_uri)
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None


def model_version_url(tracking_uri: str, name: str, version: str) -> str | None:
    """Return the MLflow UI URL of a model version, or ``None`` when there is no web UI."""
    base = _ui_base(tracking_uri)
    if not base:
        return None
    return f"{base}/#/models/{urllib.parse.quote(name, safe='')}/versions/{version}"


def model_card_url(tracking_uri: str, experiment_id: str, run_id: str, version: str) -> str | None:
    """Return the MLflow UI URL of a version's model card (an artifact of its run), or ``None``."""
    run = run_url(tracking_uri, experiment_id, run_id)
    return f"{run}/artifacts/model_card/v{version}/model_card.html" if run else None


def _xcom(ti_key: TaskInstanceKey, key: str) -> Any:
    """Return the value the task pushed under ``key``, or ``""`` when it pushed none.

    The task runner asks every link for its URL when the task ends and stores it for the API server,
    which only reads it back; a task that failed or returned early pushed none. ``XCom.get_value`` fetches one XCom, and the task SDK's API client
    logs the API server's 404 for an absent one at ERROR level ("XCom not found") before answering
    ``None``; the task log then reads as a failure. ``XCom.get_all`` asks for the slice of the task's
    values instead, which is an empty list when there are none: no error.
    """
    from airflow.providers.common.compat.sdk import XCom

    values = XCom.get_all(key=key, dag_id=ti_key.dag_id, task_id=ti_key.task_id, run_id=ti_key.run_id)
    if not values:
        return ""
    if ti_key.map_index < 0:
        return values[0] or ""
    # The slice holds every map index's value, not saying whose is whose: this one's must be asked
    # for. Some index pushed one, so only a mapped task whose own index did not logs the 404.
    return XCom.get_value(ti_key=ti_key, key=key) or ""


class MlflowRunLink(BaseOperatorLink):
    """Link to the MLflow run that produced the model the task acted on."""

    name = "MLflow Run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return str(_xcom(ti_key, XCOM_RUN_URL))


class MlflowModelVersionLink(BaseOperatorLink):
    """Link to the MLflow model version the task registered, promoted or rolled back to."""

    name = "MLflow Model Version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return str(_xcom(ti_key, XCOM_MODEL_VERSION_URL))


class ModelCardLink(BaseOperatorLink):
    """Link to the model card of the version the task decided on (an artifact of its MLflow run)."""

    name = "Model Card"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return str(_xcom(ti_key, XCOM_MODEL_CARD_URL))
