from __future__ import annotations

import json

import pytest

from airflow_mlops_provider.exceptions import MlflowConnectionError
from airflow_mlops_provider.hooks.mlflow import MlflowHook, local_default_tracking_uri


def _define(monkeypatch: pytest.MonkeyPatch, conn_id: str = "mlflow_default", **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "mlflow", **fields}))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param(
            {"host": "mlflow.example.com"}, "http://mlflow.example.com", id="host-only-defaults-http"
        ),
        pytest.param(
            {"host": "mlflow.example.com", "port": 5000}, "http://mlflow.example.com:5000", id="port"
        ),
        pytest.param(
            {"host": "mlflow.example.com", "schema": "https", "port": 443},
            "https://mlflow.example.com:443",
            id="https-scheme",
        ),
        pytest.param(
            {"host": "https://mlflow.example.com/prefix/", "port": 8443},
            "https://mlflow.example.com:8443/prefix",
            id="host-with-scheme-and-path",
        ),
        pytest.param(
            {"host": "ignored.example.com", "extra": {"tracking_uri": "sqlite:////data/mlflow.db"}},
            "sqlite:////data/mlflow.db",
            id="tracking-uri-extra-wins-over-host",
        ),
        pytest.param(
            {"extra": {"tracking_uri": "file:///data/mlruns"}}, "file:///data/mlruns", id="file-store"
        ),
    ],
)
def test_tracking_uri_is_built_from_the_connection(monkeypatch, fields, expected):
    _define(monkeypatch, **fields)
    hook = MlflowHook()
    assert hook.tracking_uri == expected
    assert hook.settings.source == "connection 'mlflow_default'"


def test_explicit_arguments_beat_the_connection(monkeypatch):
    _define(
        monkeypatch,
        host="conn.example.com",
        extra={"registry_uri": "http://reg.example.com", "max_retries": 5},
    )
    hook = MlflowHook(
        tracking_uri="http://arg.example.com:5000", registry_uri="http://arg-reg:5001", max_retries=1
    )
    assert hook.tracking_uri == "http://arg.example.com:5000"
    assert hook.settings.registry_uri == "http://arg-reg:5001"
    assert hook.settings.max_retries == 1


def test_env_carries_everything_a_subprocess_needs(monkeypatch):
    _define(
        monkeypatch,
        host="mlflow.example.com",
        port=5000,
        login="alice",
        password="pa55word",
        extra={"registry_uri": "http://registry.example.com", "token": "tok-123", "request_timeout": 7},
    )
    env = MlflowHook().env()
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow.example.com:5000"
    assert env["MLFLOW_REGISTRY_URI"] == "http://registry.example.com"
    assert env["MLFLOW_TRACKING_USERNAME"] == "alice"
    assert env["MLFLOW_TRACKING_PASSWORD"] == "pa55word"
    assert env["MLFLOW_TRACKING_TOKEN"] == "tok-123"
    assert env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
    assert int(env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"]) <= 3


def test_env_without_credentials_leaves_every_secret_out(monkeypatch):
    _define(monkeypatch, host="h", login="alice", password="pa55word", extra={"token": "tok-123"})
    env = MlflowHook().env(include_credentials=False)
    assert not {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"} & env.keys()
    assert "pa55word" not in json.dumps(env)


def test_password_and_token_are_registered_with_the_secrets_masker(monkeypatch):
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact

    _define(monkeypatch, host="h", login="alice", password="hunter2-xyz", extra={"token": "tok-secret-987"})
    settings = MlflowHook().settings
    line = f"user alice password {settings.password} token {settings.token}"
    redacted = redact(line)
    assert "hunter2-xyz" not in redacted
    assert "tok-secret-987" not in redacted
    assert "***" in redacted
    assert "hunter2-xyz" not in repr(settings)


def test_missing_default_connection_uses_the_documented_local_default(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path))
    hook = MlflowHook()
    uri = hook.tracking_uri
    assert uri == f"sqlite:///{tmp_path}/mlflow/mlflow.db" == local_default_tracking_uri()
    assert hook.settings.artifact_root == str(tmp_path / "mlflow" / "artifacts")
    # Airflow's structured logging writes to stdout.
    assert "not defined: using the local default MLflow store" in capsys.readouterr().out


def test_missing_named_connection_is_an_error_naming_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_PROD", raising=False)
    with pytest.raises(MlflowConnectionError, match="'mlflow_prod' is not defined"):
        _ = MlflowHook("mlflow_prod").settings


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"host": "h", "schema": "htp"}, r"'htp://h' has scheme 'htp'", id="scheme-typo"),
        pytest.param({"extra": {"tracking_uri": "s3://bucket/x"}}, r"scheme 's3'", id="unsupported-scheme"),
        pytest.param({}, "neither a host nor a 'tracking_uri'", id="nothing-set"),
        pytest.param(
            {"host": "h", "extra": {"request_timeout": "soon"}}, r"'request_timeout' is 'soon'", id="bad-int"
        ),
        pytest.param({"extra": {"tracking_uri": "http://"}}, "names no host", id="no-host"),
    ],
)
def test_malformed_connection_fails_with_a_message_naming_the_value(monkeypatch, fields, message):
    _define(monkeypatch, **fields)
    with pytest.raises(MlflowConnectionError, match=message):
        _ = MlflowHook().settings


def test_hook_construction_touches_no_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_MLFLOW_DEFAULT", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("connection looked up in __init__")

    monkeypatch.setattr(MlflowHook, "get_connection", forbidden)
    hook = MlflowHook("anything")
    assert hook.mlflow_conn_id == "anything"
