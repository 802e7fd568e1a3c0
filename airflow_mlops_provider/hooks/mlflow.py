"""Hook for an MLflow tracking server and model registry.

The ``mlflow`` connection names where MLflow lives:

- an HTTP(S) server: *Host* (``mlflow.example.com``), *Port* and *Scheme* (``http`` when empty), or a
  full ``tracking_uri`` in the extras;
- an embedded store: ``tracking_uri`` set to ``sqlite:////abs/path/mlflow.db`` (or ``file:``), with
  ``artifact_root`` saying where new experiments keep their artifacts.

Authentication is by *Username*/*Password* or by a ``token`` extra. Secrets are registered with
Airflow's secrets masker as soon as they are read, so they never reach a task log.

When the default connection ``mlflow_default`` is not defined, the hook falls back to the documented
local default: ``sqlite:///$MLOPS_HOME/mlflow/mlflow.db`` with artifacts in
``$MLOPS_HOME/mlflow/artifacts`` (``MLOPS_HOME`` defaults to ``~/.mlops``) and says so in the log.
Any other missing connection id is an error.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_mlops_provider.exceptions import MlflowConnectionError
from airflow_mlops_provider.hooks import MLFLOW_DEFAULT_CONN_ID

if TYPE_CHECKING:
    from mlflow import MlflowClient

#: Schemes MLflow can track to. Anything else is almost always a typo (``htp://``).
SUPPORTED_SCHEMES = frozenset(
    {"http", "https", "sqlite", "file", "postgresql", "mysql", "mssql", "databricks", "databricks-uc"}
)
DEFAULT_REQUEST_TIMEOUT = 30
DEFAULT_MAX_RETRIES = 3
#: MLflow's own default backoff (factor 2, 7 retries) can keep a task waiting for minutes on a dead
#: server; with factor 1 and 3 retries an unreachable server is reported in seconds.
DEFAULT_BACKOFF_FACTOR = 1


def mlops_home() -> Path:
    """Return the directory that holds all local state (``$MLOPS_HOME``, default ``~/.mlops``)."""
    return Path(os.environ.get("MLOPS_HOME") or Path.home() / ".mlops").expanduser().resolve()


def local_default_tracking_uri() -> str:
    """Return the tracking URI used when no ``mlflow_default`` connection is defined."""
    return f"sqlite:///{mlops_home() / 'mlflow' / 'mlflow.db'}"


def local_default_artifact_root() -> str:
    """Return the artifact root used with :func:`local_default_tracking_uri`."""
    return str(mlops_home() / "mlflow" / "artifacts")


@dataclass(frozen=True)
class MlflowSettings:
    """Where MLflow lives and how to talk to it, resolved from a connection and explicit arguments.

    :param tracking_uri: MLflow tracking URI.
    :param registry_uri: Model registry URI; ``None`` means the tracking URI.
    :param username: Basic-auth user name.
    :param password: Basic-auth password.
    :param token: Bearer token.
    :param artifact_root: Artifact root for experiments created against a local database.
    :param request_timeout: Seconds before one HTTP request to the server is abandoned.
    :param max_retries: Retries of a failed HTTP request.
    :param insecure_tls: Skip TLS certificate verification.
    :param source: Where these settings came from, for messages.
    """

    tracking_uri: str
    registry_uri: str | None = None
    username: str | None = None
    password: str | None = None
    token: str | None = None
    artifact_root: str | None = None
    request_timeout: int = DEFAULT_REQUEST_TIMEOUT
    max_retries: int = DEFAULT_MAX_RETRIES
    insecure_tls: bool = False
    source: str = "arguments"

    @property
    def is_server(self) -> bool:
        """Whether the tracking URI points at an HTTP(S) server rather than a database or files."""
        return urllib.parse.urlsplit(self.tracking_uri).scheme in ("http", "https")

    def __repr__(self) -> str:
        # The dataclass repr would print the password and token.
        return f"MlflowSettings(tracking_uri={self.tracking_uri!r}, source={self.source!r})"


def validate_uri(uri: str, what: str = "tracking URI") -> str:
    """Return ``uri`` stripped, or raise naming it when MLflow could not use it."""
    uri = uri.strip()
    if not uri:
        raise MlflowConnectionError(f"MLflow {what} is empty")
    scheme = urllib.parse.urlsplit(uri).scheme.split("+", 1)[0]
    if not scheme and uri.startswith("/"):
        return uri  # a plain path is a file store
    if scheme not in SUPPORTED_SCHEMES:
        raise MlflowConnectionError(
            f"MLflow {what} {uri!r} has scheme {scheme!r}; expected one of {sorted(SUPPORTED_SCHEMES)}"
        )
    if scheme in ("http", "https") and not urllib.parse.urlsplit(uri).hostname:
        raise MlflowConnectionError(f"MLflow {what} {uri!r} names no host")
    return uri.rstrip("/")


def _int_extra(extras: dict[str, Any], key: str, default: int, conn_id: str) -> int:
    value = extras.get(key)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MlflowConnectionError(
            f"Connection {conn_id!r}: extra {key!r} is {value!r}, expected a whole number"
        ) from None
    if number < 0:
        raise MlflowConnectionError(f"Connection {conn_id!r}: extra {key!r} is {number}, expected >= 0")
    return number


class MlflowHook(BaseHook):
    """Talk to an MLflow tracking server and model registry through an ``mlflow`` connection.

    Explicit arguments beat the connection's fields and extras.

    :param mlflow_conn_id: The ``mlflow`` connection to use.
    :param tracking_uri: Tracking URI, overriding the connection's.
    :param registry_uri: Registry URI, overriding the connection's.
    :param request_timeout: Seconds per HTTP request, overriding the connection's.
    :param max_retries: Retries per HTTP request, overriding the connection's.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = MLFLOW_DEFAULT_CONN_ID
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(
        self,
        mlflow_conn_id: str = default_conn_name,
        *,
        tracking_uri: str | None = None,
        registry_uri: str | None = None,
        request_timeout: int | None = None,
        max_retries: int | None = None,
    ) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id
        self._tracking_uri = tracking_uri
        self._registry_uri = registry_uri
        self._request_timeout = request_timeout
        self._max_retries = max_retries

    @cached_property
    def settings(self) -> MlflowSettings:
        """The resolved settings: connection, then explicit arguments on top."""
        base = self._settings_from_connection()
        overrides: dict[str, Any] = {}
        if self._tracking_uri:
            overrides["tracking_uri"] = validate_uri(self._tracking_uri)
        if self._registry_uri:
            overrides["registry_uri"] = validate_uri(self._registry_uri, "registry URI")
        if self._request_timeout is not None:
            overrides["request_timeout"] = self._request_timeout
        if self._max_retries is not None:
            overrides["max_retries"] = self._max_retries
        settings = MlflowSettings(**{**base.__dict__, **overrides}) if overrides else base
        self._mask(settings)
        return settings

    @property
    def tracking_uri(self) -> str:
        """The tracking URI in use."""
        return self.settings.tracking_uri

    def _settings_from_connection(self) -> MlflowSettings:
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            if self.mlflow_conn_id != self.default_conn_name:
                raise MlflowConnectionError(
                    f"MLflow connection {self.mlflow_conn_id!r} is not defined; define it, or pass "
                    f"tracking_uri explicitly"
                ) from None
            if self._tracking_uri:
                return MlflowSettings(tracking_uri=validate_uri(self._tracking_uri))
            uri = local_default_tracking_uri()
            self.log.warning(
                "Connection %r is not defined: using the local default MLflow store %s "
                "(artifacts in %s). Define the connection to use a tracking server.",
                self.default_conn_name,
                uri,
                local_default_artifact_root(),
            )
            return MlflowSettings(
                tracking_uri=uri,
                artifact_root=local_default_artifact_root(),
                source="local default",
            )

        conn_id = self.mlflow_conn_id
        extras = conn.extra_dejson
        tracking_uri = extras.get("tracking_uri") or self._uri_from_host(conn)
        if not tracking_uri and not self._tracking_uri:
            raise MlflowConnectionError(
                f"Connection {conn_id!r} has neither a host nor a 'tracking_uri' extra"
            )
        registry_uri = extras.get("registry_uri") or None
        return MlflowSettings(
            tracking_uri=validate_uri(tracking_uri) if tracking_uri else "",
            registry_uri=validate_uri(registry_uri, "registry URI") if registry_uri else None,
            username=conn.login or None,
            password=conn.password or None,
            token=extras.get("token") or None,
            artifact_root=extras.get("artifact_root") or None,
            request_timeout=_int_extra(extras, "request_timeout", DEFAULT_REQUEST_TIMEOUT, conn_id),
            max_retries=_int_extra(extras, "max_retries", DEFAULT_MAX_RETRIES, conn_id),
            insecure_tls=str(extras.get("insecure_tls", "")).lower() in ("true", "1", "yes"),
            source=f"connection {conn_id!r}",
        )

    @staticmethod
    def _uri_from_host(conn: Any) -> str | None:
        host = (conn.host or "").strip()
        if not host:
            return None
        if "://" in host:
            uri = host
        else:
            scheme = (conn.schema or "http").strip().lower()
            uri = f"{scheme}://{host}"
        parts = urllib.parse.urlsplit(uri)
        if conn.port and parts.port is None:
            uri = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.netloc}:{conn.port}"))
        return uri

    @staticmethod
    def _mask(settings: MlflowSettings) -> None:
        from airflow.sdk.log import mask_secret

        for secret in (settings.password, settings.token):
            if secret:
                mask_secret(secret)

    def env(self, *, include_credentials: bool = True) -> dict[str, str]:
        """Return the ``MLFLOW_*`` variables a subprocess or a pod needs to reach this MLflow.

        :param include_credentials: Include the username, password and token. Leave them out when
            they travel another way (a Kubernetes Secret reference).
        """
        s = self.settings
        env = {
            "MLFLOW_TRACKING_URI": s.tracking_uri,
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(s.request_timeout),
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(s.max_retries),
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": str(DEFAULT_BACKOFF_FACTOR),
        }
        if s.registry_uri:
            env["MLFLOW_REGISTRY_URI"] = s.registry_uri
        if s.insecure_tls:
            env["MLFLOW_TRACKING_INSECURE_TLS"] = "true"
        if include_credentials:
            if s.username:
                env["MLFLOW_TRACKING_USERNAME"] = s.username
            if s.password:
                env["MLFLOW_TRACKING_PASSWORD"] = s.password
            if s.token:
                env["MLFLOW_TRACKING_TOKEN"] = s.token
        return env

    def get_client(self) -> MlflowClient:
        """Return an ``MlflowClient`` for this connection.

        MLflow's client reads credentials and HTTP limits from ``MLFLOW_*`` environment variables on
        every request, so this sets them in the current process (in Airflow 3 each task runs in a
        process of its own).
        """
        from mlflow import MlflowClient

        s = self.settings
        self._ensure_local_store(s)
        os.environ.update(self.env())
        self.log.debug("MLflow client for %s (%s)", s.tracking_uri, s.source)
        return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.registry_uri or s.tracking_uri)

    @staticmethod
    def _ensure_local_store(s: MlflowSettings) -> None:
        # SQLite cannot create the directory of its database file.
        if s.tracking_uri.startswith("sqlite:///"):
            Path(s.tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)

    def get_or_create_experiment(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it when absent.

        Against a local database the experiment's artifacts go under ``artifact_root`` (a server
        decides this itself), so runs never write into the worker's current directory.
        """
        client = self.get_client()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = None
        if self.settings.artifact_root and not self.settings.is_server:
            location = Path(self.settings.artifact_root, name).as_uri()
        self.log.info("Creating MLflow experiment %r", name)
        return client.create_experiment(name, artifact_location=location)

    def ensure_reachable(self) -> None:
        """Raise :class:`MlflowConnectionError` naming the URI unless MLflow answers, within bounded time.

        One request, no retries, at most ``request_timeout`` seconds.
        """
        s = self.settings
        if not s.is_server:
            self._check_store(s)
            return
        import requests

        url = f"{s.tracking_uri}/api/2.0/mlflow/experiments/search"
        auth = (s.username, s.password or "") if s.username else None
        headers = {"Authorization": f"Bearer {s.token}"} if s.token else {}
        try:
            response = requests.post(
                url,
                json={"max_results": 1},
                auth=auth,
                headers=headers,
                timeout=s.request_timeout,
                verify=not s.insecure_tls,
            )
        except (requests.RequestException, OSError) as err:
            raise MlflowConnectionError(
                f"MLflow tracking server {s.tracking_uri} is unreachable "
                f"(within {s.request_timeout}s): {type(err).__name__}: {err}"
            ) from None
        if response.status_code in (401, 403):
            raise MlflowConnectionError(
                f"MLflow tracking server {s.tracking_uri} refused the credentials of {s.source} "
                f"(HTTP {response.status_code})"
            )
        if response.status_code != 200:
            raise MlflowConnectionError(
                f"{s.tracking_uri} does not answer like an MLflow tracking server: "
                f"POST /api/2.0/mlflow/experiments/search gave HTTP {response.status_code}"
            )

    def _check_store(self, s: MlflowSettings) -> None:
        try:
            self.get_client().search_experiments(max_results=1)
        except Exception as err:
            raise MlflowConnectionError(
                f"MLflow store {s.tracking_uri} cannot be used: {type(err).__name__}: {err}"
            ) from None

    def test_connection(self) -> tuple[bool, str]:
        """Check that the tracking server answers and accepts the credentials."""
        try:
            self.ensure_reachable()
        except Exception as err:
            return False, str(err)
        return True, f"Connected to MLflow at {self.tracking_uri}"
