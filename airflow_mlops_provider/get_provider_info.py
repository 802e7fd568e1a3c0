"""Provider metadata, returned through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_mlops_provider import __version__


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata in the shape Airflow's ``ProvidersManager`` reads."""
    return {
        "package-name": "airflow-mlops-provider",
        "name": "MLOps",
        "description": (
            "Continuously retrained, gated, observable models: whylogs data gates, MLflow-tracked "
            "training on Kubernetes, gated MLflow registry promotion and BentoML packaging."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "MLflow",
                "external-doc-url": "https://mlflow.org/docs/latest/",
                "tags": ["software"],
            },
            {
                "integration-name": "BentoML",
                "external-doc-url": "https://docs.bentoml.com/",
                "how-to-guide": ["docs/bentoml.md", "docs/monitoring.md"],
                "tags": ["software"],
            },
            {
                "integration-name": "whylogs",
                "external-doc-url": "https://whylogs.readthedocs.io/",
                "how-to-guide": ["docs/data-gates.md"],
                "tags": ["software"],
            },
        ],
        "hooks": [
            {
                "integration-name": "MLflow",
                "python-modules": ["airflow_mlops_provider.hooks.mlflow"],
            },
        ],
        "operators": [
            {
                "integration-name": "whylogs",
                "python-modules": [
                    "airflow_mlops_provider.operators.profiling",
                    "airflow_mlops_provider.operators.validation",
                    "airflow_mlops_provider.operators.drift",
                ],
            },
            {
                "integration-name": "MLflow",
                "python-modules": [
                    "airflow_mlops_provider.operators.training",
                    "airflow_mlops_provider.operators.registry",
                ],
            },
            {
                "integration-name": "BentoML",
                "python-modules": [
                    "airflow_mlops_provider.operators.bentoml",
                    "airflow_mlops_provider.operators.monitoring",
                    "airflow_mlops_provider.operators.shadow",
                ],
            },
        ],
        "sensors": [
            {
                "integration-name": "whylogs",
                "python-modules": ["airflow_mlops_provider.sensors.drift"],
            },
            {
                "integration-name": "MLflow",
                "python-modules": ["airflow_mlops_provider.sensors.registry"],
            },
        ],
        "triggers": [
            {
                "integration-name": "whylogs",
                "python-modules": ["airflow_mlops_provider.triggers.drift"],
            },
            {
                "integration-name": "MLflow",
                "python-modules": ["airflow_mlops_provider.triggers.registry"],
            },
        ],
        "extra-links": [
            "airflow_mlops_provider.links.mlflow.MlflowRunLink",
            "airflow_mlops_provider.links.mlflow.MlflowModelVersionLink",
            "airflow_mlops_provider.links.mlflow.ModelCardLink",
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_mlops_provider.hooks.mlflow.MlflowHook",
                "hook-name": "MLflow",
                "connection-type": "mlflow",
                "conn-fields": {
                    "tracking_uri": {
                        "label": "Tracking URI",
                        "description": (
                            "Full tracking URI; overrides Scheme/Host/Port. "
                            "For embedded use: sqlite:////abs/path/mlflow.db"
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                    "registry_uri": {
                        "label": "Registry URI",
                        "description": "Model registry URI, when it differs from the tracking URI.",
                        "schema": {"type": ["string", "null"]},
                    },
                    "token": {
                        "label": "Token",
                        "description": "Bearer token (instead of login and password).",
                        "schema": {"type": ["string", "null"], "format": "password"},
                    },
                    "artifact_root": {
                        "label": "Artifact root",
                        "description": (
                            "Where new experiments store artifacts when the tracking URI is a local "
                            "database (a server decides this itself)."
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                    "request_timeout": {
                        "label": "Request timeout (s)",
                        "schema": {"type": ["integer", "null"], "minimum": 1},
                    },
                    "max_retries": {
                        "label": "Max retries",
                        "schema": {"type": ["integer", "null"], "minimum": 0},
                    },
                    "insecure_tls": {
                        "label": "Skip TLS verification",
                        "schema": {"type": ["boolean", "null"]},
                    },
                    "kubernetes_secret_name": {
                        "label": "Kubernetes Secret",
                        "description": (
                            "Secret whose MLFLOW_TRACKING_* keys training pods load (envFrom), so "
                            "credentials never appear in a pod spec."
                        ),
                        "schema": {"type": ["string", "null"]},
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["extra"],
                    "relabeling": {"schema": "Scheme", "login": "Username"},
                    "placeholders": {
                        "host": "mlflow.example.com",
                        "schema": "http or https",
                        "port": "5000",
                    },
                },
            },
        ],
    }
