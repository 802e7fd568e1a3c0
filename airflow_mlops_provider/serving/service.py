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

A Bento may carry a second model (``bento_config.json``'s ``shadow``): it scores every request in
shadow, off the response path, or answers a canary share of them (:mod:`.shadow`).

``/livez``, ``/readyz`` and the Prometheus ``/metrics`` come from BentoML; ``/metrics`` also counts
the rows each model version answered and scored in shadow, and captured and dropped rows.
``/model_info`` returns the lineage labels (registered model name and version, MLflow run id, data
fingerprint), the limits, the capture settings and the shadow's labels and settings;
``/model_card/`` the model card of the served version, as it stood when the Bento was packaged.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Annotated, Any, cast

import bentoml
import yaml
from pydantic import BaseModel, Field

from .capture import HASH_SALT_ENV, CaptureConfig, CaptureWriter
from .request_id import RequestIdMiddleware, RequestRow, request_id_of
from .schema import input_columns, row_model, to_frame, to_json
from .shadow import ShadowConfig, ShadowScorer, canary_mask, check_compatible

logger = logging.getLogger("mlops_serving.service")

CONFIG_FILE = "bento_config.json"
#: How long, at shutdown, each shadow scorer may go on scoring what it holds.
SHADOW_CLOSE_TIMEOUT_S = 5.0
MLFLOW_MODEL_FOLDER = "mlflow_model"

# The build context (and the Bento's src/) holds this package and, next to it, the config.
CONFIG: dict[str, Any] = json.loads((Path(__file__).resolve().parents[1] / CONFIG_FILE).read_text())
MODEL_TAG: str = CONFIG["model_tag"]
MAX_BATCH_SIZE: int = int(CONFIG["max_batch_size"])
MAX_LATENCY_MS: int = int(CONFIG["max_latency_ms"])
LABELS: dict[str, str] = dict(CONFIG["labels"])
CAPTURE = CaptureConfig.from_mapping(CONFIG.get("capture")).with_env(os.environ)

SHADOW_BUILT: dict[str, Any] | None = CONFIG.get("shadow")
SHADOW_TAG: str | None = SHADOW_BUILT["model_tag"] if SHADOW_BUILT else None
SHADOW_LABELS: dict[str, str] = dict(SHADOW_BUILT["labels"]) if SHADOW_BUILT else {}
SHADOW = ShadowConfig.from_mapping(SHADOW_BUILT["settings"] if SHADOW_BUILT else {"enabled": False}).with_env(
    os.environ
)


def _columns(tag: str) -> list[dict[str, Any]]:
    mlmodel = Path(bentoml.models.get(tag).path_of(MLFLOW_MODEL_FOLDER), "MLmodel")
    return input_columns(yaml.safe_load(mlmodel.read_text()))


COLUMNS = _columns(MODEL_TAG)
if CAPTURE.enabled:
    CAPTURE.check_columns([c["name"] for c in COLUMNS])
SHADOW_COLUMNS = _columns(SHADOW_TAG) if SHADOW_TAG else []
if SHADOW_TAG and SHADOW.enabled:
    check_compatible(COLUMNS, SHADOW_COLUMNS)
    SHADOW.check_columns([c["name"] for c in COLUMNS])
Row = row_model(COLUMNS, base=RequestRow)
Rows = Annotated[list[Row], Field(min_length=1, max_length=MAX_BATCH_SIZE)]  # type: ignore[valid-type]


#: The model card baked in at packaging (``BentoPackageOperator`` fetches it from the registry).
MODEL_CARD = Path(__file__).resolve().parents[1] / "model_card.html"


async def _model_card(request: Any) -> Any:
    from starlette.responses import HTMLResponse, PlainTextResponse

    if MODEL_CARD.is_file():
        return HTMLResponse(MODEL_CARD.read_text())
    return PlainTextResponse("no model card was packaged with this Bento", status_code=404)


def _model_card_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route("/", _model_card)])


