"""Check a dataset against a data contract, failing closed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.openlineage import OpenLineageMixin

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops_provider.data.contract import DataContract, Tolerances
    from airflow_mlops_provider.data.profiles import Profile

REPORT_JSON = "validation_report.json"
REPORT_MD = "validation_report.md"


class DataValidationOperator(OpenLineageMixin, MlflowHookMixin, BaseOperator):
    """Check a dataset's profile against a data contract; fail listing every failed check.

    The contract is a :class:`~airflow_mlops_provider.data.contract.DataContract`, a mapping of the
    same shape, a YAML file path or YAML text; or it is derived from ``reference_profile_uri`` (the
    champion's training data) with ``tolerances``. Given both, the explicit contract's rules win
    check by check: an explicit ``min_value`` replaces the derived one, while the derived checks the
    explicit rule does not mention (a zero-share ceiling, say) still apply. Without either, the task
    fails: there is nothing to validate against.

    A JSON report and a Markdown page are written to ``report_uri`` (and logged to ``mlflow_run_id``)
    before the verdict, so the evidence outlives a failed run. Returns ``{status, report_uri,
    report_markdown_uri, failed, warnings, data_fingerprint, rows}``.

    :param contract: The contract. (templated)
    :param profile_uri: Profile to check (``profile.bin`` or its directory). (templated)
    :param dataset_uri: Or a dataset to profile here. (templated)
    :param reference_profile_uri: Profile to derive a contract from. (templated)
    :param reference_model_name: Or: derive it from the training profile of this registered model's
        ``reference_alias`` version (e.g. the champion), when the model has one. (templated)
    :param reference_alias: Alias of the reference version (default ``champion``). (templated)
    :param tolerances: Tolerances for deriving (a ``Tolerances`` or a mapping of its fields).
    :param ignore_columns: Reference columns the derived contract leaves out: the target, say, which
        served traffic does not carry.
    :param timestamp_columns: Timestamp columns, when profiling ``dataset_uri`` here.
    :param file_format: Format of ``dataset_uri`` when it cannot be inferred.
    :param report_uri: Directory for the report; default ``$MLOPS_HOME/validation/<fingerprint>``. (templated)
    :param reference_time: ISO time freshness is measured from; default now. (templated)
    :param mlflow_run_id: Also log the report to this MLflow run. (templated)
    :param model_name: Record the verdict in this registered model's decision log
        (``python -m airflow_mlops_provider.decisions``); default ``reference_model_name``. (templated)
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param storage_conn_id: Connection for object-storage URIs.
    """

    template_fields: Sequence[str] = (
        "contract",
        "profile_uri",
        "dataset_uri",
        "reference_profile_uri",
        "reference_model_name",
        "reference_alias",
        "report_uri",
        "reference_time",
        "mlflow_run_id",
        "model_name",
    )
    template_fields_renderers = {"contract": "yaml"}
    ui_color = "#fdf3e3"

    def __init__(
        self,
        *,
        contract: DataContract | Mapping[str, Any] | str | None = None,
        profile_uri: str | None = None,
        dataset_uri: str | None = None,
        reference_profile_uri: str | None = None,
        reference_model_name: str | None = None,
        reference_alias: str = "champion",
        tolerances: Tolerances | Mapping[str, Any] | None = None,
        ignore_columns: Sequence[str] = (),
        timestamp_columns: Sequence[str] = (),
        file_format: str | None = None,
        report_uri: str | None = None,
        reference_time: str | None = None,
        mlflow_run_id: str | None = None,
        model_name: str | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.contract = contract
        self.profile_uri = profile_uri
        self.dataset_uri = dataset_uri
        self.reference_profile_uri = reference_profile_uri
        self.reference_model_name = reference_model_name
        self.reference_alias = reference_alias
        self.tolerances = tolerances
        self.ignore_columns = ignore_columns
        self.timestamp_columns = timestamp_columns
        self.file_format = file_format
        self.report_uri = report_uri
        self.reference_time = reference_time
        self.mlflow_run_id = mlflow_run_id
        self.model_name = model_name
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id

    def _target(self) -> Profile:
        from airflow_mlops_provider.data.profiles import profile_dataset
        from airflow_mlops_provider.evidence import load_profile_uri
        from airflow_mlops_provider.exceptions import dataset_read_errors

        if bool(self.profile_uri) == bool(self.dataset_uri):
            raise ValueError("give exactly one of profile_uri and dataset_uri")
        if self.profile_uri:
            return load_profile_uri(
                self.profile_uri, conn_id=self.storage_conn_id, mlflow_conn_id=self.mlflow_conn_id
            )
        with dataset_read_errors():
            return profile_dataset(
                str(self.dataset_uri),
                file_format=self.file_format,
                timestamp_columns=list(self.timestamp_columns),
            )

    def resolve_contract(self) -> DataContract:
        """Return the contract to check: explicit, derived from the reference, or the explicit one
        over the derived one (:func:`~airflow_mlops_provider.data.contract.overlay`)."""
        from airflow_mlops_provider.data.contract import DataContract, Tolerances, derive_contract, overlay
        from airflow_mlops_provider.evidence import load_profile_uri
        from airflow_mlops_provider.exceptions import MissingEvidenceError

        explicit: DataContract | None
        if self.contract is None:
            explicit = None
        elif isinstance(self.contract, DataContract):
            explicit = self.contract
        elif isinstance(self.contract, Mapping):
            explicit = DataContract.from_dict(self.contract)
        else:
            explicit = DataContract.from_yaml(self.contract)
        reference_uri = self.reference_profile_uri
        if not reference_uri and self.reference_model_name:
            from airflow_mlops_provider.evidence import model_reference_profile_uri

            reference_uri = model_reference_profile_uri(
                self.mlflow_hook, self.reference_model_name, alias=self.reference_alias
            )
            if reference_uri is None:
                self.log.info(
                    "Model %r has no %r version yet: no contract derived from it",
                    self.reference_model_name,
                    self.reference_alias,
                )
        if not reference_uri:
            if explicit is None:
                raise MissingEvidenceError(
                    "no contract and no reference profile: nothing to validate against (failing closed)"
                )
            return explicit
        tolerances = self.tolerances
        if isinstance(tolerances, Mapping):
            tolerances = Tolerances(**tolerances)
        reference = load_profile_uri(
            reference_uri, conn_id=self.storage_conn_id, mlflow_conn_id=self.mlflow_conn_id
        )
        derived = derive_contract(reference.summary, tolerances, name=f"derived from {reference_uri}")
        if self.ignore_columns:
            kept = {k: v for k, v in derived.columns.items() if k not in set(self.ignore_columns)}
            derived = dataclasses.replace(derived, columns=kept)
        if explicit is None:
            return derived
        return overlay(derived, explicit)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops_provider import storage
        from airflow_mlops_provider.data.contract import validate
        from airflow_mlops_provider.data.reports import validation_markdown
        from airflow_mlops_provider.exceptions import DataValidationError

        contract = self.resolve_contract()
        target = self._target()
        summary = target.summary
        now = (
            datetime.fromisoformat(self.reference_time) if self.reference_time else datetime.now(timezone.utc)
        )
        if now.tzinfo is None:
            now = now.replace(tzinfo=timezone.utc)
        result = validate(contract, summary, now=now)

        dataset = summary.data_uri or self.profile_uri or ""
        self.record_lineage(inputs=[self.dataset_uri or self.profile_uri])
        report = {
            **result.to_dict(),
            "dataset": dataset,
            "data_fingerprint": summary.data_fingerprint,
            "rows": summary.rows,
            "contract_definition": contract.to_dict(),
            "checked_at": datetime.now(timezone.utc).isoformat(),
        }
        key = summary.data_fingerprint or f"{context['dag'].dag_id}-{context['run_id']}"
        base = self.report_uri or storage.default_location("validation", key)
        json_uri = storage.write_bytes(
            storage.join(base, REPORT_JSON),
            json.dumps(report, indent=2, default=str).encode(),
            self.storage_conn_id,
        )
        md = validation_markdown(
            result, dataset=dataset, fingerprint=summary.data_fingerprint, rows=summary.rows
        )
        md_uri = storage.write_bytes(storage.join(base, REPORT_MD), md.encode(), self.storage_conn_id)
        if self.mlflow_run_id:
            client = self.mlflow_hook.get_client()
            client.log_text(
                self.mlflow_run_id, json.dumps(report, indent=2, default=str), f"validation/{REPORT_JSON}"
            )
            client.log_text(self.mlflow_run_id, md, f"validation/{REPORT_MD}")

        for warning in result.warnings:
            self.log.warning("Data contract warning: %s", warning.message)
        self.log.info(
            "Validated %s against %r: %s (%s checks, %s failed, %s warnings); report %s",
            dataset,
            contract.name,
            result.status,
            len(result.results),
            len(result.failures),
            len(result.warnings),
            md_uri,
        )
        from airflow_mlops_provider.decisions import validation_step

        self.record_decision_step(
            context,
            self.model_name or self.reference_model_name,
            "validation",
            validation_step(result.status, result.failures),
        )
        if result.failures:
            lines = "\n".join(f"  - {r.message}" for r in result.failures)
            raise DataValidationError(
                f"{len(result.failures)} data contract check(s) failed for {dataset}:\n{lines}\nreport: {md_uri}",
                result.failures,
            )
        self.record_lineage(outputs=[json_uri])
        return {
            "status": result.status,
            "report_uri": json_uri,
            "report_markdown_uri": md_uri,
            "failed": 0,
            "warnings": [r.message for r in result.warnings],
            "data_fingerprint": summary.data_fingerprint,
            "rows": summary.rows,
        }
