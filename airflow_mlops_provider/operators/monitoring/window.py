"""What a monitoring task looks at: the model version served, where its Bento captures, and the window of one run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID, MlflowHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def aware_time(value: Any, name: str) -> datetime | None:
    """``value`` (a datetime or ISO text) in UTC; ``None`` when empty; a time without a zone is refused."""
    if isinstance(value, datetime):
        when = value
    elif value is None or not str(value).strip():
        return None
    else:
        when = datetime.fromisoformat(str(value).strip())
    if when.tzinfo is None:
        raise ValueError(f"{name}={value!r} has no time zone; give an aware time (e.g. ...+00:00)")
    return when.astimezone(timezone.utc)


class WindowOperator(MlflowHookMixin, BaseOperator):
    """Shared: the model version served, where it captured, and the window of one run."""

    template_fields: Sequence[str] = (
        "model_name",
        "alias",
        "version",
        "capture_uri",
        "window_start",
        "window_end",
    )
    ui_color = "#eef7ee"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str | None = "champion",
        version: str | int | None = None,
        capture_uri: str | None = None,
        window_start: str | datetime | None = None,
        window_end: str | datetime | None = None,
        lookback: timedelta = timedelta(days=1),
        mlflow_conn_id: str = MLFLOW_DEFAULT_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.version = version
        self.capture_uri = capture_uri
        self.window_start = window_start
        self.window_end = window_end
        self.lookback = lookback
        self.mlflow_conn_id = mlflow_conn_id

    def served_version(self, client: MlflowClient) -> ModelVersion:
        """Return the monitored version: ``version``, else the ``alias`` version.

        A model without that alias yet (before its first champion) skips the task: nothing is served.
        """
        from airflow.sdk.exceptions import AirflowSkipException
        from mlflow.exceptions import MlflowException

        from airflow_mlops_provider import promotion as p
        from airflow_mlops_provider.exceptions import MonitoringError

        with p.translate_unreachable(self.mlflow_hook.tracking_uri, f"reading {self.model_name}"):
            if self.version not in (None, ""):
                try:
                    return client.get_model_version(self.model_name, str(self.version))
                except MlflowException as err:
                    raise MonitoringError(
                        f"registered model {self.model_name!r} has no version {self.version}: {err.message}"
                    ) from None
            if not self.alias:
                raise MonitoringError("give a version or an alias of the model to monitor")
            version = p.alias_version(client, self.model_name, self.alias)
            if version is None:
                raise AirflowSkipException(
                    f"model {self.model_name!r} has no {self.alias!r} version yet: nothing is served to monitor"
                )
            return client.get_model_version(self.model_name, version)

    def resolved_capture_uri(self, mv: ModelVersion) -> str:
        """``capture_uri``, else where the version's Bento captures, else ``$MLOPS_HOME/capture``."""
        return capture_uri_of(mv, self.capture_uri)

    def window(self, context: Context) -> tuple[datetime, datetime]:
        """``[start, end)``: as given, else the run's data interval end and ``lookback`` before it."""
        end = aware_time(self.window_end, "window_end") or aware_time(context.get("data_interval_end"), "end")
        end = end or datetime.now(timezone.utc)
        start = aware_time(self.window_start, "window_start") or end - self.lookback
        if start >= end:
            raise ValueError(f"window_start {start.isoformat()} is not before window_end {end.isoformat()}")
        return start, end


def capture_uri_of(mv: ModelVersion, given: str | None = None) -> str:
    """``given``, else where the version's Bento captures (its tag), else ``$MLOPS_HOME/capture``."""
    from airflow_mlops_provider import lineage
    from airflow_mlops_provider.hooks.mlflow import mlops_home

    return str(given or (mv.tags or {}).get(lineage.TAG_BENTO_CAPTURE_URI) or mlops_home() / "capture")


def uri_exists(uri: str) -> bool:
    """Whether anything is at ``uri`` (a file, a directory, or a glob's matches)."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    return bool(fs.glob(path)) if any(c in path for c in "*?[") else bool(fs.exists(path))
