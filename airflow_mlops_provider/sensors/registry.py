"""Sensor that waits for a model version to be READY or a registry alias to move."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.sdk import BaseSensorOperator

from airflow_mlops_provider.exceptions import MlopsProviderError
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin
from airflow_mlops_provider.links.mlflow import MlflowModelVersionLink
from airflow_mlops_provider.triggers.registry import ModelVersionTrigger, check_registry

if TYPE_CHECKING:
    from airflow.sdk import Context


class ModelVersionSensor(MlflowHookMixin, BaseSensorOperator):
    """Wait until a model version is READY, or until an alias points at (or away from) a version.

    Give ``version`` alone to wait for READY; give ``alias`` with ``target_version`` or
    ``away_from_version`` to wait for it to move. Deferrable: it looks once, then hands the waiting
    to :class:`~airflow_mlops_provider.triggers.registry.ModelVersionTrigger`.

    :param registered_model_name: The registered model (templated).
    :param version: Version to wait for (templated).
    :param alias: Alias to watch (templated).
    :param target_version: Succeed when ``alias`` points at this version (templated).
    :param away_from_version: Succeed when ``alias`` points anywhere else or is removed (templated).
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param deferrable: Wait in the triggerer; default ``[operators] default_deferrable``.
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "version",
        "alias",
        "target_version",
        "away_from_version",
    )
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(
        self,
        *,
        registered_model_name: str,
        version: str | int | None = None,
        alias: str | None = None,
        target_version: str | int | None = None,
        away_from_version: str | int | None = None,
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.version = version
        self.alias = alias
        self.target_version = target_version
        self.away_from_version = away_from_version
        self.mlflow_conn_id = mlflow_conn_id
        self.deferrable = deferrable

    def _args(self) -> dict[str, Any]:
        def text(value: Any) -> str | None:
            return None if value in (None, "") else str(value)

        args = {
            "version": text(self.version),
            "alias": text(self.alias),
            "target_version": text(self.target_version),
            "away_from_version": text(self.away_from_version),
        }
        if args["alias"]:
            if (args["target_version"] is None) == (args["away_from_version"] is None):
                raise ValueError("with alias, give exactly one of target_version or away_from_version")
        elif args["version"] is None:
            raise ValueError("give version (wait for READY) or alias (wait for it to move)")
        return args

    def poke(self, context: Context) -> bool:
        status, message = check_registry(
            self.mlflow_hook.get_client(), self.registered_model_name, **self._args()
        )
        self.log.info("%s", message)
        if status == "failed":
            raise MlopsProviderError(message)
        return status == "success"

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        self.defer(
            trigger=ModelVersionTrigger(
                registered_model_name=self.registered_model_name,
                mlflow_conn_id=self.mlflow_conn_id,
                poll_interval=float(self.poke_interval),
                timeout=float(self.timeout) if self.timeout else None,
                **self._args(),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        status, message = event.get("status"), event.get("message", "")
        if status == "success":
            self.log.info("%s", message)
            return
        if status == "timeout":
            from airflow.sdk.exceptions import AirflowSensorTimeout

            raise AirflowSensorTimeout(message)
        raise MlopsProviderError(f"{self.registered_model_name}: {status}: {message}")
