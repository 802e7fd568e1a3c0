"""A second model in the Bento: scored in shadow on the same requests, or answering a canary share.

A Bento packaged with a shadow (``BentoPackageOperator(shadow_alias="challenger")``) carries the
champion and the challenger. The champion answers. The challenger scores the same validated rows on
a background thread (:class:`ShadowScorer`), after the answer has gone: the request path only
appends the batch to a bounded queue, so a shadow that raises, hangs or is slow changes no answer and
never makes one wait (its scoring does share the server's CPU: ``benchmarks/serving.py`` measures
what that costs the champion's latency). When the queue holds ``max_queue_rows`` rows the next batches are dropped and
counted (``mlops_shadow_dropped_rows_total{reason="queue_full"}``) rather than waiting. Both models'
predictions are captured under the request's id (:mod:`.capture`), the shadow's with
``served=false``, so the online gate can compare them on the same requests.

With a canary share, a stable fraction of requests is answered by the challenger instead: those whose
canary key (an input column, or the request id) hashes below the share (:func:`canary_fraction`), so
the same customer always gets the same model. The champion then scores those requests in shadow,
and every request still has both predictions. A canary prediction that raises is answered by the
champion (``mlops_canary_fallback_rows_total``).

Settings come from the Bento and each may be overridden at serve time by its environment variable
(:data:`ENV`): ``MLOPS_SHADOW_ENABLED=false`` withdraws the shadow without a rebuild. Imports nothing
from Airflow.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .capture import CaptureConfigError, CaptureWriter, coerce_setting

logger = logging.getLogger("mlops_serving.shadow")

#: Setting -> the environment variable that overrides it at serve time.
ENV = {
    "enabled": "MLOPS_SHADOW_ENABLED",
    "max_queue_rows": "MLOPS_SHADOW_MAX_QUEUE_ROWS",
    "canary_share": "MLOPS_CANARY_SHARE",
    "canary_key": "MLOPS_CANARY_KEY",
}
_KINDS = {"enabled": "bool", "max_queue_rows": "int", "canary_share": "float", "canary_key": "text"}
#: The canary key that means the request id rather than an input column.
REQUEST_ID_KEY = "request_id"


@dataclass(frozen=True)
class ShadowConfig:
    """How the Bento's second model is used.

    :param enabled: Score the shadow at all (off: the Bento serves the champion alone).
    :param max_queue_rows: Rows waiting for the shadow at most; past it, batches are dropped.
    :param canary_share: Share of requests (0..1) the challenger answers; 0 for shadow only.
    :param canary_key: What decides a request's group: an input column (a customer id) or
        ``request_id``.
    """

    enabled: bool = True
    max_queue_rows: int = 10_000
    canary_share: float = 0.0
    canary_key: str = REQUEST_ID_KEY

    def __post_init__(self) -> None:
        if self.max_queue_rows < 1:
            raise CaptureConfigError(f"shadow max_queue_rows={self.max_queue_rows!r}; expected >= 1")
        if not 0.0 <= self.canary_share <= 1.0:
            raise CaptureConfigError(f"shadow canary_share={self.canary_share!r}; expected 0 <= share <= 1")
        if not self.canary_key:
            raise CaptureConfigError("shadow canary_key is empty; name an input column or 'request_id'")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> ShadowConfig:
        """Return the settings in ``data`` (unknown keys refused)."""
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CaptureConfigError(f"unknown shadow setting(s) {unknown}; allowed: {sorted(known)}")
        return cls(**{k: coerce_setting(_KINDS[k], k, v, f"shadow {k}") for k, v in data.items()})

    def with_env(self, environ: Mapping[str, str]) -> ShadowConfig:
        """Return these settings with every one whose variable is set in ``environ`` overridden."""
        overrides = {
            name: coerce_setting(_KINDS[name], name, environ[var], var)
            for name, var in ENV.items()
            if environ.get(var, "") != ""
        }
        return replace(self, **overrides) if overrides else self

    def check_columns(self, columns: Sequence[str]) -> None:
        """Raise unless the canary key is an input column or ``request_id``."""
        if self.canary_share > 0 and self.canary_key not in (REQUEST_ID_KEY, *columns):
            raise CaptureConfigError(
                f"canary_key {self.canary_key!r} is neither {REQUEST_ID_KEY!r} nor an input column of the "
                f"model ({', '.join(columns)})"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def canary_fraction(key: Any) -> float:
    """Return a stable number in ``[0, 1)`` for a canary key (the same key, the same number, anywhere)."""
    digest = hashlib.sha256(str(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def canary_mask(
    config: ShadowConfig, request_ids: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> list[bool]:
    """Which rows the challenger answers: those whose canary key falls below the share."""
    share = config.canary_share
    if share <= 0:
        return [False] * len(rows)
    keys = request_ids if config.canary_key == REQUEST_ID_KEY else [r.get(config.canary_key) for r in rows]
    return [canary_fraction(k) < share for k in keys]


def check_compatible(champion: Sequence[Mapping[str, Any]], shadow: Sequence[Mapping[str, Any]]) -> None:
    """Raise unless every column the shadow needs comes, with its type, in the champion's requests.

    Requests are validated against the champion's signature; the shadow gets those rows.
    """
    given = {c["name"]: c["type"] for c in champion}
    problems = [
        f"{c['name']} ({c['type']}): "
        + (
            "not in the champion's requests"
            if c["name"] not in given
            else f"the champion's is {given[c['name']]}"
        )
        for c in shadow
        if given.get(c["name"]) != c["type"] and (c["name"] in given or c.get("required", True))
    ]
    if problems:
        raise CaptureConfigError(
            "the shadow model cannot score the champion's requests: " + "; ".join(problems)
        )


class ShadowScorer:
    """Score batches with a model on a background thread and capture its predictions as unserved.

    :param predict: ``rows -> predictions`` (JSON-friendly, one per row) of the shadow model.
    :param writer: Where its predictions are captured (``served=False``).
    :param max_queue_rows: Rows waiting at most; a batch that does not fit is dropped.
    :param counters: ``(scored, dropped)`` Prometheus counters, labelled by ``metric_labels`` (and
        ``dropped`` by ``reason``), or ``None``.
    :param metric_labels: Labels of this shadow's counter samples (``model_version``).
    :param name: The model, for the log and the thread's name.
    """

    def __init__(
        self,
        predict: Callable[[list[dict[str, Any]]], list[Any]],
        writer: CaptureWriter,
        max_queue_rows: int,
        counters: tuple[Any, Any] | None = None,
        metric_labels: Mapping[str, str] | None = None,
        name: str = "shadow",
    ) -> None:
        self.predict = predict
        self.metric_labels = dict(metric_labels or {})
        self.writer = writer
        self.max_queue_rows = max_queue_rows
        self.counters = counters
        self.name = name
        self.scored = 0
        self.dropped: dict[str, int] = {}
        self._queue: collections.deque[tuple[list[str], list[dict[str, Any]], float]] = collections.deque()
        self._held = 0
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._stopping = False
        self._last_log: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name=f"mlops-shadow-{name}", daemon=True)
        self._thread.start()

    def submit(self, request_ids: Sequence[str], rows: list[dict[str, Any]], answered_at: float) -> None:
        """Queue a batch for the shadow: never waits for it, never raises."""
        try:
            n = len(rows)
            with self._lock:
                if not self._stopping and self._held + n <= self.max_queue_rows:
                    self._queue.append((list(request_ids), rows, answered_at))
                    self._held += n
                    self._ready.notify()
                    return
                reason = "shutting_down" if self._stopping else "queue_full"
            self._drop(reason, n, None)
        except Exception as err:  # the answer is sent whatever happens here
            self._drop("error", len(rows), err)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stopping:
                    self._ready.wait()
                if not self._queue:
                    return
                request_ids, rows, answered_at = self._queue.popleft()
            try:
                predictions = self.predict(rows)
                if len(predictions) != len(rows):
                    raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows")
            except Exception as err:
                self._drop("error", len(rows), err)
            else:
                self.writer.record(request_ids, rows, predictions, served=False, captured_at=answered_at)
                self.scored += len(rows)
                if self.counters is not None:
                    with contextlib.suppress(Exception):
                        self.counters[0].labels(**self.metric_labels).inc(len(rows))
            finally:
                with self._lock:
                    self._held -= len(rows)

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking batches, score what is queued (within ``timeout``), and stop the thread."""
        with self._lock:
            self._stopping = True
            self._ready.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning(
                "shadow %s still scoring after %.0f s; %d rows not scored", self.name, timeout, self._held
            )
        logger.info(
            "shadow %s closed: %d rows scored, dropped %s", self.name, self.scored, self.dropped or "none"
        )

    def _drop(self, reason: str, n: int, err: BaseException | None) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n
        if self.counters is not None:
            with contextlib.suppress(Exception):
                self.counters[1].labels(**self.metric_labels, reason=reason).inc(n)
        now = time.monotonic()
        if now - self._last_log.get(reason, float("-inf")) >= 60.0:
            self._last_log[reason] = now
            why = {
                "queue_full": f"{self.max_queue_rows} rows are waiting already (max_queue_rows)",
                "shutting_down": "the server is shutting down",
                "error": f"{type(err).__name__}: {err}",
            }[reason]
            logger.warning(
                "shadow %s dropped %d rows (%d so far): %s (repeated at most every 60 s)",
                self.name,
                n,
                self.dropped[reason],
                why,
            )
