"""Candidates and their registration: what a candidate may be, registering it as a version, the registry state."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import lineage
from airflow_mlops_provider.exceptions import CandidateError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
from airflow_mlops_provider.promotion.common import _RUN_ID, LEASE_TAG, TAG_CANDIDATE_URI, _quote, _tag_value

# --- candidates and registration ---------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """A model to register: its source URI and the run that produced it (``None`` if unknown)."""

    model_uri: str
    run_id: str | None
    given: str


#: What ``candidate=`` accepts, for error messages.
CANDIDATE_FORMS = (
    "the training task's result as it is ({{ ti.xcom_pull(task_ids='train') }}: a dict with "
    "'run_id' or 'model_uri'), a 32-character MLflow run id, a runs:/<run id>/<path> URI, a "
    "models:/m-<id> logged-model URI, or an artifact URI with a scheme (s3://, file://, ...)"
)
# An artifact URI MLflow can load a model from: a scheme, then a location (mlflow-artifacts:/x, s3://x).
_ARTIFACT_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/.+")


def _mapping_text(text: str) -> Mapping[str, Any] | None:
    """Read a rendered dict back: JSON, or the Python repr a ``{{ ti.xcom_pull(...) }}`` template gives."""
    import ast

    for parse in (json.loads, ast.literal_eval):
        try:
            value = parse(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            continue
        return value if isinstance(value, Mapping) else None
    return None


def resolve_candidate(client: MlflowClient, candidate: Any, model_artifact_path: str = "model") -> Candidate:
    """Resolve a run id, a ``runs:/`` or ``models:/m-…`` URI, or a training XCom dict to a :class:`Candidate`.

    The training result may arrive as a dict or rendered into a string by a template (its Python
    repr, or JSON); both are read back. MLflow 3 stores logged models as their own entities; a
    ``runs:/<run>/<name>`` URI is resolved to the run's logged model of that name, so the registered
    source loads anywhere. Anything else raises :class:`CandidateError` naming the accepted forms.
    """
    if isinstance(candidate, str) and candidate.strip().startswith("{"):
        parsed = _mapping_text(candidate.strip())
        if parsed is None:
            raise CandidateError(
                f"candidate {candidate[:300]!r} looks like a dict but does not parse; give {CANDIDATE_FORMS}"
            )
        candidate = parsed
    if isinstance(candidate, Mapping):
        given = candidate.get("model_uri") or candidate.get("run_id")
        if not given:
            raise CandidateError(
                f"candidate {dict(candidate)!r} has neither 'model_uri' nor 'run_id'; give {CANDIDATE_FORMS}"
            )
        return resolve_candidate(client, str(given), model_artifact_path)
    if not isinstance(candidate, str) or not candidate.strip():
        raise CandidateError(f"candidate {candidate!r} is not a model reference; give {CANDIDATE_FORMS}")
    text = candidate.strip()
    if _RUN_ID.match(text):
        text = f"runs:/{text}/{model_artifact_path}"
    if text.startswith("runs:/"):
        run_id, _, path = text.removeprefix("runs:/").partition("/")
        path = path.strip("/") or model_artifact_path
        run = client.get_run(run_id)
        outputs = run.outputs.model_outputs if run.outputs else []
        for output in outputs:
            logged = client.get_logged_model(output.model_id)
            if logged.name == path:
                return Candidate(f"models:/{logged.model_id}", run_id, str(candidate))
        # A model logged as plain run artifacts (MLflow 2 style).
        return Candidate(f"{run.info.artifact_uri.rstrip('/')}/{path}", run_id, str(candidate))
    if text.startswith("models:/m-"):
        logged = client.get_logged_model(text.removeprefix("models:/").strip("/"))
        return Candidate(text, logged.source_run_id, str(candidate))
    if text.startswith("models:/"):
        raise CandidateError(
            f"candidate {text!r} is a registered model version; give the run id or the logged model URI "
            f"(models:/m-...) of the training run instead"
        )
    if not _ARTIFACT_URI.match(text):
        raise CandidateError(f"candidate {text[:300]!r} is not a model reference; give {CANDIDATE_FORMS}")
    return Candidate(text, None, str(candidate))


def model_kind_from_tags(run_tags: Mapping[str, str] | None) -> str | None:
    """The model's kind as its training run recorded it (``mlops.task_type``), or ``None``."""
    kind = (run_tags or {}).get(lineage.TAG_TASK_TYPE)
    return kind if kind in ("classification", "regression") else None


