"""Training tracked in MLflow, in a Kubernetes pod (optionally on GPUs) or a local subprocess.

:class:`MLflowTrainingOperator` (:mod:`.operator`) is the task; what it adds to the pod and how it
explains one that never started are in :mod:`.pod`, the local runtime's subprocess in :mod:`.local`,
and the MLflow run it creates, supersedes and finishes in :mod:`.run`. See ``docs/training.md``.
"""

from __future__ import annotations

from airflow_mlops_provider.operators.training.operator import (
    DEFAULT_IMAGE,
    RUNTIMES,
    MLflowTrainingOperator,
    default_runtime,
    validate_runtime,
)
from airflow_mlops_provider.operators.training.pod import (
    ANNOTATION_RUN_ID,
    ANNOTATION_SCHEDULE_TIMEOUT,
    DEFAULT_GPU_SCHEDULE_TIMEOUT,
    explain_pending_pod,
)

__all__ = [
    "ANNOTATION_RUN_ID",
    "ANNOTATION_SCHEDULE_TIMEOUT",
    "DEFAULT_GPU_SCHEDULE_TIMEOUT",
    "DEFAULT_IMAGE",
    "RUNTIMES",
    "MLflowTrainingOperator",
    "default_runtime",
    "explain_pending_pod",
    "validate_runtime",
]
