"""Gated promotion in the MLflow model registry: champion/challenger, approval, audit trail, rollback.

Two shapes, one engine (:mod:`airflow_mlops_provider.promotion`):

- without a human: ``ModelPromotionOperator`` registers, evaluates, gates and commits in one task;
- with a human: ``ModelPromotionOperator(commit=False)`` evaluates and gates, ``ModelApprovalOperator``
  (Airflow's ``ApprovalOperator``) shows challenger vs champion, each gate and the drift summary, and
  ``ModelPromotionCommitOperator`` moves the aliases once approved. :func:`gated_promotion` wires the
  three into a TaskGroup. A timeout rejects.

Both commit paths take the per-model lease, check that the champion is still the one evaluated
against, and record the decision on the model version. See ``docs/promotion.md``. One module per
operator (:mod:`.promotion`, :mod:`.approval`, :mod:`.commit`, :mod:`.rollback`), the flows in
:mod:`.flows`, what they share in :mod:`.base`.
"""

from __future__ import annotations

from airflow_mlops_provider.operators.registry.approval import (
    ModelApprovalOperator,
    approval_outcome,
    render_approval_body,
)
from airflow_mlops_provider.operators.registry.base import (
    ON_REJECT,
    OnReject,
    record_decision_quietly,
    record_promotion_step,
)
from airflow_mlops_provider.operators.registry.commit import (
    ModelPromotionCommitOperator,
)
from airflow_mlops_provider.operators.registry.flows import (
    approve_and_commit,
    gated_promotion,
)
from airflow_mlops_provider.operators.registry.promotion import (
    ModelPromotionOperator,
)
from airflow_mlops_provider.operators.registry.rollback import (
    ModelRollbackOperator,
)

__all__ = [
    "ON_REJECT",
    "ModelApprovalOperator",
    "ModelPromotionCommitOperator",
    "ModelPromotionOperator",
    "ModelRollbackOperator",
    "OnReject",
    "approval_outcome",
    "approve_and_commit",
    "gated_promotion",
    "record_decision_quietly",
    "record_promotion_step",
    "render_approval_body",
]
