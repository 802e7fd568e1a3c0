"""Check a dataset's profile for drift against a reference (a profile, or a model's training data)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.providers.standard.operators.branch import BranchMixIn
from airflow.sdk import Asset, AssetAlias, BaseOperator

from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.openlineage import OpenLineageMixin
from airflow_mlops_provider.options import one_of

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops_provider.data.drift import DriftThresholds

OUTCOMES = ("no_drift", "possible_drift", "drift")
REPORT_JSON = "drift_report.json"
REPORT_MD = "drift_report.md"
PLOT = "drift.png"


class DriftCheckOperator(OpenLineageMixin, MlflowHookMixin, BaseOperator, BranchMixIn):
    """Compare a target profile with a reference profile, per column and overall.

    The reference is a profile URI, or the training-data profile recorded on an MLflow model version
    (``reference_model_name`` with ``reference_alias``, e.g. ``champion``, or ``reference_version``).
    Numeric columns are compared with Kolmogorov-Smirnov, categorical ones with chi-square (whylogs'
    algorithms); a column drifts when the shift is significant and its effect size is large enough
    (see :class:`~airflow_mlops_provider.data.drift.DriftThresholds`).

    Returns ``{outcome, drift_share, drifted_columns, columns, report_uri, plot_uri,
    reference_profile_uri}``. On top, by configuration:

    - ``fail_on``: fail the task when the outcome is at least this (``drift`` or ``possible_drift``);
    - ``branch``: follow the task ids listed for the outcome and skip the other direct downstreams;
    - ``drift_asset``: emit an Asset event carrying the scores in ``extra`` when the outcome is at
      least ``asset_on`` (through an AssetAlias, so no event is emitted otherwise), for a retraining
      DAG scheduled on that asset.

    :param target_profile_uri: Profile of the data to check. (templated)
    :param reference_profile_uri: Reference profile. (templated)
    :param reference_model_name: Or: a registered model whose training profile is the reference. (templated)
    :param reference_alias: Alias of that model's version (default ``champion``). (templated)
    :param reference_version: Or a version number. (templated)
    :param thresholds: A ``DriftThresholds`` or a mapping of its fields. (templated)
    :param on_missing_reference: ``fail`` or ``skip`` (return outcome ``no_reference``) when the model
        has no such version yet (e.g. before the first champion). A version without a recorded profile
        always fails: that is missing evidence, not a missing reference.
    :param fail_on: Outcome at which the task fails, or ``None`` never.
    :param branch: ``{outcome: task_id or [task_ids]}`` to branch on the outcome (``no_reference`` too).
    :param drift_asset: Asset to emit an event for when drift is found.
    :param asset_on: Outcome at which the asset event is emitted.
    :param output_uri: Directory for the report and plot; default ``$MLOPS_HOME/drift/<target fingerprint>``. (templated)
    :param plot_columns: How many of the most drifted columns to draw.
    :param mlflow_run_id: Also log the report and plot to this MLflow run. (templated)
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param storage_conn_id: Connection for object-storage URIs.
    """

    template_fields: Sequence[str] = (
        "target_profile_uri",
        "reference_profile_uri",
        "reference_model_name",
        "reference_alias",
        "reference_version",
        "thresholds",
        "output_uri",
        "mlflow_run_id",
    )
    template_fields_renderers = {"thresholds": "json"}
    ui_color = "#f6e8fa"

    def __init__(
        self,
        *,
        target_profile_uri: str,
        reference_profile_uri: str | None = None,
        reference_model_name: str | None = None,
        reference_alias: str | None = "champion",
        reference_version: str | None = None,
        thresholds: DriftThresholds | Mapping[str, Any] | None = None,
        on_missing_reference: Literal["fail", "skip"] = "fail",
        fail_on: Literal["possible_drift", "drift"] | None = None,
        branch: Mapping[str, str | Sequence[str]] | None = None,
        drift_asset: Asset | None = None,
        asset_on: Literal["possible_drift", "drift"] = "drift",
        output_uri: str | None = None,
        plot_columns: int = 4,
        mlflow_run_id: str | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        if drift_asset is not None:
            kwargs["outlets"] = [*kwargs.get("outlets", []), AssetAlias(self.alias_name(drift_asset))]
        super().__init__(**kwargs)
        self.target_profile_uri = target_profile_uri
        self.reference_profile_uri = reference_profile_uri
        self.reference_model_name = reference_model_name
        self.reference_alias = reference_alias
        self.reference_version = reference_version
        self.thresholds = thresholds
        self.on_missing_reference = one_of(on_missing_reference, ("fail", "skip"), "on_missing_reference")
        self.fail_on = None if fail_on is None else one_of(fail_on, OUTCOMES[1:], "fail_on")
        self.branch = branch
        self.drift_asset = drift_asset
        self.asset_on = one_of(asset_on, OUTCOMES[1:], "asset_on")
        self.output_uri = output_uri
        self.plot_columns = plot_columns
        self.mlflow_run_id = mlflow_run_id
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id
        if branch is not None:
            for outcome in branch:
                one_of(outcome, (*OUTCOMES, "no_reference"), "branch key")

    @staticmethod
    def alias_name(asset: Asset) -> str:
        return f"mlops-drift:{asset.name}"

    def _reference_uri(self) -> str | None:
        from airflow_mlops_provider.evidence import model_reference_profile_uri

        if self.reference_profile_uri:
            return self.reference_profile_uri
        if not self.reference_model_name:
            raise ValueError(
                "give reference_profile_uri, or reference_model_name with reference_alias/version"
            )
        return model_reference_profile_uri(
            self.mlflow_hook,
            self.reference_model_name,
            alias=None if self.reference_version else self.reference_alias,
            version=self.reference_version,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider.exceptions import MissingEvidenceError

        reference_uri = self._reference_uri()
        if reference_uri is None:
            label = f"{self.reference_model_name!r} " + (
                f"version {self.reference_version}"
                if self.reference_version
                else f"alias {self.reference_alias!r}"
            )
            if self.on_missing_reference == "fail":
                raise MissingEvidenceError(
                    f"no reference to check drift against: model {label} does not exist"
                )
            self.log.info("No reference yet (model %s does not exist): drift check skipped", label)
            result: dict[str, Any] = {"outcome": "no_reference", "drift_share": 0.0, "drifted_columns": []}
            self._record(context, result)
            self._branch(context, "no_reference", result)
            return result
        return self._check(context, reference_uri)

    def _check(self, context: Context, reference_uri: str) -> dict[str, Any]:
        from airflow_mlops_provider import storage
        from airflow_mlops_provider.data.drift import at_least, plot_top_drift
        from airflow_mlops_provider.data.reports import drift_markdown
        from airflow_mlops_provider.evidence import drift_between
        from airflow_mlops_provider.exceptions import DriftDetectedError

        report, target, reference = drift_between(
            self.target_profile_uri,
            reference_uri,
            self.thresholds,
            conn_id=self.storage_conn_id,
            mlflow_conn_id=self.mlflow_conn_id,
        )
        key = target.summary.data_fingerprint or f"{context['dag'].dag_id}-{context['run_id']}"
        base = self.output_uri or storage.default_location("drift", key)
        body = {
            **report.to_dict(),
            "target_profile_uri": self.target_profile_uri,
            "reference_profile_uri": reference_uri,
        }
        with tempfile.TemporaryDirectory() as tmp:
            plot_path = plot_top_drift(
                report, target.view, reference.view, str(Path(tmp) / PLOT), n=self.plot_columns
            )
            plot_uri = storage.write_bytes(
                storage.join(base, PLOT), Path(plot_path).read_bytes(), self.storage_conn_id
            )
            md = drift_markdown(report, target=self.target_profile_uri, reference=reference_uri, plot=PLOT)
            report_uri = storage.write_bytes(
                storage.join(base, REPORT_JSON), json.dumps(body, indent=2).encode(), self.storage_conn_id
            )
            storage.write_bytes(storage.join(base, REPORT_MD), md.encode(), self.storage_conn_id)
            if self.mlflow_run_id:
                client = self.mlflow_hook.get_client()
                client.log_artifact(self.mlflow_run_id, plot_path, "drift")
                client.log_text(self.mlflow_run_id, json.dumps(body, indent=2), f"drift/{REPORT_JSON}")
                client.log_text(self.mlflow_run_id, md, f"drift/{REPORT_MD}")
        top = ", ".join(f"{d.column} ({d.outcome}, effect {d.effect:.2f})" for d in report.top(3))
        self.log.info(
            "Drift outcome %s; drifted columns %s; top: %s; report %s",
            report.outcome,
            report.drifted,
            top,
            report_uri,
        )
        result = {
            "outcome": report.outcome,
            "drift_share": round(report.drift_share, 4),
            "drifted_columns": report.drifted,
            "columns": {
                c: {"effect": round(d.effect, 4), "pvalue": d.pvalue, "outcome": d.outcome}
                for c, d in report.columns.items()
            },
            "report_uri": report_uri,
            "plot_uri": plot_uri,
            "reference_profile_uri": reference_uri,
        }
        if self.drift_asset is not None and at_least(report.outcome, self.asset_on):
            extra: dict[str, Any] = {
                k: result[k] for k in ("outcome", "drift_share", "drifted_columns", "report_uri")
            }
            context["outlet_events"][AssetAlias(self.alias_name(self.drift_asset))].add(
                self.drift_asset, extra=extra
            )
            self.log.info("Emitted an event for asset %s", self.drift_asset.name)
        self.record_lineage(inputs=[self.target_profile_uri, reference_uri], outputs=[report_uri])
        self._record(context, result)
        if self.fail_on is not None and at_least(report.outcome, self.fail_on):
            raise DriftDetectedError(
                f"drift outcome {report.outcome!r} reaches fail_on={self.fail_on!r}: drifted columns "
                f"{report.drifted}; top: {top}; report {report_uri}"
            )
        self._branch(context, report.outcome, result)
        return result

    def _record(self, context: Context, result: dict[str, Any]) -> None:
        from airflow_mlops_provider.decisions import drift_step

        self.record_decision_step(context, self.reference_model_name, "drift", drift_step(result))

    def _branch(self, context: Context, outcome: str, result: Any) -> None:
        from airflow_mlops_provider.operators._branching import follow_branches

        if self.branch is not None:
            follow_branches(self, context, self.branch, [outcome], result)
