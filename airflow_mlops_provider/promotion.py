"""The promotion engine behind the registry operators: register, evaluate, serialise, commit, record.

Airflow-free on purpose (it takes an ``MlflowClient`` and a logger), so the operators stay thin and
the benchmark and tests drive the same code.

Concurrency. MLflow sets an alias last-writer-wins and has no compare-and-set. Promotions and
rollbacks of one registered model are serialised by :class:`RegistryLease`, a lease kept in a
registered-model tag and taken with Fischer's timed mutual-exclusion protocol:

1. wait until the tag is free (absent, or stale: unchanged for ``ttl_s`` on the waiter's own clock,
   or past its expiry by more than ``ttl_s`` on the wall clock);
2. write one's own random token, and check the read-to-write-done time stayed under ``max_write_s``
   (if not, the attempt does not count and the token is left to go stale);
3. wait ``settle_s`` (> ``max_write_s``), read again, and enter only if one's own token is still there.

Any contender that saw the tag free before our write wrote its own token within ``max_write_s`` of
that read, so before our second read: we see its token and back off. At most one holder at a time,
without clocks agreeing across machines. Inside, the holder re-checks the token before every alias
write (fail closed if it was lost), writes a write-ahead *intent* (aliases before and after) into the
lease, then writes ``previous_champion`` first and ``champion`` last (the commit point), re-reads
both, and releases. Whoever next takes a lease whose holder died mid-commit finds its intent and
rolls it forward (``champion`` already moved) or back (it did not).

Reads use ``search_registered_models`` with a name filter and ``get_model_version_by_alias``: no
call here lists a model's versions, so the cost of a promotion does not grow with their number.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import lineage
from airflow_mlops_provider.exceptions import CandidateError, MlflowConnectionError, PromotionConflict
from airflow_mlops_provider.gates import EvidenceRequirement, GateResult, LatencyBudget

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"

#: Registered-model tag holding the promotion lease (JSON: token, owner, expiry, intent).
LEASE_TAG = "mlops.promotion.lease"
# Model-version audit tags.
TAG_CANDIDATE_URI = "mlops.promotion.candidate_uri"
TAG_DECISION = "mlops.promotion.decision"
TAG_DECIDED_AT = "mlops.promotion.decided_at"
TAG_REASONS = "mlops.promotion.reasons"
TAG_GATES = "mlops.promotion.gates"
TAG_METRICS = "mlops.promotion.metrics"
TAG_CHAMPION_METRICS = "mlops.promotion.champion_metrics"
#: The candidate's per-group figures and disparities, per fairness gate (JSON).
TAG_FAIRNESS = "mlops.promotion.fairness"
TAG_EVALUATED_AGAINST = "mlops.promotion.evaluated_against_version"
TAG_PREVIOUS_CHAMPION = "mlops.promotion.previous_champion_version"
TAG_PROMOTED_BY = "mlops.promotion.promoted_by"
TAG_SUPERSEDED_BY = "mlops.promotion.superseded_by_version"
TAG_SUPERSEDED_AT = "mlops.promotion.superseded_at"
TAG_APPROVAL = "mlops.approval.decision"
TAG_APPROVED_BY = "mlops.approval.by"
TAG_APPROVED_AT = "mlops.approval.at"
TAG_DRIFT_SUMMARY = "mlops.promotion.drift_summary"
TAG_DAG_RUN = "mlops.promotion.dag_run"
TAG_ROLLED_BACK_AT = "mlops.rollback.rolled_back_at"
TAG_ROLLED_BACK_TO = "mlops.rollback.replaced_by_version"
TAG_ROLLBACK_REASON = "mlops.rollback.reason"
TAG_ROLLBACK_BY = "mlops.rollback.by"
TAG_RESTORED_AT = "mlops.rollback.restored_at"
TAG_RESTORED_FROM = "mlops.rollback.restored_from_version"
TAG_STATUS = "mlops.status"

#: Model-version tag values are kept under this many characters (SQL stores' column limits vary).
MAX_TAG_VALUE = 5000
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def utcnow_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _tag_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_TAG_VALUE else text[: MAX_TAG_VALUE - 3] + "..."


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def is_unreachable(err: BaseException) -> bool:
    """Whether ``err`` means MLflow could not be reached (as opposed to a refusal or a bad request)."""
    import requests

    text = str(err)
    return isinstance(
        err, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)
    ) or any(
        marker in text
        for marker in ("Max retries exceeded", "Connection refused", "ConnectionError", "Read timed out")
    )


@contextmanager
def translate_unreachable(tracking_uri: str, doing: str) -> Iterator[None]:
    """Turn an unreachable-server error into :class:`MlflowConnectionError` naming what was being done."""
    try:
        yield
    except (MlflowConnectionError, PromotionConflict):
        raise
    except Exception as err:
        if is_unreachable(err):
            raise MlflowConnectionError(
                f"MLflow at {tracking_uri} became unreachable while {doing}: {type(err).__name__}: "
                f"{str(err)[:300]}"
            ) from err
        raise


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


# --- evidence, evaluation, latency -------------------------------------------------------------


def _readable(client: MlflowClient, uri: str, run_id: str | None) -> str | None:
    """Return ``None`` when the evidence at ``uri`` can be read, else why not."""
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme in ("", "file") and (uri.startswith("/") or parsed.scheme == "file"):
        path = Path(urllib.parse.unquote(parsed.path) if parsed.scheme == "file" else uri)
        if not path.exists():
            return f"{uri} does not exist"
        if path.is_file():
            try:
                with open(path, "rb") as handle:
                    handle.read(1)
            except OSError as err:
                return f"{uri} cannot be read: {err}"
        return None
    if not parsed.scheme:
        if not run_id:
            return f"{uri} is relative, and the candidate has no run to resolve it against"
        uri = f"runs:/{run_id}/{uri.lstrip('/')}"
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="mlops-evidence-") as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=uri,
                dst_path=tmp,
                tracking_uri=client.tracking_uri,
                registry_uri=getattr(client, "_registry_uri", None) or client.tracking_uri,
            )
        except Exception as err:
            if is_unreachable(err):
                raise
            return f"{uri} cannot be fetched: {type(err).__name__}: {str(err)[:200]}"
        if not os.path.exists(local) or (os.path.isdir(local) and not os.listdir(local)):
            return f"{uri} names no artifact"
    return None


def check_evidence(
    client: MlflowClient, run_tags: Mapping[str, str] | None, run_id: str | None, req: EvidenceRequirement
) -> list[GateResult]:
    """Check the candidate run's evidence tags and the files they name."""
    results: list[GateResult] = []
    if not req.enabled:
        return results
    tags = run_tags or {}
    for wanted, key, label in (
        (req.validation_report, lineage.TAG_VALIDATION_REPORT_URI, "validation_report"),
        (req.training_profile, lineage.TAG_TRAINING_PROFILE_URI, "training_profile"),
    ):
        if not wanted:
            continue
        gate = f"evidence:{label}"
        uri = tags.get(key)
        if not uri:
            where = f"run {run_id}" if run_id else "the candidate (no training run)"
            results.append(GateResult(gate, "failed", "missing", f"tag {key} set", f"not set on {where}"))
            continue
        problem = _readable(client, uri, run_id) if req.check_readable else None
        if problem:
            results.append(GateResult(gate, "failed", "unreadable", f"readable {key}", problem))
        else:
            results.append(GateResult(gate, "passed", uri, f"readable {key}"))
    if req.validation_status:
        status = tags.get(lineage.TAG_VALIDATION_STATUS)
        required = f"set and not one of {list(req.failed_statuses)}"
        if not status:
            results.append(GateResult("evidence:validation_status", "failed", "missing", required))
        elif status.lower() in req.failed_statuses:
            results.append(GateResult("evidence:validation_status", "failed", status, required))
        else:
            results.append(GateResult("evidence:validation_status", "passed", status, required))
    return results


