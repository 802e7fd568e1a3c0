"""ModelPromotionOperator: register, evaluate, gate and (without a human) commit a candidate."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider.exceptions import (
    GateConfigError,
    MlflowConnectionError,
)
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID
from airflow_mlops_provider.openlineage import model_version_uri

if TYPE_CHECKING:
    from pathlib import Path

    from airflow.sdk import Context

    from airflow_mlops_provider.gates import GateResult, ModelKind, PromotionGates
    from airflow_mlops_provider.promotion import LeaseSettings
from airflow_mlops_provider.operators.registry.approval import _describe
from airflow_mlops_provider.operators.registry.base import (
    OnReject,
    _check_on_reject,
    _failure_message,
    _literal_gates,
    _refuse,
    _RegistryOperator,
    _run_info,
)


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
