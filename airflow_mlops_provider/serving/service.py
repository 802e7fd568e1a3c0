"""The BentoML service of a registered MLflow model: validated, adaptively batched predictions.

``BentoPackageOperator`` builds every Bento from a copy of this subpackage (as the top-level package
``mlops_serving``, so a Bento needs nothing of Airflow or the provider) plus a ``bento_config.json``
at the root of the build context, naming the one model the Bento serves (a
tag in the BentoML model store, baked into the Bento) and the batching limits. Nothing in a request
can name another model or a path: the service loads that tag and nothing else.

A request is ``{"rows": [{column: value, ...}, ...]}``. Rows are checked against the MLflow model
signature before the model sees them: a missing column, an unknown column, a value of the wrong
type, a null in a required column, no rows or more than ``max_batch_size`` rows give HTTP 400 whose
``detail[].loc`` names the field, never a 500. A column the signature marks optional
(``required: false``) may be null or left out, and reaches the model as NaN (NaT for a datetime; see
:func:`.schema.row_model` for the integer and boolean columns MLflow cannot pass a null in).
Requests are batched across clients (at most ``max_batch_size`` rows, waiting at most
``max_latency_ms``); a request that cannot be answered within the latency budget is shed at once
with HTTP 503 ("process is overloaded") rather than queued without bound: clients retry with
backoff.

Every answer carries an ``X-Request-ID`` header: the client's own when it sent a sane one, a fresh
one otherwise (:mod:`.request_id`). Every answered prediction is captured, off the request path, with
that id, the model's lineage, the validated row and the output (:mod:`.capture`), unless capture is
off; the Bento's capture settings come from ``bento_config.json`` and each can be overridden by an
``MLOPS_CAPTURE_*`` environment variable at serve time.

``/livez``, ``/readyz`` and the Prometheus ``/metrics`` come from BentoML; ``/metrics`` also counts
captured and dropped rows. ``/model_info`` returns the lineage labels (registered model name and
version, MLflow run id, data fingerprint), the limits and the capture settings.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, cast

import bentoml
import yaml
from pydantic import BaseModel, Field

from .capture import HASH_SALT_ENV, CaptureConfig, CaptureWriter
from .request_id import RequestIdMiddleware, RequestRow, request_id_of
from .schema import input_columns, row_model, to_frame, to_json

CONFIG_FILE = "bento_config.json"
MLFLOW_MODEL_FOLDER = "mlflow_model"

# The build context (and the Bento's src/) holds this package and, next to it, the config.
CONFIG: dict[str, Any] = json.loads((Path(__file__).resolve().parents[1] / CONFIG_FILE).read_text())
MODEL_TAG: str = CONFIG["model_tag"]
MAX_BATCH_SIZE: int = int(CONFIG["max_batch_size"])
MAX_LATENCY_MS: int = int(CONFIG["max_latency_ms"])
LABELS: dict[str, str] = dict(CONFIG["labels"])
CAPTURE = CaptureConfig.from_mapping(CONFIG.get("capture")).with_env(os.environ)

COLUMNS = input_columns(
    yaml.safe_load(Path(bentoml.models.get(MODEL_TAG).path_of(MLFLOW_MODEL_FOLDER), "MLmodel").read_text())
)
if CAPTURE.enabled:
    CAPTURE.check_columns([c["name"] for c in COLUMNS])
Row = row_model(COLUMNS, base=RequestRow)
Rows = Annotated[list[Row], Field(min_length=1, max_length=MAX_BATCH_SIZE)]  # type: ignore[valid-type]


@bentoml.service(
    name=CONFIG["service_name"],
    workers=int(CONFIG["workers"]),
    traffic={"timeout": float(CONFIG["timeout_s"])},
)
class MlflowModelService:
    """Serve the one MLflow model baked into this Bento."""

    model_ref = bentoml.models.BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        import mlflow.pyfunc

        self.model = mlflow.pyfunc.load_model(self.model_ref.path_of(MLFLOW_MODEL_FOLDER))
        self.capture = self._capture_writer() if CAPTURE.enabled else None

    def _capture_writer(self) -> CaptureWriter:
        # Imported here: BentoML points prometheus_client at its multiprocess directory only in the
        # worker, after this module was imported.
        from prometheus_client import Counter

        counters = (
            Counter("mlops_capture_written_rows", "Captured predictions written to the capture store"),
            Counter(
                "mlops_capture_dropped_rows",
                "Captured predictions dropped (buffer full, store failing)",
                ["reason"],
            ),
        )
        try:
            raw = self.model.get_raw_model()
        except Exception:  # not every flavor has a raw model
            raw = None
        probabilities = None
        if hasattr(raw, "predict_proba"):

            def probabilities(frame: Any) -> tuple[list[Any], Any]:
                proba = raw.predict_proba(frame)
                return list(getattr(raw, "classes_", range(proba.shape[1]))), proba

        return CaptureWriter(
            CAPTURE,
            LABELS,
            COLUMNS,
            lambda rows: to_frame(rows, COLUMNS),
            probabilities,
            counters,
            hash_salt=os.environ.get(HASH_SALT_ENV),
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, rows: Rows) -> list[Any]:
        """Return one prediction per row, in order."""
        records = [r.model_dump() for r in cast("list[BaseModel]", rows)]
        predictions = to_json(self.model.predict(to_frame(records, COLUMNS)))
        if self.capture is not None:
            self.capture.record([request_id_of(r) for r in rows], records, predictions)
        return predictions

    @bentoml.on_shutdown
    def flush_capture(self) -> None:
        """Write every captured prediction still buffered (SIGTERM and every other graceful stop)."""
        if self.capture is not None:
            self.capture.close()

    @bentoml.api(route="/model_info")
    def model_info(self) -> dict[str, Any]:
        """Return the model's lineage labels and the request limits."""
        return {
            "model_tag": MODEL_TAG,
            "labels": LABELS,
            "max_batch_size": MAX_BATCH_SIZE,
            "max_latency_ms": MAX_LATENCY_MS,
            "columns": COLUMNS,
            "capture": CAPTURE.to_dict(),
        }


# ``@bentoml.service`` returns a Service wrapping the class; its type stubs still say the class.
cast("Any", MlflowModelService).add_asgi_middleware(RequestIdMiddleware)
