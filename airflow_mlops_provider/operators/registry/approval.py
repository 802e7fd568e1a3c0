"""ModelApprovalOperator: a human approves or rejects a gated candidate, shown challenger vs champion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_mlops_provider.exceptions import (
    PromotionRejected,
)
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.links.mlflow import (
    XCOM_MODEL_VERSION_URL,
    MlflowModelVersionLink,
    model_version_url,
)

if TYPE_CHECKING:
    from airflow.sdk import Context


def _describe(gate: Mapping[str, Any]) -> str:
    from airflow_mlops_provider.gates import GateResult

    return GateResult(**gate).describe()


def render_approval_body(decision: Mapping[str, Any], drift_summary: Any = None) -> str:
    """Render the Markdown an approver sees: challenger vs champion metrics, each gate, the drift summary."""
    import json

    name, version = decision.get("registered_model_name"), decision.get("version")
    champion = decision.get("evaluated_against_version")
    metrics = decision.get("metrics") or {}
    cand = (metrics.get("candidate") or {}).get("overall", {})
    champ = ((metrics.get("champion") or {}) or {}).get("overall", {})
    lines = [
        f"### {name}: challenger v{version} vs champion {('v' + str(champion)) if champion else '(none)'}",
        "",
        f"Evaluation data `{decision.get('eval_data_uri')}` ({decision.get('eval_data_fingerprint')}), "
        f"{metrics.get('rows', '?')} rows; candidate run `{decision.get('run_id')}`.",
        "",
        "| metric | challenger | champion | change |",
        "|---|---|---|---|",
    ]

    def fmt(x: Any) -> str:
        return f"{x:.4f}" if isinstance(x, (int, float)) else "n/a"

    for metric in sorted(set(cand) | set(champ)):
        a, b = cand.get(metric), champ.get(metric)
        change = f"{a - b:+.4f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) else "n/a"
        lines.append(f"| {metric} | {fmt(a)} | {fmt(b)} | {change} |")
    lines += ["", "| gate | status | observed | required | detail |", "|---|---|---|---|---|"]
    for g in decision.get("gates", []):
        mark = {"passed": "PASS", "failed": "FAIL", "skipped": "skip"}.get(g["status"], g["status"])
        lines.append(f"| {g['gate']} | {mark} | {g['observed']} | {g['required']} | {g['detail']} |")
    drift = drift_summary if drift_summary is not None else decision.get("drift_summary")
    lines += ["", "#### Drift summary", ""]
    if drift in (None, "", {}):
        lines.append("No drift summary was provided.")
    elif isinstance(drift, str):
        lines.append(drift)
    else:
        lines += ["```json", json.dumps(drift, indent=2, sort_keys=True, default=str), "```"]
    lines += ["", "Approving moves `champion` to the challenger; no answer before the deadline rejects."]
    return "\n".join(lines)


def approval_outcome(event: Mapping[str, Any]) -> dict[str, Any]:
    """Read an HITL resume event: ``approved``, ``rejected`` or ``timed_out``, by whom and when."""
    chosen = list(event.get("chosen_options") or [])
    user = event.get("responded_by_user")
    at: Any = event.get("responded_at")
    if "error" in event or event.get("timedout") or (user is None and chosen):
        outcome = "timed_out"
    elif chosen == [ApprovalOperator.APPROVE]:
        outcome = "approved"
    else:
        outcome = "rejected"
    by = None
    if isinstance(user, Mapping):
        by = user.get("name") or user.get("id")
    elif user is not None:
        by = str(user)
    comment = (
        (event.get("params_input") or {}).get("comment")
        if isinstance(event.get("params_input"), Mapping)
        else None
    )
    return {
        "decision": outcome,
        "by": by,
        "at": at.isoformat() if hasattr(at, "isoformat") else at,
        "comment": comment or None,
    }


class ModelApprovalOperator(MlflowHookMixin, ApprovalOperator):
    """Ask a human to approve a gated candidate; no answer within ``response_timeout`` rejects.

    Built on Airflow's ``ApprovalOperator``: the task waits for a response in the Airflow UI. Its body
    shows challenger vs champion metrics, each gate's result and the drift summary, read from the
    evaluation task's decision. The answer (or the timeout) is recorded on the model version; a
    rejection skips the downstream commit, as ``ApprovalOperator`` does.

    :param evaluation_task_id: The ``ModelPromotionOperator(commit=False)`` task.
    :param drift_summary: Drift summary to show, overriding the one in the decision (templated).
    :param mlflow_conn_id: The ``mlflow`` connection, to record the answer.
    :param subject: Headline; defaults to "Promote <model> v<version> to champion?".
    :param response_timeout: How long to wait for an answer before rejecting.
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "drift_summary")
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(
        self,
        *,
        evaluation_task_id: str,
        drift_summary: Any = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        subject: str = "Promote the challenger to champion?",
        response_timeout: timedelta = timedelta(hours=24),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            subject=subject,
            defaults=ApprovalOperator.REJECT,
            response_timeout=response_timeout,
            **kwargs,
        )
        self.evaluation_task_id = evaluation_task_id
        self.drift_summary = drift_summary
        self.mlflow_conn_id = mlflow_conn_id

    def _decision(self, context: Context) -> dict[str, Any]:
        decision = context["ti"].xcom_pull(task_ids=self.evaluation_task_id)
        if not isinstance(decision, Mapping) or "version" not in decision:
            raise PromotionRejected(
                f"no decision from task {self.evaluation_task_id!r} to approve: {decision!r}"
            )
        return dict(decision)

    def prepare(self, context: Context) -> dict[str, Any]:
        """Fill subject and body from the evaluation's decision; skip when there is nothing to approve."""
        from airflow.sdk.exceptions import AirflowSkipException

        decision = self._decision(context)
        if decision.get("decision") != "awaiting_approval":
            raise AirflowSkipException(
                f"nothing to approve: the evaluation decided {decision.get('decision')!r}"
            )
        name, version = decision["registered_model_name"], decision["version"]
        self.subject = f"Promote {name} v{version} to champion?"
        self.body = render_approval_body(decision, self.drift_summary)
        if url := model_version_url(self.mlflow_hook.tracking_uri, name, str(version)):
            context["ti"].xcom_push(key=XCOM_MODEL_VERSION_URL, value=url)
        return decision

    def execute(self, context: Context) -> Any:
        self.prepare(context)
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow_mlops_provider import promotion as p

        decision = self._decision(context)
        outcome = approval_outcome(event)
        name, version = decision["registered_model_name"], str(decision["version"])
        tags: dict[str, Any] = {
            p.TAG_APPROVAL: outcome["decision"],
            p.TAG_APPROVED_BY: outcome["by"] or "nobody (timeout)",
            p.TAG_APPROVED_AT: outcome["at"] or p.utcnow_iso(),
        }
        if outcome["decision"] != "approved":
            tags[p.TAG_DECISION] = "rejected"
            tags[p.TAG_REASONS] = f"approval: {outcome['decision']}" + (
                f" by {outcome['by']}" if outcome["by"] else ""
            )
        client = self.mlflow_hook.get_client()
        with p.translate_unreachable(
            self.mlflow_hook.tracking_uri, f"recording the approval of {name} v{version}"
        ):
            p.set_version_tags(client, name, version, tags)
        self.log.info("Approval of %s v%s: %s by %s", name, version, outcome["decision"], outcome["by"])
        # An "error" event (a timeout without defaults) makes the base class raise HITLTimeoutError.
        result = super().execute_complete(context=context, event=event)
        return {**dict(result), **{"outcome": outcome}}
