"""Inference capture: every prediction a Bento makes, written off the request path to Parquet.

The request path only appends the batch (request ids, validated rows, predictions, a timestamp) to a
bounded in-memory buffer. A background thread flushes the buffer when it holds ``flush_rows`` rows
or every ``flush_interval_s``, and once more when the server shuts down (SIGTERM), so every row
whose prediction was answered is written. When the buffer is full, or the store fails, the
prediction is still answered: the rows are dropped, counted in ``/metrics``
(``mlops_capture_dropped_rows_total{reason}``) and the log says why at most once a minute.

Files are Hive-partitioned Parquet, one file per flush and partition::

    <uri>/model=<name>/version=<version>/date=<YYYY-MM-DD>/part-<id>.parquet

``<uri>`` is a local path or any fsspec URI (``s3://…``); a file is written under a name starting
with ``.`` (which readers skip) and renamed when complete. Columns: :data:`META_COLUMNS`, the
model's input columns (less the dropped ones; hashed ones as SHA-256 hex), ``prediction`` as made,
``served`` (``False`` where the model scored the request in shadow and another model answered it),
``score`` (the positive-class probability of a classifier, the value of a regressor) and
``proba_<class>`` per class when the model gives class probabilities. The schema metadata
(:data:`SCHEMA_METADATA_KEY`) names the input columns and which of them were dropped or hashed.
Probabilities are computed by the writer, in bulk, from the same rows and model: the request path
runs the model once.

Settings come from the Bento (``BentoPackageOperator(capture=…)``) and each may be overridden at
serve time by its environment variable (:data:`ENV`). Imports nothing from Airflow.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.parse
import uuid
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

logger = logging.getLogger("mlops_serving.capture")

#: Columns every capture file starts with.
META_COLUMNS = (
    "request_id",
    "captured_at",
    "model_name",
    "model_version",
    "model_run_id",
    "data_fingerprint",
)
PREDICTION_COLUMN = "prediction"
SCORE_COLUMN = "score"
#: Whether the row's prediction was the answer (``False``: scored in shadow, :mod:`.shadow`).
SERVED_COLUMN = "served"
PROBA_PREFIX = "proba_"
RESERVED_COLUMNS = frozenset({*META_COLUMNS, PREDICTION_COLUMN, SCORE_COLUMN, SERVED_COLUMN})
#: Hive partition keys of the capture layout.
PARTITION_KEYS = ("model", "version", "date")
#: Parquet schema metadata key: JSON ``{input_columns, dropped_columns, hashed_columns}`` of the file.
SCHEMA_METADATA_KEY = b"mlops.capture"

#: Setting -> the environment variable that overrides it at serve time.
ENV = {
    "enabled": "MLOPS_CAPTURE_ENABLED",
    "uri": "MLOPS_CAPTURE_URI",
    "sample_rate": "MLOPS_CAPTURE_SAMPLE_RATE",
    "drop_columns": "MLOPS_CAPTURE_DROP_COLUMNS",
    "hash_columns": "MLOPS_CAPTURE_HASH_COLUMNS",
    "flush_rows": "MLOPS_CAPTURE_FLUSH_ROWS",
    "flush_interval_s": "MLOPS_CAPTURE_FLUSH_INTERVAL_S",
    "max_buffer_rows": "MLOPS_CAPTURE_MAX_BUFFER_ROWS",
}
#: Key of the HMAC that hashes PII columns; a secret, so only ever read from the environment.
HASH_SALT_ENV = "MLOPS_CAPTURE_HASH_SALT"
#: How often, at most, the log repeats why rows are dropped.
LOG_INTERVAL_S = 60.0

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class CaptureConfigError(ValueError):
    """A capture setting has a value the writer cannot work with."""


@dataclass(frozen=True)
class CaptureConfig:
    """What to capture and where.

    :param enabled: Capture at all.
    :param uri: Root of the capture store: a local path or an fsspec URI. Required when enabled.
    :param sample_rate: Share of requests captured, 0..1; decided per request id, so a request is
        captured whole or not at all, and the same id always gets the same answer.
    :param drop_columns: Input columns never written (PII).
    :param hash_columns: Input columns written as a keyed SHA-256 hex digest (joinable, not readable);
        the key is ``$MLOPS_CAPTURE_HASH_SALT`` when set.
    :param flush_rows: Flush when the buffer holds this many rows.
    :param flush_interval_s: Flush at least this often.
    :param max_buffer_rows: Rows held in memory at most (waiting or being written); past it, drop.
    """

    enabled: bool = True
    uri: str | None = None
    sample_rate: float = 1.0
    drop_columns: tuple[str, ...] = ()
    hash_columns: tuple[str, ...] = ()
    flush_rows: int = 1000
    flush_interval_s: float = 10.0
    max_buffer_rows: int = 100_000

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise CaptureConfigError(f"capture sample_rate={self.sample_rate!r}; expected 0 <= rate <= 1")
        for name in ("flush_rows", "max_buffer_rows"):
            if getattr(self, name) < 1:
                raise CaptureConfigError(f"capture {name}={getattr(self, name)!r}; expected >= 1")
        if self.flush_interval_s <= 0:
            raise CaptureConfigError(f"capture flush_interval_s={self.flush_interval_s!r}; expected > 0")
        both = sorted(set(self.drop_columns) & set(self.hash_columns))
        if both:
            raise CaptureConfigError(f"capture columns {both} are both dropped and hashed; pick one")
        if self.enabled and not self.uri:
            raise CaptureConfigError(
                f"capture is enabled without a uri: set capture uri (or {ENV['uri']}), or disable it "
                f"({ENV['enabled']}=false)"
            )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> CaptureConfig:
        """Return the settings in ``data`` (unknown keys refused); ``None`` means capture off."""
        if data is None:
            return cls(enabled=False)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CaptureConfigError(f"unknown capture setting(s) {unknown}; allowed: {sorted(known)}")
        values = {k: _coerce(k, v, f"capture {k}") for k, v in data.items()}
        return cls(**{"enabled": bool(values.get("uri")), **values})

    def with_env(self, environ: Mapping[str, str]) -> CaptureConfig:
        """Return these settings with every one whose variable is set in ``environ`` overridden."""
        overrides = {
            name: _coerce(name, environ[var], var) for name, var in ENV.items() if environ.get(var, "") != ""
        }
        return replace(self, **overrides) if overrides else self

    def to_dict(self) -> dict[str, Any]:
        """Return the settings as JSON-friendly values."""
        data = asdict(self)
        data["drop_columns"], data["hash_columns"] = list(self.drop_columns), list(self.hash_columns)
        return data

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise unless the dropped and hashed columns are input columns and none is reserved."""
        unknown = sorted((set(self.drop_columns) | set(self.hash_columns)) - set(columns))
        if unknown:
            raise CaptureConfigError(
                f"capture drops or hashes {unknown}, which are not input columns of the model "
                f"({', '.join(columns)})"
            )
        clash = sorted(c for c in columns if c in RESERVED_COLUMNS or c.startswith(PROBA_PREFIX))
        if clash:
            raise CaptureConfigError(
                f"input column(s) {clash} collide with capture columns {sorted(RESERVED_COLUMNS)} "
                f"(or the {PROBA_PREFIX}<class> ones): rename them, or disable capture"
            )


