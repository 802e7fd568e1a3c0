"""Trigger that waits, in the triggerer, until drift against a reference crosses a threshold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class DriftTrigger(BaseTrigger):
    """Recompute drift every ``poll_interval`` seconds until the outcome reaches ``threshold``.

    A target profile that does not exist yet is waited for. Yields ``status``: ``success`` (with the
    report), ``timeout``, or ``error`` (with a message); never raises.

    :param target_profile_uri: Profile of the data to watch.
    :param reference_profile_uri: Reference profile.
    :param thresholds: ``DriftThresholds`` fields as a mapping.
    :param threshold: ``possible_drift`` or ``drift``.
    :param poll_interval: Seconds between checks.
    :param timeout: Seconds before giving up, or ``None``.
    :param storage_conn_id: Connection for object-storage URIs.
    :param mlflow_conn_id: The ``mlflow`` connection (for MLflow artifact URIs).
    """

    def __init__(
        self,
        target_profile_uri: str,
        reference_profile_uri: str,
        thresholds: dict[str, Any] | None,
        threshold: str,
        poll_interval: float,
        timeout: float | None,
        storage_conn_id: str | None = None,
        mlflow_conn_id: str = "mlflow_default",
    ) -> None:
        super().__init__()
        self.target_profile_uri = target_profile_uri
        self.reference_profile_uri = reference_profile_uri
        self.thresholds = thresholds
        self.threshold = threshold
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.storage_conn_id = storage_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "target_profile_uri": self.target_profile_uri,
                "reference_profile_uri": self.reference_profile_uri,
                "thresholds": self.thresholds,
                "threshold": self.threshold,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "storage_conn_id": self.storage_conn_id,
                "mlflow_conn_id": self.mlflow_conn_id,
            },
        )

    def check(self) -> dict[str, Any] | None:
        """Return the drift report when it reaches the threshold, ``None`` while it does not (or no target yet)."""
        from airflow_mlops_provider.data.drift import at_least
        from airflow_mlops_provider.evidence import drift_between
        from airflow_mlops_provider.exceptions import MissingEvidenceError

        try:
            report, _, _ = drift_between(
                self.target_profile_uri,
                self.reference_profile_uri,
                self.thresholds,
                conn_id=self.storage_conn_id,
                mlflow_conn_id=self.mlflow_conn_id,
            )
        except MissingEvidenceError:
            # The reference was loaded before deferring, so what is missing is the target: wait for it.
            return None
        return report.to_dict() if at_least(report.outcome, self.threshold) else None

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            while True:
                report = await asyncio.to_thread(self.check)
                if report is not None:
                    yield TriggerEvent({"status": "success", "report": report})
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    yield TriggerEvent(
                        {
                            "status": "timeout",
                            "message": f"drift stayed below {self.threshold!r} for {self.timeout}s",
                        }
                    )
                    return
                await asyncio.sleep(self.poll_interval)
        except Exception as err:
            yield TriggerEvent({"status": "error", "message": f"{type(err).__name__}: {err}"})