def model_kind_of(model: Any) -> str | None:
    """The kind of a loaded pyfunc model, from the estimator inside it; ``None`` when it cannot tell."""
    try:
        raw = model.get_raw_model()
    except Exception:
        return None
    from sklearn.base import is_classifier, is_regressor

    try:
        if is_regressor(raw):
            return "regression"
        if is_classifier(raw):
            return "classification"
    except Exception:  # not a scikit-learn estimator: its tags cannot be read
        pass
    return "classification" if hasattr(raw, "predict_proba") else None


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    """Create the registered model unless it exists."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, description="Managed by airflow-mlops-provider promotions.")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def register_candidate(
    client: MlflowClient,
    name: str,
    candidate: Candidate,
    *,
    tags: Mapping[str, str] | None = None,
    timeout_s: float = 300.0,
    poll_s: float = 1.0,
    log: logging.Logger | Any = None,
) -> tuple[ModelVersion, bool]:
    """Register ``candidate`` as a version of ``name`` and wait until it is READY.

    Idempotent: a version already registered from the same run and source is reused, so a retried
    task does not add versions. The look-up is a filtered search on the run id, never a listing.

    :param tags: Tags for a new version (set in the same request).
    :return: The version and whether it was created now.
    """
    ensure_registered_model(client, name)
    existing = None
    if candidate.run_id:
        found = client.search_model_versions(
            f"name = '{_quote(name)}' and run_id = '{candidate.run_id}'", max_results=50
        )
        existing = next((v for v in found if v.source == candidate.model_uri), None)
    if existing is not None:
        if log:
            log.info("Candidate %s is already version %s of %s", candidate.model_uri, existing.version, name)
        version, created = existing, False
    else:
        model_id = (
            candidate.model_uri.removeprefix("models:/")
            if candidate.model_uri.startswith("models:/m-")
            else None
        )
        version = client.create_model_version(
            name,
            candidate.model_uri,
            run_id=candidate.run_id,
            tags={**(tags or {}), TAG_CANDIDATE_URI: _tag_value(candidate.given)},
            model_id=model_id,
        )
        created = True
        if log:
            log.info("Registered %s as version %s of %s", candidate.model_uri, version.version, name)
    return wait_until_ready(client, name, str(version.version), timeout_s=timeout_s, poll_s=poll_s), created


def trained_version(
    client: MlflowClient, name: str, data_fingerprint: str, params: Mapping[str, Any], seed: int | str
) -> ModelVersion | None:
    """The newest version of ``name`` trained on ``data_fingerprint`` with ``params`` and ``seed``.

    Same data, parameters and seed give the same model, so a pipeline that finds one need not train
    again. Versions carry their run's lineage tags (see :func:`lineage_tags`); the look-up is one
    search filtered on the fingerprint tag, never a listing. Parameters compare as text, the way
    they arrive from templates.
    """
    found = client.search_model_versions(
        f"name = '{_quote(name)}' and tags.`{lineage.TAG_DATA_FINGERPRINT}` = '{_quote(data_fingerprint)}'",
        max_results=200,
    )
    wanted = {str(k): str(v) for k, v in params.items()}
    for version in sorted(found, key=lambda v: int(v.version), reverse=True):
        tags = version.tags or {}
        try:
            given = json.loads(tags.get(lineage.TAG_TRAINING_PARAMS, "null"))
        except ValueError:
            continue
        if (
            isinstance(given, dict)
            and {str(k): str(v) for k, v in given.items()} == wanted
            and tags.get(lineage.TAG_SEED) == str(seed)
        ):
            return version
    return None


def wait_until_ready(
    client: MlflowClient, name: str, version: str, *, timeout_s: float, poll_s: float = 1.0
) -> ModelVersion:
    """Poll until a version is READY; raise naming it on FAILED_REGISTRATION or after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        mv = client.get_model_version(name, version)
        if mv.status == "READY":
            return mv
        if mv.status == "FAILED_REGISTRATION":
            raise RuntimeError(f"{name} v{version} failed registration: {mv.status_message}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{name} v{version} is {mv.status}, not READY, after {timeout_s:g}s")
        time.sleep(poll_s)


@dataclass
class RegistryState:
    """What one read of the registered model says: aliases and the lease tag."""

    aliases: dict[str, str]
    lease: dict[str, Any] | None
    raw_lease: str | None


def read_state(client: MlflowClient, name: str) -> RegistryState:
    """Read aliases and lease in one call whose cost does not grow with the number of versions."""
    found = client.search_registered_models(filter_string=f"name = '{_quote(name)}'", max_results=1)
    model = next((m for m in found if m.name == name), None)
    if model is None:
        raise ValueError(f"registered model {name!r} does not exist")
    aliases = {str(k): str(v) for k, v in (model.aliases or {}).items()}
    raw = (model.tags or {}).get(LEASE_TAG)
    lease = None
    if raw:
        try:
            lease = json.loads(raw)
        except ValueError:
            lease = {"token": raw}
    return RegistryState(aliases, lease, raw)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """Return the version ``alias`` points at, or ``None`` when it is not set."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
