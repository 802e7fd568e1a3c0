"""Finding and loading the evidence the data gates compare against: profiles by URI or by model.

A profile URI names either the ``profile.bin`` a :class:`WhylogsProfileOperator` wrote or the
directory holding it (with its ``summary.json``). A model's reference profile is the training-data
profile its run recorded under :data:`~airflow_mlops_provider.lineage.TAG_TRAINING_PROFILE_URI`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import storage
from airflow_mlops_provider.data.profiles import PROFILE_FILE, SUMMARY_FILE, Profile, load_profile
from airflow_mlops_provider.exceptions import DatasetReadError, MissingEvidenceError
from airflow_mlops_provider.lineage import TAG_TRAINING_PROFILE_URI

if TYPE_CHECKING:
    from airflow_mlops_provider.data.drift import DriftReport, DriftThresholds
    from airflow_mlops_provider.hooks.mlflow import MlflowHook


def profile_files(uri: str) -> tuple[str, str]:
    """Return the URIs of ``profile.bin`` and ``summary.json`` for a profile URI or its directory."""
    text = str(uri).rstrip("/")
    base = text[: -len(PROFILE_FILE)].rstrip("/") if text.endswith(PROFILE_FILE) else text
    return storage.join(base, PROFILE_FILE), storage.join(base, SUMMARY_FILE)


def load_profile_uri(
    uri: str, *, conn_id: str | None = None, mlflow_conn_id: str = "mlflow_default"
) -> Profile:
    """Load the profile at ``uri`` (and its summary when present beside it)."""
    profile_uri, summary_uri = profile_files(uri)
    try:
        data = storage.read_bytes(profile_uri, conn_id, mlflow_conn_id)
    except FileNotFoundError as err:
        raise MissingEvidenceError(f"profile not found: {err}") from None
    try:
        summary = storage.read_bytes(summary_uri, conn_id, mlflow_conn_id).decode()
    except FileNotFoundError:
        summary = None
    try:
        return load_profile(data, summary)
    except ValueError as err:
        raise DatasetReadError(f"{profile_uri!r} is not a whylogs profile: {err}") from None


def model_reference_profile_uri(
    hook: MlflowHook, model_name: str, *, alias: str | None = None, version: str | None = None
) -> str | None:
    """Return the training-profile URI recorded for a model version, or ``None`` when there is no such version.

    Raises :class:`MissingEvidenceError` when the version exists but recorded no profile: a gate
    must not mistake missing evidence for "nothing to compare against".
    """
    from mlflow.exceptions import MlflowException

    client = hook.get_client()
    try:
        mv = (
            client.get_model_version_by_alias(model_name, alias)
            if alias
            else client.get_model_version(model_name, str(version))
        )
    except MlflowException as err:
        if getattr(err, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    label = f"model {model_name!r} " + (
        f"alias {alias!r} (version {mv.version})" if alias else f"version {mv.version}"
    )
    uri = (mv.tags or {}).get(TAG_TRAINING_PROFILE_URI)
    if not uri and mv.run_id:
        uri = client.get_run(mv.run_id).data.tags.get(TAG_TRAINING_PROFILE_URI)
    if not uri:
        raise MissingEvidenceError(
            f"{label} records no training-data profile (tag {TAG_TRAINING_PROFILE_URI!r} on the version or its run)"
        )
    return uri


def drift_between(
    target_uri: str,
    reference_uri: str,
    thresholds: DriftThresholds | Mapping[str, Any] | None = None,
    *,
    conn_id: str | None = None,
    mlflow_conn_id: str = "mlflow_default",
) -> tuple[DriftReport, Profile, Profile]:
    """Compare the profile at ``target_uri`` with the one at ``reference_uri``."""
    from airflow_mlops_provider.data.drift import DriftThresholds, compare

    if isinstance(thresholds, Mapping):
        thresholds = DriftThresholds.from_dict(thresholds)
    target = load_profile_uri(target_uri, conn_id=conn_id, mlflow_conn_id=mlflow_conn_id)
    reference = load_profile_uri(reference_uri, conn_id=conn_id, mlflow_conn_id=mlflow_conn_id)
    return compare(target.view, reference.view, thresholds), target, reference