#: Capture setting -> the kind of value it holds (see :func:`coerce_setting`).
_SETTING_KINDS = {
    "enabled": "bool",
    "drop_columns": "names",
    "hash_columns": "names",
    "flush_rows": "int",
    "max_buffer_rows": "int",
    "sample_rate": "float",
    "flush_interval_s": "float",
    "uri": "text",
}


def _coerce(name: str, value: Any, where: str) -> Any:
    return coerce_setting(_SETTING_KINDS[name], name, value, where)


def coerce_setting(kind: str, name: str, value: Any, where: str) -> Any:
    """Return ``value`` (from JSON or an environment variable) as a ``kind`` setting, or raise.

    :param kind: ``bool``, ``names`` (a list, or comma-separated text), ``int``, ``float`` or ``text``.
    :param where: How the user set it, for the message (``capture flush_rows``, ``MLOPS_CAPTURE_URI``).
    """
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _TRUE | _FALSE:
                return text in _TRUE
            raise ValueError(value)
        if kind == "names":
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(c).strip() for c in items if str(c).strip())
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        return None if value in (None, "") else str(value)
    except (TypeError, ValueError):
        raise CaptureConfigError(f"{where}={value!r} is not a valid {name}") from None


def sampled(request_id: str, rate: float) -> bool:
    """Whether the request ``request_id`` is captured at ``rate`` (stable for a given id)."""
    if rate >= 1.0:
        return True
    return zlib.crc32(request_id.encode()) < rate * 0x1_0000_0000


def partition_path(root: str, model_name: str, version: str, date: str) -> str:
    """Return the directory of one partition under ``root`` (the store's own path form)."""
    model = urllib.parse.quote(model_name, safe="")
    return f"{root.rstrip('/')}/model={model}/version={urllib.parse.quote(version, safe='')}/date={date}"


@dataclass
class _Batch:
    captured_at: float
    request_ids: list[str]
    rows: list[dict[str, Any]]
    predictions: list[Any]
    served: bool


@dataclass
class CaptureStats:
    """What the writer did since it started, by rows."""

    buffered: int = 0
    written: int = 0
    files: int = 0
    sampled_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


