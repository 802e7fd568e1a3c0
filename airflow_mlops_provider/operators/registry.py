"""Gated promotion in the MLflow model registry: champion/challenger, approval, audit trail, rollback.

Two shapes, one engine (:mod:`airflow_mlops_provider.promotion`):

- without a human: ``ModelPromotionOperator`` registers, evaluates, gates and commits in one task;
- with a human: ``ModelPromotionOperator(commit=False)`` evaluates and gates, ``ModelApprovalOperator``
  (Airflow's ``ApprovalOperator``) shows challenger vs champion, each gate and the drift summary, and
  ``ModelPromotionCommitOperator`` moves the aliases once approved. :func:`gated_promotion` wires the
  three into a TaskGroup. A timeout rejects.

Both commit paths take the per-model lease, check that the champion is still the one evaluated
against, and record the decision on the model version. See ``docs/promotion.md``.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import BaseOperator

from airflow_mlops_provider.exceptions import (
    GateConfigError,
    MlflowConnectionError,
    PromotionConflict,
    PromotionRejected,
)
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.links.mlflow import (
    XCOM_MODEL_VERSION_URL,
    XCOM_RUN_URL,
    MlflowModelVersionLink,
    MlflowRunLink,
    ModelCardLink,
    model_version_url,
    run_url,
)
from airflow_mlops_provider.openlineage import OpenLineageMixin, model_version_uri

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import Context, TaskGroup

    from airflow_mlops_provider.gates import GateResult, ModelKind, PromotionGates
    from airflow_mlops_provider.promotion import LeaseSettings

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


class ModelPromotionOperator(_RegistryOperator):
    """Register a candidate model, evaluate it against the champion, apply gates, and promote it.

    The candidate becomes a new model version (or reuses the one already registered from the same
    run and source), waits until READY and gets the ``challenger`` alias. It and the current
    ``champion`` are scored on the same evaluation data by the same metric code; then every gate in
    ``gates`` is applied. Any failed gate, missing evidence or evaluation error refuses the candidate:
    the aliases are left alone and the task fails with a :class:`PromotionRejected` naming each failed
    gate with its observed and required value (or, with ``on_reject="return"``, returns a
    ``rejected`` decision; ``on_reject="skip"`` ends the task skipped). A passing candidate becomes ``champion`` and the old champion
    ``previous_champion``, under a per-model lease and only if the champion is still the one it was
    evaluated against. The very first candidate (no champion) is judged on absolute gates alone.

    Returns a decision: ``decision`` (``promoted``, ``rejected`` or ``awaiting_approval``),
    ``version``, ``champion_version``, ``previous_champion_version``, ``gates`` and ``metrics``.

    :param candidate: Run id, ``runs:/`` or ``models:/m-…`` URI, or the training task's XCom dict with
        ``run_id``/``model_uri`` (templated).
    :param registered_model_name: Registered model to promote in (templated).
    :param eval_data_uri: CSV or Parquet evaluation data: a file, directory or glob (templated).
    :param target_column: Column holding the true label.
    :param gates: :class:`~airflow_mlops_provider.gates.PromotionGates`, a mapping, YAML text or a
        YAML file path (templated).
    :param feature_columns: Model input columns; default every column but the target.
    :param model_kind: ``classification`` or ``regression``. Literal gates are checked against it when
        the DAG is parsed; without it the kind comes from the training run (``mlops.task_type``) or
        the model itself, and is checked before anything is registered or evaluated. A gate whose
        metric is of the other kind fails the task, naming the gate and the metrics that apply.
    :param commit: ``False`` stops after the gates with an ``awaiting_approval`` decision, for
        :class:`ModelApprovalOperator` and :class:`ModelPromotionCommitOperator` to finish.
    :param on_reject: What a refused candidate does to the task: ``fail`` (raise
        :class:`PromotionRejected`), ``skip`` (the task ends skipped with the reasons, the decision in
        its XCom) or ``return`` (the task succeeds and returns the ``rejected`` decision).
    :param drift_summary: Drift summary to record and show approvers, e.g. a drift task's XCom
        (templated).
    :param model_card: What only people know, for the version's model card: ``intended_use``,
        ``limitations``, ``owner`` (templated).
    :param model_artifact_path: Name of the logged model inside the run, for a bare run id.
    :param registration_timeout: Seconds to wait for the new version to be READY.
    :param lease: Timing of the per-model promotion lease.
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = (
        "candidate",
        "registered_model_name",
        "eval_data_uri",
        "gates",
        "drift_summary",
        "model_card",
    )
    template_fields_renderers = {
        "candidate": "json",
        "gates": "yaml",
        "drift_summary": "json",
        "model_card": "json",
    }

    def __init__(
        self,
        *,
        candidate: str | dict[str, Any],
        registered_model_name: str,
        eval_data_uri: str,
        target_column: str,
        gates: PromotionGates | dict[str, Any] | str | Path,
        feature_columns: Sequence[str] | None = None,
        model_kind: ModelKind | None = None,
        commit: bool = True,
        on_reject: OnReject = "fail",
        drift_summary: Any = None,
        model_card: Mapping[str, str] | None = None,
        model_artifact_path: str = "model",
        registration_timeout: float = 300.0,
        lease: LeaseSettings | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.candidate = candidate
        self.registered_model_name = registered_model_name
        self.eval_data_uri = eval_data_uri
        self.target_column = target_column
        self.gates = gates
        self.feature_columns = feature_columns
        self.model_kind = model_kind
        self.commit = commit
        self.on_reject = on_reject
        self.drift_summary = drift_summary
        self.model_card = model_card
        self.model_artifact_path = model_artifact_path
        self.registration_timeout = registration_timeout
        self.lease = lease
        self.mlflow_conn_id = mlflow_conn_id
        # Mistakes visible in the DAG file fail its import, before anything runs.
        _check_on_reject(on_reject)
        from airflow_mlops_provider.model_card import check_human_fields

        check_human_fields(model_card)
        literal = _literal_gates(gates)
        if literal is not None and literal.online is not None and commit:
            raise GateConfigError(
                "gates declare an online gate, which only live traffic can judge: evaluate with "
                "commit=False and judge the challenger with OnlineGateOperator (shadow_promotion)"
            )
        if model_kind is not None:
            from airflow_mlops_provider.gates import check_model_kind

            check_model_kind(model_kind)
            if literal is not None:
                literal.check_kind(model_kind, "model_kind=")

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.gates import PromotionGates

        on_reject = _check_on_reject(self.on_reject)
        gates = PromotionGates.coerce(self.gates)
        if self.model_kind is not None:
            gates.check_kind(self.model_kind, "model_kind=")
        name = self.registered_model_name
        client = self.mlflow_hook.get_client()
        uri = self.mlflow_hook.tracking_uri

        with p.translate_unreachable(uri, f"registering the candidate in {name!r}"):
            candidate = p.resolve_candidate(client, self.candidate, self.model_artifact_path)
            run = client.get_run(candidate.run_id) if candidate.run_id else None
            run_tags = dict(run.data.tags) if run else {}
            kind = self.model_kind or p.model_kind_from_tags(run_tags)
            if kind is not None:
                # Before registering: a gate that cannot judge this model adds no version.
                gates.check_kind(
                    kind, "model_kind=" if self.model_kind else "its training run's mlops.task_type"
                )
            mv, _ = p.register_candidate(
                client,
                name,
                candidate,
                tags=p.lineage_tags(run_tags),
                timeout_s=self.registration_timeout,
                log=self.log,
            )
            version = str(mv.version)
            self.record_lineage(
                inputs=[candidate.model_uri, self.eval_data_uri], outputs=[model_version_uri(name, version)]
            )
            self._push_links(context, name, version, run)
            client.set_registered_model_alias(name, p.CHALLENGER, version)
            aliases = p.read_state(client, name).aliases
        champion = aliases.get(p.CHAMPION)
        self.log.info(
            "%s: challenger v%s, champion %s", name, version, f"v{champion}" if champion else "none"
        )

        decision: dict[str, Any] = {
            "registered_model_name": name,
            "version": version,
            "run_id": candidate.run_id,
            "model_uri": candidate.model_uri,
            "evaluated_against_version": champion,
            "champion_version": champion,
            "previous_champion_version": aliases.get(p.PREVIOUS_CHAMPION),
            "eval_data_uri": self.eval_data_uri,
            "gate_config": gates.to_dict(),
            "drift_summary": self.drift_summary,
            "model_card": dict(self.model_card or {}),
            **_run_info(context),
        }
        if champion == version:
            self.log.info("%s v%s is already the champion; nothing to do", name, version)
            decision.update(decision="promoted", gates=[], metrics={}, reasons=["already champion"])
            self._log_decision(context, decision)
            return decision

        with (
            p.translate_unreachable(uri, f"evaluating {name} v{version}"),
            tempfile.TemporaryDirectory(prefix="mlops-promotion-") as workdir,
        ):
            results, metrics, fingerprint = self._evaluate(
                client, gates, name, version, champion, run_tags, candidate, workdir, kind
            )
        decision.update(
            gates=[r.to_dict() for r in results],
            metrics=metrics,
            eval_data_fingerprint=fingerprint,
            decided_at=p.utcnow_iso(),
        )
        failed = [r.to_dict() for r in results if not r.passed]
        if failed:
            message = _failure_message(name, version, failed)
            decision.update(decision="rejected", reasons=[_describe(f) for f in failed])
            with p.translate_unreachable(uri, f"recording the rejection of {name} v{version}"):
                self._record(client, name, version, decision)
            self.log.warning("%s", message)
            self._log_decision(context, decision)
            return _refuse(context, on_reject, message, decision)

        if not self.commit:
            decision.update(decision="awaiting_approval", reasons=[])
            with p.translate_unreachable(uri, f"recording the evaluation of {name} v{version}"):
                p.record_decision(client, name, version, decision)
            self.log.info("%s v%s passed every gate; awaiting approval", name, version)
            self._log_decision(context, decision)
            return decision
        return self._commit(context, client, decision, approval=None)

    def _evaluate(
        self,
        client: Any,
        gates: PromotionGates,
        name: str,
        version: str,
        champion: str | None,
        run_tags: dict[str, str],
        candidate: Any,
        workdir: str,
        kind: str | None,
    ) -> tuple[list[GateResult], dict[str, Any], str | None]:
        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.gates import GateResult, apply_gates, evaluate_frame

        results = p.check_evidence(client, run_tags, candidate.run_id, gates.evidence)
        if any(not r.passed for r in results):
            # Fail closed and fast: no evidence, no evaluation.
            return results, {}, None

        def guarded(gate: str, what: str, fn: Any) -> Any:
            try:
                return fn()
            except (MlflowConnectionError, GateConfigError):
                raise
            except Exception as err:
                if p.is_unreachable(err):
                    raise
                self.log.warning("Evaluation of %s failed: %s", what, err)
                results.append(
                    GateResult(gate, "failed", "error", "evaluates", f"{type(err).__name__}: {err}"[:500])
                )
                return None

        frame = guarded("evaluation:data", self.eval_data_uri, lambda: p.load_frame(self.eval_data_uri))
        if frame is None:
            return results, {}, None
        if self.target_column not in frame.columns:
            results.append(
                GateResult("evaluation:data", "failed", "missing column", f"column {self.target_column!r}")
            )
            return results, {}, None
        features = list(self.feature_columns or [c for c in frame.columns if c != self.target_column])
        fingerprint = guarded(
            "evaluation:data", "fingerprint", lambda: p.data_fingerprint(self.eval_data_uri)
        )

        def report(v: str) -> tuple[Any, dict[str, Any]]:
            nonlocal kind
            # The version's own (immutable) source: a models:/<name>/<v> URI would make MLflow fetch
            # the registered model, whose cost grows with its number of versions.
            source = client.get_model_version(name, v).source
            model = p.load_model(client, source, tempfile.mkdtemp(dir=workdir, prefix=f"v{v}-"))
            if kind is None and (kind := p.model_kind_of(model)) is not None:
                gates.check_kind(kind, f"v{v}'s estimator")
            scorer = p.make_scorer(model)
            return model, evaluate_frame(scorer, frame, self.target_column, features, gates, kind)

        loaded = guarded("evaluation:candidate", f"candidate v{version}", lambda: report(version))
        champ_report = None
        if champion is not None:
            champ = guarded("evaluation:champion", f"champion v{champion}", lambda: report(champion))
            champ_report = champ[1] if champ else None
            if champ is None:
                return results, {}, fingerprint
        if loaded is None:
            return results, {}, fingerprint
        model, cand_report = loaded
        latency = None
        if gates.latency is not None:
            latency = guarded(
                "latency", "latency", lambda: p.measure_latency(model, frame[features], gates.latency)
            )
        results += apply_gates(gates, cand_report, champ_report, champion_version=champion, latency=latency)
        metrics = {
            "candidate": {"overall": cand_report["overall"], "slices": cand_report["slices"]},
            "champion": (
                {"overall": champ_report["overall"], "slices": champ_report["slices"]}
                if champ_report
                else None
            ),
            "latency": latency,
            "fairness": cand_report.get("fairness"),
            "rows": cand_report["rows"],
        }
        return results, metrics, fingerprint


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
        from airflow.exceptions import AirflowSkipException

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


class ModelRollbackOperator(_RegistryOperator):
    """Move ``champion`` back to ``previous_champion`` (or to a given version) and record why.

    Runs under the same per-model lease as promotions. The restored version's own predecessor (the
    ``previous_champion`` when it was promoted) becomes ``previous_champion``, so a second rollback
    goes further back rather than re-promoting the model just rolled back; when there is none the
    alias is removed. Both versions get tags saying when, why and by which DAG run.

    :param registered_model_name: The registered model (templated).
    :param reason: Why, recorded on both versions (templated).
    :param to_version: Version to restore; default ``previous_champion`` (templated).
    :param expected_champion_version: Refuse unless the champion is this version (templated).
    :param lease: Timing of the per-model promotion lease.
    :param mlflow_conn_id: The ``mlflow`` connection.
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "reason",
        "to_version",
        "expected_champion_version",
    )

    def __init__(
        self,
        *,
        registered_model_name: str,
        reason: str,
        to_version: str | int | None = None,
        expected_champion_version: str | int | None = None,
        lease: LeaseSettings | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.reason = reason
        self.to_version = to_version
        self.expected_champion_version = expected_champion_version
        self.lease = lease
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import promotion as p

        if not str(self.reason or "").strip():
            raise ValueError("reason is empty; a rollback must say why")
        name = self.registered_model_name
        client = self.mlflow_hook.get_client()
        uri = self.mlflow_hook.tracking_uri
        with (
            p.translate_unreachable(uri, f"rolling back {name}"),
            p.RegistryLease(client, name, _owner(context), self._lease_settings(), self.log) as lease,
        ):
            p.repair_interrupted(client, name, lease, self.log)
            aliases = p.read_state(client, name).aliases
            current = aliases.get(p.CHAMPION)
            if (
                self.expected_champion_version not in (None, "")
                and str(self.expected_champion_version) != current
            ):
                raise PromotionConflict(
                    f"champion of {name!r} is {current}, not v{self.expected_champion_version}; not rolling back"
                )
            target = (
                str(self.to_version)
                if self.to_version not in (None, "")
                else aliases.get(p.PREVIOUS_CHAMPION)
            )
            if target is None:
                raise PromotionConflict(f"{name!r} has no previous_champion to roll back to; give to_version")
            if current is None:
                raise PromotionConflict(f"{name!r} has no champion to roll back")
            if target == current:
                raise PromotionConflict(f"v{target} is already the champion of {name!r}")
            mv = p.wait_until_ready(client, name, target, timeout_s=0)
            before = mv.tags.get(p.TAG_PREVIOUS_CHAMPION)
            new_previous = before if before not in (None, "none", current, target) else None
            moved = p.move_champion(
                client, name, lease, expected_champion=current, new_champion=target, new_previous=new_previous
            )
        now = p.utcnow_iso()
        by = _owner(context)
        with p.translate_unreachable(uri, f"recording the rollback of {name}"):
            p.set_version_tags(
                client,
                name,
                current,
                {
                    p.TAG_ROLLED_BACK_AT: now,
                    p.TAG_ROLLED_BACK_TO: target,
                    p.TAG_ROLLBACK_REASON: self.reason,
                    p.TAG_ROLLBACK_BY: by,
                    p.TAG_STATUS: "rolled_back",
                },
            )
            p.set_version_tags(
                client,
                name,
                target,
                {
                    p.TAG_RESTORED_AT: now,
                    p.TAG_RESTORED_FROM: current,
                    p.TAG_ROLLBACK_REASON: self.reason,
                    p.TAG_ROLLBACK_BY: by,
                    p.TAG_STATUS: "champion",
                },
            )
        self._push_links(context, name, target, None)
        self.log.info("Rolled back %s: champion v%s -> v%s (%s)", name, current, target, self.reason)
        return {
            "decision": "rolled_back",
            "registered_model_name": name,
            "rolled_back_version": current,
            "reason": self.reason,
            **moved,
        }


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
