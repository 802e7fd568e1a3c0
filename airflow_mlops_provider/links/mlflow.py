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


def _xcom(ti_key: TaskInstanceKey, key: str) -> Any:
    from airflow.providers.common.compat.sdk import XCom

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
