"""Errors raised by the MLOps provider.

Every error derives from :class:`MlopsProviderError`, itself an ``AirflowException``, so a task that
fails on one of them fails the way Airflow users expect, and callers can catch the provider's errors
as a family. Messages name the bad value and what was expected.
"""

from __future__ import annotations

from airflow.exceptions import AirflowException


class MlopsProviderError(AirflowException):
    """Base class of every error this provider raises."""


class MlflowConnectionError(MlopsProviderError):
    """The MLflow connection is malformed, or the tracking server cannot be reached or used."""
