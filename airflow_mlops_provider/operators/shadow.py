"""The challenger in shadow: the online gate that judges it on live traffic, and its withdrawal.

The flow (:func:`shadow_promotion`, ``dags/shadow_promotion.py``): the offline gates
(``ModelPromotionOperator(commit=False)``) put the candidate behind the ``challenger`` alias; a shadow
Bento (``BentoPackageOperator(shadow_alias="challenger")``) serves the champion's answers and captures
both models' predictions; :class:`OnlineGateOperator` waits until enough of those requests are
labelled and compares the two on the same requests; approval when asked; commit. Anything but a
commit ends with :class:`ShadowWithdrawOperator`: the challenger leaves the shadow, the champion is
untouched.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.links.mlflow import MlflowModelVersionLink, ModelCardLink
from airflow_mlops_provider.operators.registry import (
    ModelPromotionCommitOperator,
    ModelPromotionOperator,
    OnReject,
    approve_and_commit,
    record_decision_quietly,
    record_promotion_step,
)
from airflow_mlops_provider.operators.registry.base import (
    _check_on_reject,
    _owner,
    _refuse,
    _RegistryOperator,
    _run_info,
)

if TYPE_CHECKING:
    from airflow.sdk import Context, TaskGroup
    from mlflow import MlflowClient

    from airflow_mlops_provider.gates import PromotionGates
    from airflow_mlops_provider.promotion import LeaseSettings

#: Model-version tag: the online comparison's evidence (JSON).
TAG_ONLINE_EVIDENCE = "mlops.promotion.online"


class OnlineGateOperator(MlflowHookMixin, BaseSensorOperator):
    """Wait for labelled shadow traffic, then judge the challenger against the champion on it.

    Reads both versions' captures since the shadow started (the challenger's ``mlops.shadow.since``
    tag, set when its shadow Bento was built), joins the labels, keeps the requests both scored, and
    applies the ``online`` gate of ``gates`` (:class:`~airflow_mlops_provider.gates.OnlineGate`): a
    paired test of the challenger against the champion on the same requests
    (:func:`~airflow_mlops_provider.monitoring.online.compare`). Until ``min_pairs`` pairs exist it
    keeps waiting (in ``reschedule`` mode, so no worker slot is held), up to ``max_wait_hours`` from
    the shadow's start; then the challenger is refused as ``insufficient``: missing evidence promotes
    nothing.

    A passing challenger returns the evaluation's decision, still ``awaiting_approval``, with the
    online gate added to its gates: point :class:`ModelApprovalOperator` and
    :class:`ModelPromotionCommitOperator` at this task. A refused one is recorded ``rejected`` and ends
    the task as ``on_reject`` says. Either way the evidence (counts, both models' metric, the effect,
    its interval, the p-value) is written on the challenger's version (``mlops.promotion.online`` and
    the decision tags) and in the DAG run's decision log. The champion is never touched here.

    :param registered_model_name: The registered model (templated).
    :param labels_uri: Where the outcomes arrive (as for ``ModelPerformanceOperator``). (templated)
    :param gates: The promotion gates, with an ``online`` gate (templated).
    :param evaluation_task_id: The ``ModelPromotionOperator(commit=False)`` task whose decision names
        the challenger and the champion it was evaluated against; without it, both come from the
        ``challenger`` and ``champion`` aliases.
    :param capture_uri: The capture store; default the challenger's ``mlops.bento.capture_uri``.
        (templated)
    :param since: Start of the shadow's traffic; default the challenger's ``mlops.shadow.since``.
        (templated)
    :param model_kind: ``classification`` or ``regression``; default the gates' metric's kind.
    :param label_column: The labels' outcome column.
    :param label_timestamp_column: When each outcome was known.
    :param on_reject: ``fail``, ``skip`` or ``return`` (see :class:`ModelPromotionOperator`).
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "labels_uri",
        "gates",
        "capture_uri",
        "since",
    )
    template_fields_renderers = {"gates": "yaml"}
    ui_color = "#fdf3e1"
    operator_extra_links = (MlflowModelVersionLink(), ModelCardLink())

    def __init__(
        self,
        *,
        registered_model_name: str,
        labels_uri: str,
        gates: PromotionGates | dict[str, Any] | str | Path,
        evaluation_task_id: str | None = None,
        capture_uri: str | None = None,
        since: str | datetime | None = None,
        model_kind: str | None = None,
        label_column: str = "label",
        label_timestamp_column: str = "labeled_at",
        on_reject: OnReject = "fail",
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 3600)
        # The gate's max_wait_hours decides; execute() sets the sensor's own timeout a day beyond it.
        kwargs.setdefault("timeout", timedelta(days=1).total_seconds())
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.labels_uri = labels_uri
        self.gates = gates
        self.evaluation_task_id = evaluation_task_id
        self.capture_uri = capture_uri
        self.since = since
        self.model_kind = model_kind
        self.label_column = label_column
        self.label_timestamp_column = label_timestamp_column
        self.on_reject = on_reject
        self.mlflow_conn_id = mlflow_conn_id
        _check_on_reject(on_reject)

    def _decision(self, context: Context, client: MlflowClient) -> dict[str, Any]:
        """The evaluation's decision, or one made from the aliases when there is no evaluation task."""
        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.exceptions import PromotionRejected

        name = self.registered_model_name
        if self.evaluation_task_id:
            decision = context["ti"].xcom_pull(task_ids=self.evaluation_task_id)
            if not isinstance(decision, Mapping) or decision.get("decision") != "awaiting_approval":
                state = decision.get("decision") if isinstance(decision, Mapping) else decision
                raise PromotionRejected(
                    f"task {self.evaluation_task_id!r} left no challenger awaiting a decision (decision {state!r})"
                )
            return dict(decision)
        aliases = p.read_state(client, name).aliases
        challenger = aliases.get(p.CHALLENGER)
        if challenger is None:
            raise PromotionRejected(f"{name!r} has no {p.CHALLENGER!r} version to judge")
        return {
            "registered_model_name": name,
            "version": challenger,
            "evaluated_against_version": aliases.get(p.CHAMPION),
            "champion_version": aliases.get(p.CHAMPION),
            "previous_champion_version": aliases.get(p.PREVIOUS_CHAMPION),
            "gates": [],
            "decision": "awaiting_approval",
            **_run_info(context),
        }

    def execute(self, context: Context) -> Any:
        from airflow_mlops_provider.gates import PromotionGates

        online = PromotionGates.coerce(self.gates).online
        if online is not None:
            # The gate decides (insufficient) at max_wait_hours; the sensor's own timeout only a day later.
            self.timeout = max(float(self.timeout), online.max_wait_hours * 3600 + 86400)
        return super().execute(context)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        from airflow_mlops_provider import lineage
        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.exceptions import GateConfigError, MonitoringError, PromotionConflict
        from airflow_mlops_provider.gates import PromotionGates, check_model_kind
        from airflow_mlops_provider.monitoring.online import compare, read_pairs
        from airflow_mlops_provider.monitoring.outcomes import empty_labels, read_labels
        from airflow_mlops_provider.operators.monitoring.window import aware_time, capture_uri_of, uri_exists

        on_reject = _check_on_reject(self.on_reject)
        gates = PromotionGates.coerce(self.gates)
        online = gates.online
        if online is None:
            raise GateConfigError(
                "gates: no 'online' gate to evaluate; add online: {metric: ..., min_pairs: ...}"
            )
        kind = check_model_kind(self.model_kind or gates.kind)
        client = self.mlflow_hook.get_client()
        uri = self.mlflow_hook.tracking_uri
        with p.translate_unreachable(uri, f"reading the shadow of {self.registered_model_name}"):
            decision = self._decision(context, client)
            name, challenger = decision["registered_model_name"], str(decision["version"])
            champion = decision.get("evaluated_against_version")
            if not champion:
                raise PromotionConflict(
                    f"{name!r} has no champion: there is nothing to compare v{challenger} with"
                )
            current = p.alias_version(client, name, p.CHAMPION)
            if current != str(champion):
                raise PromotionConflict(
                    f"the champion of {name!r} moved from v{champion} to v{current} while v{challenger} was "
                    f"in shadow: its online evidence is against a model no longer served"
                )
            mv = client.get_model_version(name, challenger)
        since = aware_time(self.since, "since") or aware_time(
            mv.tags.get(lineage.TAG_SHADOW_SINCE), "mlops.shadow.since"
        )
        if since is None:
            raise MonitoringError(
                f"{name} v{challenger} is not in shadow (no {lineage.TAG_SHADOW_SINCE} tag): package it with "
                f"BentoPackageOperator(shadow_alias='challenger') and serve that Bento, or pass since"
            )
        capture_uri = capture_uri_of(mv, self.capture_uri)
        now = datetime.now(timezone.utc)
        if uri_exists(self.labels_uri):
            labels = read_labels(
                self.labels_uri, label_column=self.label_column, timestamp_column=self.label_timestamp_column
            )
        else:
            labels = empty_labels()
        y, champ_scores, chall_scores, counts = read_pairs(
            capture_uri, name, str(champion), challenger, labels, kind, start=since, end=now
        )
        evidence = {**compare(y, champ_scores, chall_scores, online, kind), "counts": counts}
        waited = now - since
        max_wait = timedelta(hours=online.max_wait_hours)
        if evidence["outcome"] == "insufficient" and waited < max_wait:
            self.log.info(
                "%s: %s; waited %s of %s (counts %s)", name, evidence["reason"], waited, max_wait, counts
            )
            return False
        return self._decide(context, client, decision, evidence, since, now, on_reject)

    def _decide(
        self,
        context: Context,
        client: MlflowClient,
        decision: dict[str, Any],
        evidence: dict[str, Any],
        since: datetime,
        now: datetime,
        on_reject: OnReject,
    ) -> PokeReturnValue:
        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.gates import GateResult

        name, version = decision["registered_model_name"], str(decision["version"])
        outcome = evidence["outcome"]
        evidence = {**evidence, "window": {"start": since.isoformat(), "end": now.isoformat()}}
        effect = evidence.get("effect")
        result = GateResult(
            f"online:{evidence['metric']}",
            "passed" if outcome == "promote" else "failed",
            round(effect, 6) if isinstance(effect, float) else f"{evidence['pairs']} pairs",
            f"> {evidence['min_effect']:g} at p < {evidence['alpha']:g}, >= {evidence['min_pairs']} pairs",
            evidence["reason"],
        )
        self.log.info("%s v%s online gate: %s (%s)", name, version, outcome, evidence["reason"])
        decision = {
            **decision,
            **_run_info(context),
            "gates": [*(decision.get("gates") or []), result.to_dict()],
            "online": evidence,
            "decided_at": p.utcnow_iso(),
        }
        with p.translate_unreachable(
            self.mlflow_hook.tracking_uri, f"recording the online gate of {name} v{version}"
        ):
            if outcome == "promote":
                decision["decision"] = "awaiting_approval"
                p.record_decision(client, name, version, decision, {TAG_ONLINE_EVIDENCE: evidence})
            else:
                decision.update(decision="rejected", reasons=[f"online gate {outcome}: {evidence['reason']}"])
                record_decision_quietly(
                    self.log, client, name, version, decision, {TAG_ONLINE_EVIDENCE: evidence}
                )
        record_promotion_step(self, context, decision)
        if outcome != "promote":
            message = f"{name} v{version} not promoted: online gate {outcome}: {evidence['reason']}"
            return PokeReturnValue(True, _refuse(context, on_reject, message, decision))
        return PokeReturnValue(True, json.loads(json.dumps(decision, default=str)))


