"""ModelPromotionCommitOperator: move the aliases for an approved decision, under the lease."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import (
    PromotionRejected,
)
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops_provider.promotion import LeaseSettings
from airflow_mlops_provider.operators.registry.approval import approval_outcome
from airflow_mlops_provider.operators.registry.base import (
    OnReject,
    _check_on_reject,
    _refuse,
    _RegistryOperator,
)


class ModelPromotionCommitOperator(_RegistryOperator):
    """Promote an evaluated, approved candidate: ``champion`` to it, ``previous_champion`` to the old one.

    Reads the decision of a ``ModelPromotionOperator(commit=False)`` task and, when given, the answer
    of a :class:`ModelApprovalOperator` task. Only ``approved`` by a named user counts; anything else
    refuses. The commit checks that the champion did not move since evaluation.

    :param evaluation_task_id: The evaluation task.
    :param approval_task_id: The approval task, or ``None`` to commit on the gates alone.
    :param on_reject: ``fail``, ``skip`` or ``return`` when not approved (see
        :class:`ModelPromotionOperator`).
    :param lease: Timing of the per-model promotion lease.
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = ("evaluation_task_id", "approval_task_id")

    def __init__(
        self,
        *,
        evaluation_task_id: str,
        approval_task_id: str | None = None,
        on_reject: OnReject = "fail",
        lease: LeaseSettings | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.evaluation_task_id = evaluation_task_id
        self.approval_task_id = approval_task_id
        self.on_reject = on_reject
        self.lease = lease
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import promotion as p

        on_reject = _check_on_reject(self.on_reject)
        ti = context["ti"]
        decision = ti.xcom_pull(task_ids=self.evaluation_task_id)
        if not isinstance(decision, Mapping) or decision.get("decision") != "awaiting_approval":
            state = decision.get("decision") if isinstance(decision, Mapping) else decision
            raise PromotionRejected(
                f"task {self.evaluation_task_id!r} left nothing to commit (decision {state!r})"
            )
        decision = dict(decision)
        name, version = decision["registered_model_name"], str(decision["version"])
        client = self.mlflow_hook.get_client()
        self._push_links(context, name, version, None)
        approval = None
        if self.approval_task_id:
            answer = ti.xcom_pull(task_ids=self.approval_task_id) or {}
            approval = answer.get("outcome") or approval_outcome(answer)
            if approval["decision"] != "approved" or not approval.get("by"):
                rejected = {
                    **decision,
                    "decision": "rejected",
                    "decided_at": p.utcnow_iso(),
                    "approval": approval,
                    "reasons": [f"approval: {approval['decision']}"],
                }
                self._record(client, name, version, rejected)
                message = f"{name} v{version} not promoted: approval {approval['decision']}"
                self._log_decision(context, rejected)
                return _refuse(context, on_reject, message, rejected)
        return self._commit(context, client, decision, approval)
