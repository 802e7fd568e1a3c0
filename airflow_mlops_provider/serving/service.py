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

``/livez``, ``/readyz`` and the Prometheus ``/metrics`` come from BentoML. ``/model_info`` returns the
lineage labels (registered model name and version, MLflow run id, data fingerprint) and the limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, cast

import bentoml
import yaml
from pydantic import BaseModel, Field

from .schema import input_columns, row_model, to_frame, to_json

CONFIG_FILE = "bento_config.json"
MLFLOW_MODEL_FOLDER = "mlflow_model"

# The build context (and the Bento's src/) holds this package and, next to it, the config.
CONFIG: dict[str, Any] = json.loads((Path(__file__).resolve().parents[1] / CONFIG_FILE).read_text())
MODEL_TAG: str = CONFIG["model_tag"]
MAX_BATCH_SIZE: int = int(CONFIG["max_batch_size"])
MAX_LATENCY_MS: int = int(CONFIG["max_latency_ms"])
LABELS: dict[str, str] = dict(CONFIG["labels"])

COLUMNS = input_columns(
    yaml.safe_load(Path(bentoml.models.get(MODEL_TAG).path_of(MLFLOW_MODEL_FOLDER), "MLmodel").read_text())
)
Row = row_model(COLUMNS)
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

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, rows: Rows) -> list[Any]:
        """Return one prediction per row, in order."""
        return to_json(
            self.model.predict(to_frame([r.model_dump() for r in cast("list[BaseModel]", rows)], COLUMNS))
        )

    @bentoml.api(route="/model_info")
    def model_info(self) -> dict[str, Any]:
        """Return the model's lineage labels and the request limits."""
        return {
            "model_tag": MODEL_TAG,
            "labels": LABELS,
            "max_batch_size": MAX_BATCH_SIZE,
            "max_latency_ms": MAX_LATENCY_MS,
            "columns": COLUMNS,
        }
