"""Evaluation: the evidence a candidate must carry, its evaluation data and model, and its latency."""

from __future__ import annotations

import os
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops_provider import lineage
from airflow_mlops_provider.gates import EvidenceRequirement, GateResult, LatencyBudget

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
from airflow_mlops_provider.promotion.common import is_unreachable

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