@bentoml.asgi_app(_model_card_app(), path="/model_card")
@bentoml.service(
    name=CONFIG["service_name"],
    workers=int(CONFIG["workers"]),
    traffic={"timeout": float(CONFIG["timeout_s"])},
)
class MlflowModelService:
    """Serve the one MLflow model baked into this Bento."""

    model_ref = bentoml.models.BentoModel(MODEL_TAG)
    # BentoML bakes every BentoModel attribute of the service into the Bento.
    shadow_ref = bentoml.models.BentoModel(SHADOW_TAG) if SHADOW_TAG else None

    def __init__(self) -> None:
        import mlflow.pyfunc

        # Imported here: BentoML points prometheus_client at its multiprocess directory only in the
        # worker, after this module was imported.
        from prometheus_client import Counter

        self.model = mlflow.pyfunc.load_model(self.model_ref.path_of(MLFLOW_MODEL_FOLDER))
        version = LABELS.get("mlflow_model_version", "")
        self.served = Counter(
            "mlops_served_rows", "Rows answered, by the model version that answered", ["model_version"]
        )
        capture_counters = (
            Counter("mlops_capture_written_rows", "Captured predictions written to the capture store"),
            Counter(
                "mlops_capture_dropped_rows",
                "Captured predictions dropped (buffer full, store failing)",
                ["reason"],
            ),
        )
        self.capture = self._capture_writer(self.model, LABELS, capture_counters) if CAPTURE.enabled else None
        self.versions = {"champion": version}
        self.shadow_model: Any = None
        self.shadow: ShadowScorer | None = None  # the challenger scoring what the champion answered
        self.champion_shadow: ShadowScorer | None = None  # the champion scoring the canary's answers
        self.canary_fallbacks: Any = None
        if self.shadow_ref is None or not SHADOW.enabled:
            return
        if self.capture is None:
            logger.warning(
                "shadow %s not scored: capture is off, so nothing would record its scores", SHADOW_TAG
            )
            return
        try:
            self.shadow_model = mlflow.pyfunc.load_model(self.shadow_ref.path_of(MLFLOW_MODEL_FOLDER))
        except Exception:  # the champion serves whatever becomes of its shadow
            logger.exception("shadow %s does not load: the champion serves alone", SHADOW_TAG)
            return
        self.versions["shadow"] = SHADOW_LABELS.get("mlflow_model_version", "")
        shadow_counters = (
            Counter("mlops_shadow_scored_rows", "Rows scored in shadow, by model version", ["model_version"]),
            Counter(
                "mlops_shadow_dropped_rows",
                "Rows the shadow did not score (queue full, model raised)",
                ["model_version", "reason"],
            ),
        )
        self.canary_fallbacks = Counter(
            "mlops_canary_fallback_rows", "Canary rows answered by the champion because the challenger raised"
        )
        shadow_writer = self._capture_writer(
            self.shadow_model, SHADOW_LABELS, capture_counters, SHADOW_COLUMNS
        )
        self.shadow = ShadowScorer(
            lambda rows: to_json(self.shadow_model.predict(to_frame(rows, SHADOW_COLUMNS))),
            shadow_writer,
            SHADOW.max_queue_rows,
            shadow_counters,
            {"model_version": self.versions["shadow"]},
            name=f"v{self.versions['shadow']}",
        )
        if SHADOW.canary_share > 0:
            self.champion_shadow = ShadowScorer(
                lambda rows: to_json(self.model.predict(to_frame(rows, COLUMNS))),
                self.capture,
                SHADOW.max_queue_rows,
                shadow_counters,
                {"model_version": version},
                name=f"v{version}",
            )

    @staticmethod
    def _capture_writer(
        model: Any,
        labels: dict[str, str],
        counters: tuple[Any, Any],
        model_columns: list[dict[str, Any]] = COLUMNS,
    ) -> CaptureWriter:
        """A writer of the validated rows (the champion's columns) and ``model``'s outputs.

        :param model_columns: The columns ``model`` takes, in its order (a shadow's may be fewer, or
            ordered otherwise); its class probabilities are computed on those.
        """
        try:
            raw = model.get_raw_model()
        except Exception:  # not every flavor has a raw model
            raw = None
        probabilities = None
        if hasattr(raw, "predict_proba"):
            names = [c["name"] for c in model_columns]

            def probabilities(frame: Any) -> tuple[list[Any], Any]:
                proba = raw.predict_proba(frame.reindex(columns=names))
                return list(getattr(raw, "classes_", range(proba.shape[1]))), proba

        return CaptureWriter(
            CAPTURE,
            labels,
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
        ids = [request_id_of(r) for r in rows]
        answered_at = time.time()
        canary = canary_mask(SHADOW, ids, records) if self.champion_shadow is not None else None
        if not canary or not any(canary):
            predictions = to_json(self.model.predict(to_frame(records, COLUMNS)))
            self.served.labels(model_version=self.versions["champion"]).inc(len(records))
            if self.capture is not None:
                self.capture.record(ids, records, predictions, captured_at=answered_at)
            if self.shadow is not None:
                self.shadow.submit(ids, records, answered_at)
            return predictions
        return self._predict_with_canary(ids, records, canary, answered_at)

    def _predict_with_canary(
        self, ids: list[str], records: list[dict[str, Any]], canary: list[bool], answered_at: float
    ) -> list[Any]:
        """Answer the canary rows with the challenger and the rest with the champion; each model
        scores the other's rows in shadow."""
        shadow, champion_shadow, capture = self.shadow, self.champion_shadow, self.capture
        if shadow is None or champion_shadow is None or capture is None:
            raise RuntimeError("a canary needs the shadow scorers and capture")
        groups: dict[bool, list[int]] = {True: [], False: []}
        for i, is_canary in enumerate(canary):
            groups[is_canary].append(i)
        predictions: list[Any] = [None] * len(records)
        # The champion's rows first: they never wait for the challenger.
        for is_canary in (False, True):
            index = groups[is_canary]
            if not index:
                continue
            part_ids, part = [ids[i] for i in index], [records[i] for i in index]
            answered = None
            if is_canary:
                try:
                    answered = to_json(self.shadow_model.predict(to_frame(part, SHADOW_COLUMNS)))
                    if len(answered) != len(part):
                        raise ValueError(f"{len(answered)} predictions for {len(part)} rows")
                except Exception as err:  # the champion answers instead
                    logger.warning(
                        "canary v%s failed, the champion answers: %s", self.versions["shadow"], err
                    )
                    self.canary_fallbacks.inc(len(part))
                    answered = None
            if answered is not None:
                self.served.labels(model_version=self.versions["shadow"]).inc(len(part))
                shadow.writer.record(part_ids, part, answered, captured_at=answered_at)
                champion_shadow.submit(part_ids, part, answered_at)
            else:
                answered = to_json(self.model.predict(to_frame(part, COLUMNS)))
                self.served.labels(model_version=self.versions["champion"]).inc(len(part))
                capture.record(part_ids, part, answered, captured_at=answered_at)
                shadow.submit(part_ids, part, answered_at)
            for i, prediction in zip(index, answered, strict=True):
                predictions[i] = prediction
        return predictions

    @bentoml.on_shutdown
    def flush_capture(self) -> None:
        """Score what the shadows hold, then write every captured prediction still buffered (SIGTERM
        and every other graceful stop)."""
        # The scorers get a short deadline, so that the writers' flush fits the pod's grace period
        # (45 s in the chart) even when a shadow is slow; what they have not scored by then is lost.
        for scorer in (self.shadow, self.champion_shadow):
            if scorer is not None:
                scorer.close(timeout=SHADOW_CLOSE_TIMEOUT_S)
        if self.capture is not None:
            self.capture.close()
        if self.shadow is not None:
            self.shadow.writer.close()

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
            "shadow": (
                {
                    "model_tag": SHADOW_TAG,
                    "labels": SHADOW_LABELS,
                    "scoring": self.shadow is not None,
                    **SHADOW.to_dict(),
                }
                if SHADOW_TAG
                else None
            ),
        }


# ``@bentoml.service`` returns a Service wrapping the class; its type stubs still say the class.
cast("Any", MlflowModelService).add_asgi_middleware(RequestIdMiddleware)