class CaptureWriter:
    """Buffer captured predictions and write them to the store from a background thread.

    :param config: The settings; must be enabled.
    :param labels: The model's lineage (``mlflow_model_name``, ``mlflow_model_version``,
        ``mlflow_run_id``, ``data_fingerprint``), written in every row.
    :param columns: The model's input columns (``name``, ``type``), in signature order.
    :param to_frame: ``rows -> DataFrame`` with the signature's dtypes (what the model was given).
    :param probabilities: ``frame -> (classes, 2-D array)`` of class probabilities, or ``None``.
    :param counters: ``(written, dropped)`` Prometheus counters, ``dropped`` labelled by ``reason``;
        ``None`` keeps only :attr:`stats`.
    """

    def __init__(
        self,
        config: CaptureConfig,
        labels: Mapping[str, str],
        columns: Sequence[Mapping[str, Any]],
        to_frame: Callable[[list[dict[str, Any]]], Any],
        probabilities: Callable[[Any], tuple[list[Any], Any]] | None = None,
        counters: tuple[Any, Any] | None = None,
        hash_salt: str | None = None,
    ) -> None:
        import fsspec

        if not config.enabled or not config.uri:
            raise CaptureConfigError("CaptureWriter needs an enabled capture config with a uri")
        config.check_columns([c["name"] for c in columns])
        self.config = config
        self.meta = {
            "model_name": labels.get("mlflow_model_name", ""),
            "model_version": str(labels.get("mlflow_model_version", "")),
            "model_run_id": labels.get("mlflow_run_id", ""),
            "data_fingerprint": labels.get("data_fingerprint", ""),
        }
        self.columns = [c["name"] for c in columns]
        self._schema_note = json.dumps(
            {
                "input_columns": self.columns,
                "dropped_columns": list(config.drop_columns),
                "hashed_columns": list(config.hash_columns),
            }
        ).encode()
        self.to_frame = to_frame
        self.probabilities = probabilities
        self.counters = counters
        self.hash_key = (hash_salt or "").encode()
        self.fs, self.root = fsspec.core.url_to_fs(config.uri)
        self.stats = CaptureStats()
        self._batches: list[_Batch] = []
        self._held = 0  # rows waiting or being written: what max_buffer_rows bounds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._last_log: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="mlops-capture-writer", daemon=True)
        self._thread.start()

    # -- the request path ------------------------------------------------------------------------

    def record(
        self,
        request_ids: Sequence[str],
        rows: list[dict[str, Any]],
        predictions: list[Any],
        *,
        served: bool = True,
        captured_at: float | None = None,
    ) -> None:
        """Buffer one batch: never blocks on the store, never raises.

        :param served: Whether these predictions were the answers (``False`` for shadow scores).
        :param captured_at: When the request was answered (epoch seconds); default now. A shadow score
            made later is stamped with its request's time, so both models' rows share a window.
        """
        try:
            rate = self.config.sample_rate
            if rate < 1.0:
                keep = [i for i, rid in enumerate(request_ids) if sampled(rid, rate)]
                with self._lock:
                    self.stats.sampled_out += len(request_ids) - len(keep)
                if not keep:
                    return
                if len(keep) < len(request_ids):
                    request_ids = [request_ids[i] for i in keep]
                    rows = [rows[i] for i in keep]
                    predictions = [predictions[i] for i in keep]
            stamp = time.time() if captured_at is None else captured_at
            batch = _Batch(stamp, list(request_ids), rows, predictions, served)
            n = len(batch.rows)
            with self._lock:
                if self._stopping or self._held + n > self.config.max_buffer_rows:
                    full = not self._stopping
                else:
                    self._batches.append(batch)
                    self._held += n
                    self.stats.buffered += n
                    if self._held >= self.config.flush_rows:
                        self._wake.set()
                    return
            self._drop("buffer_full" if full else "shutting_down", n, None)
        except Exception as err:  # the prediction is answered whatever happens here
            self._drop("capture_error", len(rows), err)

    # -- the writer ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            self.flush()
            if self._stopping:
                return

    def flush(self) -> int:
        """Write what the buffer holds now; return the rows written."""
        with self._lock:
            batches, self._batches = self._batches, []
        if not batches:
            return 0
        n = sum(len(b.rows) for b in batches)
        try:
            written = self._write(batches)
        except Exception as err:
            self._drop("store_error", n, err)
            written = 0
        finally:
            with self._lock:
                self._held -= n
        return written

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking rows, write everything buffered, and stop the thread."""
        with self._lock:
            self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning(
                "capture writer still writing after %.0f s; %d rows may be lost", timeout, self._held
            )
        else:
            self.flush()  # anything recorded between the thread's last flush and _stopping
        logger.info(
            "capture closed: %d rows written in %d files, dropped %s",
            self.stats.written,
            self.stats.files,
            self.stats.dropped or "none",
        )

    def _write(self, batches: list[_Batch]) -> int:
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        # Arrow columns built directly (no intermediate DataFrame): the flush holds the GIL of a
        # serving process, so it should be short.
        sizes = [len(b.rows) for b in batches]
        n = sum(sizes)
        frame = self.to_frame([row for b in batches for row in b.rows])
        stamps = np.repeat([int(b.captured_at * 1_000_000) for b in batches], sizes)
        columns: dict[str, Any] = {
            "request_id": pa.array([rid for b in batches for rid in b.request_ids], pa.string()),
            "captured_at": pa.array(stamps, pa.timestamp("us", tz="UTC")),
            **{k: pa.array([v] * n, pa.string()) for k, v in self.meta.items()},
        }
        for name in self.columns:
            if name in self.config.drop_columns:
                continue
            values = frame[name]
            hashed = name in self.config.hash_columns
            columns[name] = (
                pa.array(self._hash(values), pa.string()) if hashed else pa.array(values, from_pandas=True)
            )
        predictions = [p for b in batches for p in b.predictions]
        columns[PREDICTION_COLUMN] = pa.array(predictions)
        columns[SCORE_COLUMN] = pa.array(self._scores(frame, predictions, columns), pa.float64())
        columns[SERVED_COLUMN] = pa.array(np.repeat([b.served for b in batches], sizes), pa.bool_())
        table = pa.table(columns).replace_schema_metadata({SCHEMA_METADATA_KEY: self._schema_note})

        # One date per batch (a batch is predicted at one instant), not one strftime per row.
        day_of = {b.captured_at: time.strftime("%Y-%m-%d", time.gmtime(b.captured_at)) for b in batches}
        dates = np.repeat([day_of[b.captured_at] for b in batches], sizes)
        written = 0
        for date in sorted(set(day_of.values())):
            part = table.filter(pa.array(dates == date)) if len(set(day_of.values())) > 1 else table
            directory = partition_path(self.root, self.meta["model_name"], self.meta["model_version"], date)
            name = f"part-{uuid.uuid4().hex}.parquet"
            self.fs.makedirs(directory, exist_ok=True)
            partial = f"{directory}/.{name}.partial"
            with self.fs.open(partial, "wb") as handle:
                pq.write_table(part, handle)
            self.fs.mv(partial, f"{directory}/{name}")
            written += part.num_rows
            with self._lock:
                self.stats.written += part.num_rows
                self.stats.files += 1
            if self.counters is not None:
                self.counters[0].inc(part.num_rows)
        return written

    def _scores(self, frame: Any, predictions: list[Any], out: dict[str, Any]) -> Any:
        """Add ``proba_<class>`` columns to ``out``; return the score column."""
        import numpy as np

        if self.probabilities is not None:
            try:
                classes, proba = self.probabilities(frame)
                proba = np.asarray(proba, dtype="float64")
                for i, cls in enumerate(classes):
                    out[f"{PROBA_PREFIX}{cls}"] = proba[:, i]
                return proba[:, -1]
            except Exception as err:
                self._log_once("probabilities", "class probabilities not captured: %s", err)
        try:
            return np.asarray(predictions, dtype="float64")
        except (TypeError, ValueError):
            return np.full(len(predictions), np.nan)

    def _hash(self, values: Any) -> list[str | None]:
        key = self.hash_key
        return [
            None
            if v is None or v != v  # NaN is the one value unequal to itself
            else hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()
            if key
            else hashlib.sha256(str(v).encode()).hexdigest()
            for v in values.tolist()
        ]

    # -- accounting ------------------------------------------------------------------------------

    def _drop(self, reason: str, n: int, err: BaseException | None) -> None:
        with self._lock:
            self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + n
        if self.counters is not None:
            with contextlib.suppress(Exception):  # the counter must not fail a request either
                self.counters[1].labels(reason=reason).inc(n)
        why = {
            "buffer_full": f"the buffer holds {self.config.max_buffer_rows} rows (max_buffer_rows)",
            "store_error": f"writing to {self.config.uri} failed: {err}",
            "shutting_down": "the server is shutting down",
            "capture_error": f"capture failed: {err}",
        }[reason]
        self._log_once(reason, "capture dropped %d rows (%d so far): %s", n, self.stats.dropped[reason], why)

    def _log_once(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_log.get(key, -LOG_INTERVAL_S) >= LOG_INTERVAL_S:
            self._last_log[key] = now
            logger.warning(message + " (repeated at most every %.0f s)", *args, LOG_INTERVAL_S)
