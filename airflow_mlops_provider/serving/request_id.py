"""Request ids: taken from ``X-Request-ID`` or generated, returned in the response, carried by each row.

:class:`RequestIdMiddleware` (pure ASGI, so it costs one header scan a request) reads the client's
``X-Request-ID`` when it is a sane id (at most 128 characters of letters, digits and ``._:-``),
generates one otherwise, puts it in :data:`REQUEST_ID` for the rest of the request and adds it to
the response headers of every answer, errors included.

BentoML batches rows of several requests into one call of the model, where the request context is
gone. Each row therefore records its request id while it is validated, in the request's own context:
request rows are built on :class:`RequestRow`, and :func:`request_id_of` gives the inference capture
the id of a row. Imports nothing from Airflow.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from typing import Any

from pydantic import PrivateAttr

from .schema import StrictRow

HEADER = "x-request-id"
_HEADER_BYTES = HEADER.encode()
_VALID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: The id of the request being handled; empty outside a request.
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("mlops_request_id", default="")


def new_request_id() -> str:
    """Return a fresh request id (32 hex digits)."""
    return uuid.uuid4().hex


def accepted_request_id(value: str | bytes | None) -> str:
    """Return ``value`` when it is a sane request id, else a fresh one."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value if value and _VALID.fullmatch(value) else new_request_id()


class RequestIdMiddleware:
    """ASGI middleware: one request id per HTTP request, in :data:`REQUEST_ID` and the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = next((v for k, v in scope.get("headers", ()) if k == _HEADER_BYTES), None)
        request_id = accepted_request_id(sent)
        encoded = request_id.encode()

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != _HEADER_BYTES]
                message = {**message, "headers": [*headers, (_HEADER_BYTES, encoded)]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class RequestRow(StrictRow):
    """Base of a request row that remembers the id of the request it came in."""

    _request_id: str = PrivateAttr(default="")

    def model_post_init(self, context: Any, /) -> None:
        self._request_id = REQUEST_ID.get()


def request_id_of(row: RequestRow) -> str:
    """Return the id of the request ``row`` came in (empty when it was built outside a request)."""
    return row._request_id
