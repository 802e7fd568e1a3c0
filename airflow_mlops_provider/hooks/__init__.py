"""Hooks of the MLOps provider.

Operators take their default connection and their hook from here, so that parsing a DAG does not
import the hook module: the hook is built when a task runs.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_mlops_provider.hooks.mlflow import MlflowHook

#: The ``mlflow`` connection used unless another is named (``MlflowHook.default_conn_name``).
MLFLOW_DEFAULT_CONN_ID = "mlflow_default"


class MlflowHookMixin:
    """For operators and sensors that talk to MLflow through the connection ``mlflow_conn_id``."""

    mlflow_conn_id: str

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        """The hook for ``mlflow_conn_id``, built on first use (when the task runs)."""
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(self.mlflow_conn_id)
