"""Reading and writing the provider's outputs (profiles, reports, plots) by URI.

Local paths and ``file://`` URIs are plain files. ``runs:/``, ``models:/`` and ``mlflow-artifacts:/``
URIs are MLflow artifacts, fetched through the ``mlflow`` connection. Anything else is an Airflow
``ObjectStoragePath`` (``s3://``, ``gs://``…, credentials from ``conn_id``).
"""

from __future__ import annotations

import os
import tempfile
import urllib.parse
from pathlib import Path

from airflow_mlops_provider.hooks.mlflow import MlflowHook, mlops_home

MLFLOW_SCHEMES = ("runs", "models", "mlflow-artifacts")


def scheme(uri: str) -> str:
    found = urllib.parse.urlsplit(str(uri)).scheme
    return "" if len(found) <= 1 else found


def local_path(uri: str) -> Path | None:
    """Return the local path of ``uri``, or ``None`` when it is not on this machine's filesystem."""
    text = str(uri)
    if scheme(text) == "":
        return Path(text)
    if scheme(text) == "file":
        return Path(urllib.parse.unquote(urllib.parse.urlsplit(text).path))
    return None


def join(base: str, name: str) -> str:
    return f"{str(base).rstrip('/')}/{name}"


def default_location(kind: str, key: str) -> str:
    """Return ``$MLOPS_HOME/<kind>/<key>``: where outputs go when no location is given."""
    return str(mlops_home() / kind / key.replace(":", "-"))


def write_bytes(uri: str, data: bytes, conn_id: str | None = None) -> str:
    """Write ``data`` to ``uri`` (creating directories) and return the URI."""
    path = local_path(uri)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        tmp.replace(path)  # readers never see a half-written file
        return str(path)
    from airflow.sdk import ObjectStoragePath

    target = ObjectStoragePath(uri, conn_id=conn_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return uri


def read_bytes(
    uri: str, conn_id: str | None = None, mlflow_conn_id: str = MlflowHook.default_conn_name
) -> bytes:
    """Return the bytes at ``uri``; raise ``FileNotFoundError`` naming it when there is nothing there."""
    path = local_path(uri)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"no file at {uri!r}")
        return path.read_bytes()
    if scheme(uri) in MLFLOW_SCHEMES:
        import mlflow.artifacts

        MlflowHook(mlflow_conn_id).get_client()  # sets the tracking URI and credentials for this process
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=uri, dst_path=tmp, tracking_uri=MlflowHook(mlflow_conn_id).tracking_uri
                )
            except Exception as err:
                raise FileNotFoundError(f"cannot fetch MLflow artifact {uri!r}: {err}") from None
            return Path(local).read_bytes()
    from airflow.sdk import ObjectStoragePath

    source = ObjectStoragePath(uri, conn_id=conn_id)
    if not source.is_file():
        raise FileNotFoundError(f"no file at {uri!r}")
    return source.read_bytes()
