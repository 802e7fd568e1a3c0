"""Monitor a served model on what it was actually sent: its captured traffic, and the outcomes that follow.

:class:`CaptureWindowOperator` writes the inputs a model version was sent in a time window (from the
Bento's inference capture) to one Parquet file, which the data gates then profile, validate and
check for drift like any batch. :class:`ModelPerformanceOperator` joins the outcomes that arrived
later to the captured predictions of a window, computes the live metrics with the promotion gates'
own metric code, and decides, by a policy fixed up front, ``ok``, ``degraded`` or
``insufficient_data`` (docs/monitoring.md).

One module each: :mod:`.window` (the served version, its capture, the window), :mod:`.capture` and
:mod:`.performance`.
"""

from airflow_mlops_provider.operators.monitoring.capture import CaptureWindowOperator
from airflow_mlops_provider.operators.monitoring.performance import (
    MONITORING_EXPERIMENT,
    OUTCOMES,
    ROLLBACK_POLICIES,
    TAG_MONITORED_MODEL,
    TAG_MONITORED_VERSION,
    ModelPerformanceOperator,
)
from airflow_mlops_provider.operators.monitoring.window import capture_uri_of

__all__ = [
    "MONITORING_EXPERIMENT",
    "OUTCOMES",
    "ROLLBACK_POLICIES",
    "TAG_MONITORED_MODEL",
    "TAG_MONITORED_VERSION",
    "CaptureWindowOperator",
    "ModelPerformanceOperator",
    "capture_uri_of",
]