def load_frame(uri: str) -> pd.DataFrame:
    """Read evaluation data with the provider's one dataset reader (NumPy dtypes, as training has)."""
    from airflow_mlops_provider.data.datasets import read_dataframe

    return read_dataframe(uri, numpy_dtypes=True)


def data_fingerprint(uri: str) -> str | None:
    """Content fingerprint of local evaluation data, ``None`` for remote URIs."""
    if urllib.parse.urlsplit(uri).scheme not in ("", "file"):
        return None
    return lineage.data_fingerprint(uri)


def make_scorer(model: Any) -> Callable[[Any], Any]:
    """Return ``callable(frame) -> positive-class scores`` for a loaded pyfunc model.

    The scikit-learn flavour's pyfunc ``predict`` returns labels; AUC needs scores, so a raw model
    with ``predict_proba`` is asked for those. Any other model's ``predict`` output is taken as
    scores (a probability column, or the last column of a 2-D output).
    """
    from airflow_mlops_provider.gates import scores_from_output

    raw = None
    try:
        raw = model.get_raw_model()
    except Exception:
        raw = None
    if raw is not None and hasattr(raw, "predict_proba"):
        return lambda frame: scores_from_output(raw.predict_proba(frame))
    return lambda frame: scores_from_output(model.predict(frame))


