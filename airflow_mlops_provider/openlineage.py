"""OpenLineage for the provider's operators, the Airflow way: ``get_openlineage_facets_on_complete``.

With the OpenLineage provider installed and a transport configured, each task reports what it
read and what it wrote, so a lineage backend (Marquez, or any other) shows the chain from a raw
batch through its profile, validation report, drift report, training run and registered model
version to the Bento that serves it. Without the provider nothing here is imported.

Datasets are named after their URIs as OpenLineage's naming spec has it: ``file`` + the absolute
path for local files, ``s3://bucket`` + the key for object storage. MLflow artifacts and registered
model versions live in the tracking server's namespace (``models:/churn/3``); a Bento in
``bentoml`` under its tag.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

BENTO_SCHEME = "bentoml"


def dataset_name(uri: str, mlflow_namespace: str = "mlflow") -> tuple[str, str]:
    """Return ``(namespace, name)`` for a URI: a file path, an object-storage URI or an MLflow URI."""
    # Imported here: DAG files import the operators, and parsing must not import the hook.
    from airflow_mlops_provider import storage

    text = str(uri)
    path = storage.local_path(text)
    if path is not None:
        return "file", os.path.abspath(path)
    scheme = storage.scheme(text)
    if scheme in storage.MLFLOW_SCHEMES:
        return mlflow_namespace, text
    if scheme == BENTO_SCHEME:
        return BENTO_SCHEME, text.split("://", 1)[1]
    parts = urllib.parse.urlsplit(text)
    return f"{scheme}://{parts.netloc}", parts.path.lstrip("/") or "/"


def model_version_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


def bento_uri(tag: str) -> str:
    return f"{BENTO_SCHEME}://{tag}"


class OpenLineageMixin:
    """Lets an operator say, while it runs, what it read and wrote; reported when it completes.

    ``execute`` calls :meth:`record_lineage` with URIs; OpenLineage's listener then calls
    :meth:`get_openlineage_facets_on_complete` on the same operator object.
    """

    _lineage_inputs: list[str]
    _lineage_outputs: list[str]

    def record_lineage(self, inputs: Iterable[str | None] = (), outputs: Iterable[str | None] = ()) -> None:
        """Add datasets this task read (``inputs``) and wrote (``outputs``); ``None`` entries are skipped."""
        self._lineage_inputs = [*getattr(self, "_lineage_inputs", []), *(str(u) for u in inputs if u)]
        self._lineage_outputs = [*getattr(self, "_lineage_outputs", []), *(str(u) for u in outputs if u)]

    def lineage_namespace(self) -> str:
        """The namespace of MLflow URIs: the tracking server this task used."""
        hook = getattr(self, "mlflow_hook", None)
        try:
            return str(hook.tracking_uri) if hook is not None else "mlflow"
        except Exception:  # lineage never fails a task
            return "mlflow"

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset

        namespace = self.lineage_namespace()

        def datasets(uris: list[str]) -> list[Dataset]:
            unique = list(dict.fromkeys(uris))
            return [Dataset(*dataset_name(uri, namespace)) for uri in unique]

        return OperatorLineage(
            inputs=datasets(getattr(self, "_lineage_inputs", [])),
            outputs=datasets(getattr(self, "_lineage_outputs", [])),
        )
