"""The promotion flows as TaskGroups: gated_promotion and approve_and_commit."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops_provider.exceptions import (
    GateConfigError,
)
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import TaskGroup

    from airflow_mlops_provider.gates import PromotionGates
    from airflow_mlops_provider.promotion import LeaseSettings
from airflow_mlops_provider.operators.registry.approval import ModelApprovalOperator
from airflow_mlops_provider.operators.registry.base import OnReject, _literal_gates
from airflow_mlops_provider.operators.registry.commit import ModelPromotionCommitOperator
from airflow_mlops_provider.operators.registry.promotion import ModelPromotionOperator


def gated_promotion(
    *,
    group_id: str,
    candidate: str | dict[str, Any],
    registered_model_name: str,
    eval_data_uri: str,
    target_column: str,
    gates: PromotionGates | dict[str, Any] | str | Path,
    require_approval: bool = True,
    response_timeout: timedelta = timedelta(hours=24),
    mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
    **promotion_kwargs: Any,
) -> TaskGroup:
    """Build ``evaluate >> approve >> commit`` as a TaskGroup (``evaluate`` alone without approval).

    Call inside a DAG context. Extra keyword arguments go to :class:`ModelPromotionOperator`.
    """
    from airflow.sdk import TaskGroup

    literal = _literal_gates(gates)
    if literal is not None and literal.online is not None:
        raise GateConfigError(
            "gates declare an online gate: build the flow with shadow_promotion, which judges it on live traffic"
        )
    with TaskGroup(group_id=group_id) as group:
        evaluate = ModelPromotionOperator(
            task_id="evaluate",
            candidate=candidate,
            registered_model_name=registered_model_name,
            eval_data_uri=eval_data_uri,
            target_column=target_column,
            gates=gates,
            commit=not require_approval,
            mlflow_conn_id=mlflow_conn_id,
            **promotion_kwargs,
        )
        if require_approval:
            approve_and_commit(
                evaluate,
                response_timeout=response_timeout,
                drift_summary=promotion_kwargs.get("drift_summary"),
                lease=promotion_kwargs.get("lease"),
                mlflow_conn_id=mlflow_conn_id,
            )
    return group


def approve_and_commit(
    decided: BaseOperator,
    *,
    response_timeout: timedelta,
    drift_summary: Any = None,
    lease: LeaseSettings | None = None,
    on_reject: OnReject = "fail",
    mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
) -> ModelPromotionCommitOperator:
    """Add ``decided >> approve >> commit`` for the ``awaiting_approval`` decision ``decided`` returns;
    return the commit task."""
    approve = ModelApprovalOperator(
        task_id="approve",
        evaluation_task_id=decided.task_id,
        drift_summary=drift_summary,
        response_timeout=response_timeout,
        mlflow_conn_id=mlflow_conn_id,
    )
    commit = ModelPromotionCommitOperator(
        task_id="commit",
        evaluation_task_id=decided.task_id,
        approval_task_id=approve.task_id,
        on_reject=on_reject,
        lease=lease,
        mlflow_conn_id=mlflow_conn_id,
    )
    decided >> approve >> commit
    return commit