def load_model(client: MlflowClient, model_uri: str, dst_path: str) -> Any:
    """Load a pyfunc model through ``client``'s tracking and registry URIs (not MLflow's global ones).

    :param dst_path: Where the artifacts go; keep it until the model is no longer used.
    """
    import mlflow.artifacts
    import mlflow.pyfunc

    local = mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri,
        dst_path=dst_path,
        tracking_uri=client.tracking_uri,
        registry_uri=getattr(client, "_registry_uri", None) or client.tracking_uri,
    )
    return mlflow.pyfunc.load_model(local)


def measure_latency(model: Any, frame: pd.DataFrame, budget: LatencyBudget) -> dict[str, float]:
    """Time ``pyfunc.predict`` (the serving path) on a batch of the first ``sample_rows`` rows."""
    import numpy as np

    batch = frame.head(budget.sample_rows)
    for _ in range(budget.warmup):
        model.predict(batch)
    timings = []
    for _ in range(budget.repeats):
        start = time.perf_counter()
        model.predict(batch)
        timings.append((time.perf_counter() - start) * 1000)
    return {
        "p50_ms": round(float(np.percentile(timings, 50)), 3),
        "p95_ms": round(float(np.percentile(timings, 95)), 3),
        "rows": float(len(batch)),
    }


# --- the lease ---------------------------------------------------------------------------------


_WRITE_CONFLICT = re.compile(r"unique constraint|integrityerror|duplicate key", re.IGNORECASE)


def _is_write_conflict(err: Exception) -> bool:
    """Whether a tag write failed because a concurrent writer inserted the same row first.

    MLflow's SQL store creates a tag with a read-then-insert; two first writes of one tag race, and the
    loser gets the database's uniqueness error (SQLite ``UNIQUE constraint``, PostgreSQL ``duplicate
    key``) back as a ``RestException``. Its write did not land.
    """
    return _WRITE_CONFLICT.search(str(err)) is not None


@dataclass(frozen=True)
class LeaseSettings:
    """Timing of :class:`RegistryLease`.

    :param ttl_s: A lease unchanged this long (on the waiter's clock) is stale and may be broken; a
        holder gives up its commit when it has held the lease this long.
    :param max_write_s: An acquisition whose read-to-write-done time exceeds this does not count.
    :param settle_s: Wait between writing one's token and checking it; must exceed ``max_write_s``.
    :param acquire_timeout_s: Give up acquiring after this long.
    :param poll_s: Wait between reads while the lease is held by someone else.
    """

    ttl_s: float = 60.0
    max_write_s: float = 2.0
    settle_s: float = 2.5
    acquire_timeout_s: float = 300.0
    poll_s: float = 0.5

    def __post_init__(self) -> None:
        if self.settle_s <= self.max_write_s:
            raise ValueError(
                f"lease settle_s {self.settle_s} must exceed max_write_s {self.max_write_s} "
                f"(Fischer's protocol needs the wait to outlast any contender's write)"
            )
        if self.ttl_s <= self.settle_s:
            raise ValueError(f"lease ttl_s {self.ttl_s} must exceed settle_s {self.settle_s}")