class ShadowWithdrawOperator(_RegistryOperator):
    """End a challenger's shadow: unless it is now the champion, it is withdrawn and the champion stays.

    Runs last in the shadow flow, whatever happened before it, failures included
    (``trigger_rule="all_done"`` in :func:`shadow_promotion`): a challenger that was promoted is
    tagged ``promoted``; any other is tagged ``withdrawn`` and loses the ``challenger`` alias (if the
    alias still points at it; read and removed under the promotion lease), so the next packaging of
    the champion serves it alone. Only the version named by ``version_task_id``'s decision is
    touched; without one, nothing is. Deploying a champion-only Bento (or setting
    ``MLOPS_SHADOW_ENABLED=false`` where the shadow Bento runs) ends the scoring itself.

    :param registered_model_name: The registered model (templated).
    :param version_task_id: A task whose XCom decision names the challenger (``version``): the
        evaluation.
    :param lease: Timing of the per-model promotion lease.
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = ("registered_model_name",)

    def __init__(
        self,
        *,
        registered_model_name: str,
        version_task_id: str,
        lease: LeaseSettings | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.version_task_id = version_task_id
        self.lease = lease
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import lineage
        from airflow_mlops_provider import promotion as p

        name = self.registered_model_name
        decision = context["ti"].xcom_pull(task_ids=self.version_task_id)
        # Only the version this run put in shadow: never another run's challenger.
        version = (
            str(decision["version"]) if isinstance(decision, Mapping) and decision.get("version") else None
        )
        if version is None:
            self.log.info("Task %r named no challenger: nothing to withdraw", self.version_task_id)
            return {"registered_model_name": name, "version": None, "outcome": "none"}
        client = self.mlflow_hook.get_client()
        uri = self.mlflow_hook.tracking_uri
        with (
            p.translate_unreachable(uri, f"ending the shadow of {name} v{version}"),
            # The alias is read and removed under the promotion lease: a concurrent promotion that
            # points `challenger` at its own candidate in between keeps it.
            p.RegistryLease(client, name, _owner(context), self._lease_settings(), self.log) as lease,
        ):
            aliases = p.read_state(client, name).aliases
            promoted = aliases.get(p.CHAMPION) == version
            if not promoted and aliases.get(p.CHALLENGER) == version:
                lease.check()
                client.delete_registered_model_alias(name, p.CHALLENGER)
            outcome = "promoted" if promoted else "withdrawn"
            p.set_version_tags(
                client,
                name,
                version,
                {lineage.TAG_SHADOW_ENDED_AT: p.utcnow_iso(), lineage.TAG_SHADOW_OUTCOME: outcome},
            )
        self.log.info(
            "%s v%s left the shadow: %s (champion v%s)", name, version, outcome, aliases.get(p.CHAMPION)
        )
        return {
            "registered_model_name": name,
            "version": version,
            "outcome": outcome,
            "champion_version": aliases.get(p.CHAMPION),
        }


def shadow_promotion(
    *,
    group_id: str,
    candidate: str | dict[str, Any],
    registered_model_name: str,
    eval_data_uri: str,
    target_column: str,
    gates: PromotionGates | dict[str, Any] | str | Path,
    labels_uri: str,
    require_approval: bool = True,
    response_timeout: timedelta = timedelta(hours=24),
    poke_interval: float = 3600,
    shadow: Mapping[str, Any] | None = None,
    package_kwargs: Mapping[str, Any] | None = None,
    mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
    **promotion_kwargs: Any,
) -> TaskGroup:
    """Build ``evaluate >> package_shadow >> online_gate >> [approve >>] commit >> withdraw >> package``.

    ``evaluate`` applies the offline gates and sets the ``challenger`` alias; ``package_shadow``
    packages the champion it was evaluated against with it in shadow (``shadow`` settings, e.g.
    ``{"canary_share": 0.05}``); ``online_gate`` waits for labelled shadow traffic and judges it; a
    refusal anywhere skips what follows. ``withdraw`` runs in every case, failures included, and ends
    the shadow; ``package`` packages the champion (the new one, or the old one again) alone, unless
    something failed, in which case it is ``upstream_failed`` and the DAG run fails. Call inside a DAG context. Extra keyword arguments go to
    :class:`ModelPromotionOperator`; ``package_kwargs`` to both ``BentoPackageOperator`` tasks.
    """
    from airflow.sdk import TaskGroup

    from airflow_mlops_provider.operators.bentoml import BentoPackageOperator

    packaging = dict(package_kwargs or {})
    with TaskGroup(group_id=group_id) as group:
        evaluate = ModelPromotionOperator(
            task_id="evaluate",
            candidate=candidate,
            registered_model_name=registered_model_name,
            eval_data_uri=eval_data_uri,
            target_column=target_column,
            gates=gates,
            commit=False,
            on_reject="skip",
            mlflow_conn_id=mlflow_conn_id,
            **promotion_kwargs,
        )
        # The versions this run evaluated, not whatever the aliases say by the time it packages.
        package_shadow = BentoPackageOperator(
            task_id="package_shadow",
            model_name=registered_model_name,
            version=f"{{{{ ti.xcom_pull(task_ids='{evaluate.task_id}')['evaluated_against_version'] }}}}",
            shadow_version=f"{{{{ ti.xcom_pull(task_ids='{evaluate.task_id}')['version'] }}}}",
            shadow=dict(shadow or {}),
            mlflow_conn_id=mlflow_conn_id,
            **packaging,
        )
        online_gate = OnlineGateOperator(
            task_id="online_gate",
            registered_model_name=registered_model_name,
            labels_uri=labels_uri,
            gates=gates,
            evaluation_task_id=evaluate.task_id,
            on_reject="skip",
            poke_interval=poke_interval,
            mlflow_conn_id=mlflow_conn_id,
        )
        evaluate >> package_shadow >> online_gate
        if require_approval:
            commit = approve_and_commit(
                online_gate,
                response_timeout=response_timeout,
                drift_summary=promotion_kwargs.get("drift_summary"),
                lease=promotion_kwargs.get("lease"),
                on_reject="skip",
                mlflow_conn_id=mlflow_conn_id,
            )
        else:
            commit = ModelPromotionCommitOperator(
                task_id="commit",
                evaluation_task_id=online_gate.task_id,
                lease=promotion_kwargs.get("lease"),
                mlflow_conn_id=mlflow_conn_id,
            )
            online_gate >> commit
        # Whatever happened, failures included, the challenger leaves the shadow...
        withdraw = ShadowWithdrawOperator(
            task_id="withdraw",
            registered_model_name=registered_model_name,
            version_task_id=evaluate.task_id,
            trigger_rule="all_done",
            lease=promotion_kwargs.get("lease"),
            mlflow_conn_id=mlflow_conn_id,
        )
        # ... and the champion is packaged alone, unless something failed: then this task is
        # upstream_failed and the DAG run fails, visibly.
        package = BentoPackageOperator(
            task_id="package",
            model_name=registered_model_name,
            alias="champion",
            trigger_rule="none_failed",
            mlflow_conn_id=mlflow_conn_id,
            **packaging,
        )
        commit >> withdraw
        [withdraw, commit] >> package
    return group
