"""What the registry operators share: the operator base, run facts, refusals, and the decision-log steps."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from airflow_mlops_provider.exceptions import (
    PromotionConflict,
    PromotionRejected,
)
from airflow_mlops_provider.hooks import MlflowHookMixin
from airflow_mlops_provider.links.mlflow import (
    XCOM_MODEL_VERSION_URL,
    XCOM_RUN_URL,
    MlflowModelVersionLink,
    MlflowRunLink,
    ModelCardLink,
    model_version_url,
    run_url,
)
from airflow_mlops_provider.openlineage import OpenLineageMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops_provider.gates import PromotionGates
    from airflow_mlops_provider.promotion import LeaseSettings
from airflow_mlops_provider.operators.registry.approval import _describe

OnReject = Literal["fail", "skip", "return"]
ON_REJECT: tuple[str, ...] = ("fail", "skip", "return")


def _run_info(context: Context) -> dict[str, Any]:
    ti = context["ti"]
    dag_run = context.get("dag_run")
    return {
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "dag_run_id": getattr(dag_run, "run_id", None) or getattr(ti, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "try_number": getattr(ti, "try_number", None),
    }


def _owner(context: Context) -> str:
    info = _run_info(context)
    return (
        f"{info['dag_id']}/{info['dag_run_id']}/{info['task_id']}#{info['try_number']}@{socket.gethostname()}"
    )


def _check_on_reject(value: str) -> OnReject:
    if value not in ON_REJECT:
        raise ValueError(f"on_reject={value!r}; allowed: {list(ON_REJECT)}")
    return value  # type: ignore[return-value]


def _failure_message(name: str, version: str, failed: Sequence[Mapping[str, Any]]) -> str:
    return f"{name} v{version} not promoted: " + "; ".join(_describe(g) for g in failed)


def _refuse(context: Context, on_reject: OnReject, message: str, decision: dict[str, Any]) -> dict[str, Any]:
    """End a task whose candidate was refused, as ``on_reject`` asks; the decision is in XCom either way.

    ``fail`` raises :class:`PromotionRejected`; ``skip`` pushes the decision and ends the task
    ``skipped`` with the reason (visible in the grid, and downstream tasks run only if their trigger
    rule allows); ``return`` returns it from a successful task.
    """
    if on_reject == "fail":
        raise PromotionRejected(message, decision)
    if on_reject == "skip":
        from airflow.sdk.exceptions import AirflowSkipException

        context["ti"].xcom_push(key="return_value", value=decision)
        raise AirflowSkipException(message)
    return decision


def _literal_gates(gates: Any) -> PromotionGates | None:
    """Build gates given literally in the DAG file; ``None`` for templated ones or a file to read."""
    from airflow_mlops_provider.gates import PromotionGates

    if isinstance(gates, PromotionGates):
        return gates
    if isinstance(gates, Mapping):
        import json

        text = json.dumps(gates, default=str)
        return None if "{{" in text or "{%" in text else PromotionGates.from_dict(gates)
    if isinstance(gates, str) and "\n" in gates and "{{" not in gates and "{%" not in gates:
        return PromotionGates.from_yaml(gates)
    return None


class _RegistryOperator(OpenLineageMixin, MlflowHookMixin, BaseOperator):
    """Shared plumbing: the hook, the lease settings, links and the commit under the lease."""

    operator_extra_links = (MlflowRunLink(), MlflowModelVersionLink(), ModelCardLink())
    lease: LeaseSettings | None

    def _lease_settings(self) -> LeaseSettings:
        from airflow_mlops_provider.promotion import LeaseSettings

        return self.lease or LeaseSettings()

    def _push_links(self, context: Context, name: str, version: str, run: Any | None) -> None:
        uri = self.mlflow_hook.tracking_uri
        ti = context["ti"]
        if url := model_version_url(uri, name, version):
            ti.xcom_push(key=XCOM_MODEL_VERSION_URL, value=url)
        if run is not None and (url := run_url(uri, run.info.experiment_id, run.info.run_id)):
            ti.xcom_push(key=XCOM_RUN_URL, value=url)

    def _commit(
        self, context: Context, client: Any, decision: dict[str, Any], approval: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Move ``champion`` to the decision's version under the lease, then record the outcome."""
        from airflow_mlops_provider import promotion as p

        name, version = decision["registered_model_name"], str(decision["version"])
        expected = decision.get("evaluated_against_version")
        uri = self.mlflow_hook.tracking_uri
        online = (decision.get("gate_config") or {}).get("online")
        if online and (decision.get("online") or {}).get("outcome") != "promote":
            # Gates that declare an online gate are not passed until it has judged the challenger.
            raise PromotionRejected(
                f"{name} v{version} not promoted: its gates declare an online gate ({online.get('metric')}), "
                f"which has not judged it; evaluate with commit=False and judge it with OnlineGateOperator "
                f"(shadow_promotion), then commit that task's decision",
                decision,
            )
        try:
            with (
                p.translate_unreachable(uri, f"promoting {name} v{version}"),
                p.RegistryLease(client, name, _owner(context), self._lease_settings(), self.log) as lease,
            ):
                repaired = p.repair_interrupted(client, name, lease, self.log)
                moved = p.move_champion(
                    client,
                    name,
                    lease,
                    expected_champion=expected,
                    new_champion=version,
                    new_previous=expected,
                )
        except PromotionConflict as err:
            conflict = {
                **decision,
                "decision": "conflict",
                "decided_at": p.utcnow_iso(),
                "reasons": [str(err)],
            }
            self._record(client, name, version, conflict)
            raise
        now = p.utcnow_iso()
        decision = {
            **decision,
            **moved,
            "decision": "promoted",
            "decided_at": now,
            "approval": approval,
            "reasons": [r for r in [repaired] if r],
        }
        with p.translate_unreachable(uri, f"recording the promotion of {name} v{version}"):
            p.record_decision(
                client,
                name,
                version,
                decision,
                {
                    p.TAG_PROMOTED_BY: _owner(context),
                    p.TAG_PREVIOUS_CHAMPION: expected or "none",
                    p.TAG_STATUS: "champion",
                },
            )
            if expected and expected != version:
                p.set_version_tags(
                    client,
                    name,
                    expected,
                    {
                        p.TAG_SUPERSEDED_BY: version,
                        p.TAG_SUPERSEDED_AT: now,
                        p.TAG_STATUS: "previous_champion",
                    },
                )
        self.log.info("Promoted %s v%s to champion (previous champion: %s)", name, version, expected)
        self._log_decision(context, decision)
        return decision

    def _log_decision(self, context: Context, decision: Mapping[str, Any]) -> None:
        record_promotion_step(self, context, decision)

    def _record(self, client: Any, name: str, version: str, decision: Mapping[str, Any]) -> None:
        record_decision_quietly(self.log, client, name, version, decision)