@dataclass
class RegistryLease:
    """A per-model mutual-exclusion lease in a registered-model tag (see the module docstring)."""

    client: MlflowClient
    name: str
    owner: str
    settings: LeaseSettings = field(default_factory=LeaseSettings)
    log: Any = None
    token: str | None = None
    acquired_at: float = 0.0
    #: The lease this one replaced when it was stale (holds a dead holder's intent, if any).
    broken: dict[str, Any] | None = None

    def _write(self, token: str, intent: dict[str, Any] | None = None) -> None:
        now = time.time()
        value = {
            "token": token,
            "owner": self.owner,
            "written_at": now,
            "expires_at": now + self.settings.ttl_s,
        }
        if intent is not None:
            value["intent"] = intent
        self.client.set_registered_model_tag(self.name, LEASE_TAG, json.dumps(value))

    def acquire(self) -> RegistryLease:
        s = self.settings
        deadline = time.monotonic() + s.acquire_timeout_s
        seen_raw: str | None = None
        seen_since = 0.0
        while True:
            if time.monotonic() > deadline:
                holder = read_state(self.client, self.name).lease or {}
                raise PromotionConflict(
                    f"could not take the promotion lease on {self.name!r} within {s.acquire_timeout_s:g}s; "
                    f"held by {holder.get('owner', 'unknown')!r}"
                )
            started = time.monotonic()
            state = read_state(self.client, self.name)
            if state.raw_lease is not None:
                if state.raw_lease != seen_raw:
                    seen_raw, seen_since = state.raw_lease, started
                lease = state.lease or {}
                wall_stale = time.time() > float(lease.get("expires_at", 0)) + s.ttl_s
                if not wall_stale and started - seen_since < s.ttl_s:
                    time.sleep(s.poll_s * (0.5 + random.random()))
                    continue
                if self.log:
                    self.log.warning(
                        "Breaking a stale promotion lease on %s held by %r", self.name, lease.get("owner")
                    )
            token = uuid.uuid4().hex
            try:
                self._write(token)
            except Exception as err:
                if not _is_write_conflict(err):
                    raise
                # Two contenders created the tag at once and the store kept the other one's row.
                if self.log:
                    self.log.info("Lease write on %s lost a race; re-reading", self.name)
                time.sleep(s.poll_s * (0.5 + random.random()))
                continue
            if time.monotonic() - started > s.max_write_s:
                # Our write may land after another contender checked its own: we must not enter.
                # The token stays and goes stale; deleting it could free a lease someone holds.
                if self.log:
                    self.log.warning("Lease write on %s took over %ss; retrying", self.name, s.max_write_s)
                time.sleep(s.poll_s * (0.5 + random.random()))
                continue
            time.sleep(s.settle_s)
            again = read_state(self.client, self.name)
            if (again.lease or {}).get("token") == token:
                self.token, self.acquired_at = token, time.monotonic()
                self.broken = state.lease
                if self.log:
                    self.log.info("Took the promotion lease on %s", self.name)
                return self
            time.sleep(s.poll_s * (0.5 + random.random()))

    def check(self) -> None:
        """Raise :class:`PromotionConflict` unless this process still holds the lease."""
        if self.token is None:
            raise PromotionConflict(f"promotion lease on {self.name!r} was never taken")
        if time.monotonic() - self.acquired_at > self.settings.ttl_s - self.settings.settle_s:
            raise PromotionConflict(
                f"promotion lease on {self.name!r} held longer than its ttl {self.settings.ttl_s:g}s; "
                f"giving up rather than racing whoever breaks it"
            )
        current = read_state(self.client, self.name).lease or {}
        if current.get("token") != self.token:
            raise PromotionConflict(
                f"lost the promotion lease on {self.name!r} to {current.get('owner', 'unknown')!r}; "
                f"nothing further was written"
            )

    def record_intent(self, intent: dict[str, Any]) -> None:
        """Write the aliases before and after the change into the lease, ahead of changing them."""
        self.check()
        assert self.token is not None
        self._write(self.token, intent)

    def release(self) -> None:
        if self.token is None:
            return
        try:
            current = read_state(self.client, self.name).lease or {}
            if current.get("token") == self.token:
                self.client.delete_registered_model_tag(self.name, LEASE_TAG)
        finally:
            self.token = None

    def __enter__(self) -> RegistryLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        except Exception as err:
            # The lease goes stale after ttl_s; failing the task over the release would hide why.
            if self.log:
                self.log.warning("Could not release the promotion lease on %s: %s", self.name, err)


