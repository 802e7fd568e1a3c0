"""Wait until drift against a reference crosses a threshold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.options import one_of

if TYPE_CHECKING:
    from airflow.sdk import Context


class DriftSensor(MlflowHookMixin, BaseSensorOperator):
    """Wait until the target profile drifts from the reference at least as far as ``threshold``.

    The reference is a profile URI or a model version's training profile (as in
    :class:`~airflow_mlops_provider.operators.drift.DriftCheckOperator`); it is resolved once, before
    waiting, so a missing reference fails at once. A target profile that does not exist yet is
    waited for. Pushes the drift report to XCom. Deferrable: the waiting happens in the triggerer.

    :param target_profile_uri: Profile to watch (rewritten by whatever profiles new data). (templated)
    :param reference_profile_uri: Reference profile. (templated)
    :param reference_model_name: Or a registered model whose training profile is the reference. (templated)
    :param reference_alias: Alias of that model's version. (templated)
    :param thresholds: ``DriftThresholds`` fields as a mapping. (templated)
    :param threshold: ``possible_drift`` or ``drift``.
    :param deferrable: Wait in the triggerer.
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param storage_conn_id: Connection for object-storage URIs.
    """

    template_fields: Sequence[str] = (
        "target_profile_uri",
        "reference_profile_uri",
        "reference_model_name",
        "reference_alias",
        "thresholds",
    )

    def __init__(
        self,
        *,
        target_profile_uri: str,
        reference_profile_uri: str | None = None,
        reference_model_name: str | None = None,
        reference_alias: str = "champion",
        thresholds: Mapping[str, Any] | None = None,
        threshold: Literal["possible_drift", "drift"] = "drift",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.target_profile_uri = target_profile_uri
        self.reference_profile_uri = reference_profile_uri
        self.reference_model_name = reference_model_name
        self.reference_alias = reference_alias
        self.thresholds = thresholds
        self.threshold = one_of(threshold, ("possible_drift", "drift"), "threshold")
        self.deferrable = deferrable
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_conn_id = storage_conn_id

    @cached_property
    def resolved_reference_uri(self) -> str:
        from airflow_mlops_provider.evidence import load_profile_uri, model_reference_profile_uri
        from airflow_mlops_provider.exceptions import MissingEvidenceError

        uri = self.reference_profile_uri
        if not uri and self.reference_model_name:
            uri = model_reference_profile_uri(
                self.mlflow_hook, self.reference_model_name, alias=self.reference_alias
            )
        if not uri:
            raise MissingEvidenceError(
                "no reference profile: give reference_profile_uri or a reference_model_name whose "
                f"alias {self.reference_alias!r} exists"
            )
        load_profile_uri(
            uri, conn_id=self.storage_conn_id, mlflow_conn_id=self.mlflow_conn_id
        )  # fail now if unreadable
        return uri

    def _trigger(self, timeout: float | None = None) -> Any:
        from airflow_mlops_provider.triggers.drift import DriftTrigger

        return DriftTrigger(
            target_profile_uri=self.target_profile_uri,
            reference_profile_uri=self.resolved_reference_uri,
            thresholds=dict(self.thresholds) if self.thresholds else None,
            threshold=self.threshold,
            poll_interval=float(self.poke_interval),
            timeout=timeout,
            storage_conn_id=self.storage_conn_id,
            mlflow_conn_id=self.mlflow_conn_id,
        )

    def poke(self, context: Context) -> PokeReturnValue:
        report = self._trigger().check()
        if report is None:
            self.log.info("No %s yet in %s", self.threshold, self.target_profile_uri)
            return PokeReturnValue(is_done=False)
        self.log.info("Drift %s reached: drifted columns %s", report["outcome"], report["drifted_columns"])
        return PokeReturnValue(is_done=True, xcom_value=report)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)  # poke once before deferring
        if first:
            return first.xcom_value
        self.defer(
            trigger=self._trigger(timeout=float(self.timeout) if self.timeout else None),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSensorTimeout

        from airflow_mlops_provider.exceptions import MlopsProviderError

        status = event.get("status")
        if status == "success":
            return event["report"]
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", "drift sensor timed out"))
        raise MlopsProviderError(f"drift sensor failed: {event.get('message', event)}")
