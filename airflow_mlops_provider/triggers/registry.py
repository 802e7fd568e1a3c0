"""Trigger that waits in the triggerer for a model version to be READY or an alias to move."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def check_registry(
    client: Any,
    registered_model_name: str,
    *,
    version: str | None = None,
    alias: str | None = None,
    target_version: str | None = None,
    away_from_version: str | None = None,
) -> tuple[str | None, str]:
    """One look at the registry: ``("success" | "failed" | None, message)``; ``None`` means keep waiting.

    Shared by :class:`ModelVersionTrigger` and the sensor's ``poke``.
    """
    from airflow_mlops_provider.promotion import alias_version

    name = registered_model_name
    if alias:
        current = alias_version(client, name, alias)
        if target_version is not None and current == str(target_version):
            return "success", f"{name}@{alias} points at v{current}"
        if away_from_version is not None and current != str(away_from_version):
            return "success", f"{name}@{alias} moved away from v{away_from_version} to {current}"
        return None, f"{name}@{alias} is {('v' + current) if current else 'unset'}"
    mv = client.get_model_version(name, str(version))
    if mv.status == "READY":
        return "success", f"{name} v{version} is READY"
    if mv.status == "FAILED_REGISTRATION":
        return "failed", f"{name} v{version} failed registration: {mv.status_message}"
    return None, f"{name} v{version} is {mv.status}"


class ModelVersionTrigger(BaseTrigger):
    """Poll the MLflow registry until a version is READY or an alias moves.

    Yields one event whose ``status`` is ``success``, ``failed`` (registration failed), ``timeout`` or
    ``error`` (MLflow could not be asked), with a ``message``. Never raises.

    :param registered_model_name: The registered model.
    :param version: Wait for this version to be READY (when no ``alias`` is given).
    :param alias: Wait for this alias to move.
    :param target_version: ...to point at this version.
    :param away_from_version: ...to point anywhere but this version (or be removed).
    :param mlflow_conn_id: The ``mlflow`` connection.
    :param poll_interval: Seconds between looks.
    :param timeout: Seconds before a ``timeout`` event; ``None`` waits forever.
    :param max_errors: Consecutive failed looks before an ``error`` event.
    """

    def __init__(
        self,
        *,
        registered_model_name: str,
        version: str | None = None,
        alias: str | None = None,
        target_version: str | None = None,
        away_from_version: str | None = None,
        mlflow_conn_id: str = "mlflow_default",
        poll_interval: float = 10.0,
        timeout: float | None = None,
        max_errors: int = 5,
    ) -> None:
        super().__init__()
        self.registered_model_name = registered_model_name
        self.version = version
        self.alias = alias
        self.target_version = target_version
        self.away_from_version = away_from_version
        self.mlflow_conn_id = mlflow_conn_id
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.max_errors = max_errors

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "registered_model_name": self.registered_model_name,
                "version": self.version,
                "alias": self.alias,
                "target_version": self.target_version,
                "away_from_version": self.away_from_version,
                "mlflow_conn_id": self.mlflow_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "max_errors": self.max_errors,
            },
        )

    def _look(self) -> tuple[str | None, str]:
        from airflow_mlops_provider.hooks.mlflow import MlflowHook

        return check_registry(
            MlflowHook(self.mlflow_conn_id).get_client(),
            self.registered_model_name,
            version=self.version,
            alias=self.alias,
            target_version=self.target_version,
            away_from_version=self.away_from_version,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        errors = 0
        message = "not looked yet"
        while True:
            try:
                # The MLflow client is synchronous: keep it off the triggerer's event loop.
                status, message = await asyncio.to_thread(self._look)
                errors = 0
            except Exception as err:
                errors += 1
                message = f"{type(err).__name__}: {str(err)[:300]}"
                status = "error" if errors >= self.max_errors else None
            if status is not None:
                yield TriggerEvent({"status": status, "message": message})
                return
            if deadline is not None and time.monotonic() >= deadline:
                yield TriggerEvent(
                    {"status": "timeout", "message": f"still waiting after {self.timeout:g}s: {message}"}
                )
                return
            await asyncio.sleep(self.poll_interval)