def _set_alias(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    if version is None:
        from mlflow.exceptions import MlflowException

        try:
            client.delete_registered_model_alias(name, alias)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
    else:
        client.set_registered_model_alias(name, alias, version)


def repair_interrupted(client: MlflowClient, name: str, lease: RegistryLease, log: Any = None) -> str | None:
    """Finish or undo an alias change whose holder died mid-commit, from the intent it left.

    :return: What was done, for the log and the decision record, or ``None``.
    """
    intent = (lease.broken or {}).get("intent")
    if not intent:
        return None
    state = read_state(client, name).aliases
    champ_before, champ_after = intent["champion"]
    prev_before, prev_after = intent["previous_champion"]
    current = state.get(CHAMPION)
    if current == champ_after and state.get(PREVIOUS_CHAMPION) != prev_after:
        lease.check()
        _set_alias(client, name, PREVIOUS_CHAMPION, prev_after)
        done = f"rolled forward an interrupted change: previous_champion -> {prev_after}"
    elif current == champ_before and state.get(PREVIOUS_CHAMPION) != prev_before:
        lease.check()
        _set_alias(client, name, PREVIOUS_CHAMPION, prev_before)
        done = f"rolled back an interrupted change: previous_champion -> {prev_before}"
    else:
        return None
    if log:
        log.warning("%s: %s", name, done)
    return done


def move_champion(
    client: MlflowClient,
    name: str,
    lease: RegistryLease,
    *,
    expected_champion: str | None,
    new_champion: str,
    new_previous: str | None,
) -> dict[str, str | None]:
    """Under a held lease: verify, set ``previous_champion`` then ``champion``, and re-read.

    :param expected_champion: The champion the caller's decision was based on; if the alias points
        elsewhere now, nothing is written and :class:`PromotionConflict` is raised.
    """
    state = read_state(client, name).aliases
    current, previous = state.get(CHAMPION), state.get(PREVIOUS_CHAMPION)
    if current == new_champion and previous == new_previous:
        return {"champion_version": new_champion, "previous_champion_version": new_previous}
    if current != expected_champion:
        raise PromotionConflict(
            f"champion of {name!r} moved since evaluation: was "
            f"{'v' + expected_champion if expected_champion else 'unset'}, now "
            f"{'v' + current if current else 'unset'}; not promoting v{new_champion} (evaluate again)"
        )
    lease.record_intent({"champion": [current, new_champion], "previous_champion": [previous, new_previous]})
    if previous != new_previous:
        lease.check()
        _set_alias(client, name, PREVIOUS_CHAMPION, new_previous)
    lease.check()
    client.set_registered_model_alias(name, CHAMPION, new_champion)
    after = read_state(client, name).aliases
    if after.get(CHAMPION) != new_champion or after.get(PREVIOUS_CHAMPION) != new_previous:
        raise PromotionConflict(
            f"aliases of {name!r} changed under the lease (a writer that does not take it?): expected "
            f"champion v{new_champion}, previous_champion {new_previous}; found {after}"
        )
    return {"champion_version": new_champion, "previous_champion_version": new_previous}


def set_version_tags(client: MlflowClient, name: str, version: str, tags: Mapping[str, Any]) -> None:
    """Set the tags that differ from the version's current ones (``None`` values are left out).

    MLflow has no batch call for version tags, and each write costs the server a look at the whole
    registered model, so unchanged values are not written again.
    """
    current = client.get_model_version(name, version).tags or {}
    for key, value in tags.items():
        if value is None:
            continue
        text = _tag_value(value)
        if current.get(key) != text:
            client.set_model_version_tag(name, version, key, text)


def lineage_tags(run_tags: Mapping[str, str] | None) -> dict[str, str]:
    """The run's provider tags worth copying to the version (lineage; evidence URIs included)."""
    return {k: v for k, v in (run_tags or {}).items() if k.startswith(lineage.TAG_PREFIX)}


def describe_decision(decision: Mapping[str, Any]) -> str:
    """Render a decision as the Markdown description of a model version."""
    lines = [
        f"**{decision.get('decision', 'unknown').upper()}** at {decision.get('decided_at', '')}",
        "",
        f"- candidate: `{decision.get('model_uri')}` (run `{decision.get('run_id')}`)",
        f"- evaluated against champion: {_v(decision.get('evaluated_against_version'))}",
        f"- evaluation data: `{decision.get('eval_data_uri')}` ({decision.get('eval_data_fingerprint')})",
        f"- DAG run: {decision.get('dag_id')} / {decision.get('dag_run_id')}",
    ]
    if decision.get("approval"):
        approval = decision["approval"]
        lines.append(
            f"- approval: {approval.get('decision')} by {approval.get('by')} at {approval.get('at')}"
        )
    if decision.get("champion_version"):
        lines.append(
            f"- champion: {_v(decision.get('champion_version'))}, previous_champion: "
            f"{_v(decision.get('previous_champion_version'))}"
        )
    lines += ["", "| gate | status | observed | required | detail |", "|---|---|---|---|---|"]
    for g in decision.get("gates", []):
        lines.append(f"| {g['gate']} | {g['status']} | {g['observed']} | {g['required']} | {g['detail']} |")
    if decision.get("reasons"):
        lines += ["", "Reasons:", *[f"- {r}" for r in decision["reasons"]]]
    return "\n".join(lines)


def _v(version: Any) -> str:
    return f"v{version}" if version else "none"


def record_decision(
    client: MlflowClient,
    name: str,
    version: str,
    decision: Mapping[str, Any],
    extra_tags: Mapping[str, Any] | None = None,
) -> None:
    """Write a decision to the model version: tags and a Markdown description."""
    run = "/".join(str(decision.get(k)) for k in ("dag_id", "dag_run_id", "task_id"))
    tags: dict[str, Any] = {
        TAG_DECISION: decision.get("decision"),
        TAG_DECIDED_AT: decision.get("decided_at"),
        TAG_GATES: {
            g["gate"]: f"{g['status']}: observed {g['observed']}, required {g['required']}"
            for g in decision.get("gates", [])
        }
        or None,
        TAG_METRICS: (decision.get("metrics") or {}).get("candidate"),
        TAG_CHAMPION_METRICS: (decision.get("metrics") or {}).get("champion"),
        TAG_FAIRNESS: (decision.get("metrics") or {}).get("fairness") or None,
        TAG_EVALUATED_AGAINST: decision.get("evaluated_against_version") or "none",
        TAG_REASONS: "; ".join(decision.get("reasons", [])) or None,
        lineage.TAG_EVAL_DATA_URI: decision.get("eval_data_uri"),
        lineage.TAG_EVAL_DATA_FINGERPRINT: decision.get("eval_data_fingerprint"),
        TAG_DAG_RUN: run if decision.get("dag_run_id") else None,
        TAG_DRIFT_SUMMARY: decision.get("drift_summary") or None,
        **(extra_tags or {}),
    }
    set_version_tags(client, name, version, tags)
    client.update_model_version(name, version, description=describe_decision(decision)[:20000])
    from airflow_mlops_provider.model_card import write_card

    try:
        write_card(client, name, version, decision)
    except Exception as err:
        if is_unreachable(err):
            raise
        # The decision stands and is recorded; a card that cannot be written is said, loudly.
        logging.getLogger(__name__).error("Could not write the model card of %s v%s: %s", name, version, err)
