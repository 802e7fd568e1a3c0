"""Errors raised by the MLOps provider.

Every error derives from :class:`MlopsProviderError`, itself an ``AirflowException``, so a task that
fails on one of them fails the way Airflow users expect, and callers can catch the provider's errors
as a family. Messages name the bad value and what was expected.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class MlopsProviderError(AirflowException):
    """Base class of every error this provider raises."""


class MlflowConnectionError(MlopsProviderError):
    """The MLflow connection is malformed, or the tracking server cannot be reached or used."""


class TrainingError(MlopsProviderError):
    """A training task could not run, its run failed, or it ended without logging a model."""


class PodSchedulingError(TrainingError):
    """A training pod never started: no node could take its request, or its image could not be pulled."""


class GateConfigError(MlopsProviderError, AirflowFailException):
    """A promotion gate configuration is malformed, or does not suit the model it judges; the message
    names the gate, the key or metric, and the allowed values. The task fails without retries: the
    same configuration fails again."""


class CandidateError(MlopsProviderError, AirflowFailException):
    """A promotion was given something that names no model; the message lists the accepted forms."""


class PromotionRejected(MlopsProviderError):
    """A candidate model was refused: missing evidence, an evaluation error or a failed gate.

    :param message: Names each failed gate with the observed and the required value.
    :param decision: The decision record (also written to the model version), JSON-friendly.
    """

    def __init__(self, message: str, decision: dict | None = None) -> None:
        super().__init__(message)
        self.decision = decision or {}
        self.gate_results = self.decision.get("gates", [])


class PromotionConflict(MlopsProviderError):
    """The registry changed under a promotion or rollback (champion moved, lease lost); nothing was set."""


class DatasetReadError(MlopsProviderError):
    """A dataset is missing, empty, unreadable or not in the expected format."""


@contextmanager
def dataset_read_errors() -> Iterator[None]:
    """Raise the data layer's ``DatasetError`` (Airflow-free) as :class:`DatasetReadError`, its message whole."""
    from airflow_mlops_provider.data.datasets import DatasetError

    try:
        yield
    except DatasetError as err:
        raise DatasetReadError(str(err)) from None


class MonitoringError(MlopsProviderError):
    """Captured predictions or delayed labels cannot be read or joined: a path is missing, a required
    column is absent, or timestamps do not parse. The message names the path or column and lists what
    is there."""


class DataValidationError(MlopsProviderError, AirflowFailException):
    """A dataset broke its contract: at least one ``fail`` check did not pass.

    The task fails without retries: the same data breaks the same contract again.

    :param failures: The failed checks (``airflow_mlops_provider.data.contract.CheckResult``).
    """

    def __init__(self, message: str, failures: list | None = None) -> None:
        super().__init__(message)
        self.failures = failures or []


class DriftDetectedError(MlopsProviderError):
    """Drift crossed the threshold at which the task was told to fail."""


class MissingEvidenceError(MlopsProviderError, AirflowFailException):
    """Evidence a gate needs (a profile, a report) is absent: the gate fails closed, without retries."""


class PackagingError(MlopsProviderError):
    """A model version could not be packaged as a Bento: not READY, unknown alias, a flavor or signature
    BentoML cannot serve, or a smoke test whose predictions differ from the MLflow model's."""