def record_promotion_step(op: MlflowHookMixin, context: Context, decision: Mapping[str, Any]) -> None:
    """Record ``decision`` as the ``promotion`` step of this DAG run's decision log, and link the
    task to the version's model card."""
    from airflow_mlops_provider.decisions import promotion_step

    _push_model_card_link(op, context, decision)

    gate_metrics = [
        g["gate"].split(":", 1)[1]
        for g in decision.get("gates") or []
        if g["gate"].startswith(("threshold:", "no_regression:"))
    ]
    op.record_decision_step(
        context,
        decision.get("registered_model_name"),
        "promotion",
        promotion_step(decision, list(dict.fromkeys(gate_metrics))),
    )


def _push_model_card_link(op: MlflowHookMixin, context: Context, decision: Mapping[str, Any]) -> None:
    """Push the MLflow UI URL of the version's model card for :class:`ModelCardLink` (never fails)."""
    from airflow_mlops_provider.links.mlflow import XCOM_MODEL_CARD_URL, model_card_url
    from airflow_mlops_provider.model_card import TAG_MODEL_CARD_URI

    name, version = decision.get("registered_model_name"), decision.get("version")
    if not name or not version:
        return
    try:
        client = op.mlflow_hook.get_client()
        mv = client.get_model_version(name, str(version))
        card = (mv.tags or {}).get(TAG_MODEL_CARD_URI)
        if card and mv.run_id:
            run = client.get_run(mv.run_id)
            url = model_card_url(op.mlflow_hook.tracking_uri, run.info.experiment_id, mv.run_id, str(version))
            if url:
                context["ti"].xcom_push(key=XCOM_MODEL_CARD_URL, value=url)
    except Exception as err:
        op.log.warning("No model card link for %s v%s: %s", name, version, err)  # type: ignore[attr-defined]


def record_decision_quietly(
    log: Any,
    client: Any,
    name: str,
    version: str,
    decision: Mapping[str, Any],
    extra_tags: Mapping[str, Any] | None = None,
) -> None:
    """Write a refusal to the version; a failed write is logged, so the task ends for the real reason."""
    from airflow_mlops_provider import promotion as p

    try:
        p.record_decision(client, name, version, decision, extra_tags)
    except Exception as err:
        log.error("Could not record the decision on %s v%s: %s", name, version, err)
