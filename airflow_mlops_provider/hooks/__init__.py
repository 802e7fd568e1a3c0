"""Hooks of the MLOps provider.

Operators take their default connection and their hook from here, so that parsing a DAG does not
import the hook module: the hook is built when a task runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops_provider.decisions import Step
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

    def record_decision_step(
        self, context: Mapping[str, Any], model: str | None, step: Step, payload: Mapping[str, Any]
    ) -> None:
        """Record ``step`` of this DAG run in ``model``'s decision log (:mod:`~airflow_mlops_provider.decisions`).

        The log is for people reading what happened; a task never fails over it, it only warns.
        """
        if not model:
            return
        from airflow_mlops_provider import decisions
        from airflow_mlops_provider.promotion import CHAMPION, alias_version

        ti, dag_run = context.get("ti"), context.get("dag_run")
        dag_id = getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None)
        dag_run_id = context.get("run_id") or getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None)
        if not dag_id or not dag_run_id:
            self.log.info("No DAG run to record the %s step of %s under", step, model)  # type: ignore[attr-defined]
            return
        try:
            client = self.mlflow_hook.get_client()
            decisions.record_step(
                client,
                model,
                dag_id=str(dag_id),
                dag_run_id=str(dag_run_id),
                step=step,
                payload=payload,
                champion=alias_version(client, model, CHAMPION),
            )
        except Exception as err:
            self.log.warning(  # type: ignore[attr-defined]
                "Could not record the %s step of %s in the decision log: %s", step, model, err
            )
