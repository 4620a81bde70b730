"""Load shedding: a 503 beyond HTTP_MAX_CONCURRENT_REQUESTS requests being served at once.

What a request being served costs is its task and its body (buffered up to the contract's
64 KiB, once by uvicorn and once by the reader); measured on the pickle service, each request
whose body is a nearly complete 64 KiB costs ~82 KiB of anonymous memory, and the service has
~98 MiB of it after start inside its 128 MiB (which also has to hold the file pages it runs
from): 256 such requests took it to 117 MiB, 400 connections to an OOM kill. The default cap,
128, keeps that worst case near 109 MiB and is still ten times the requests in progress at the
service's capacity (latency × rate). So past
the cap a request is answered 503 at once, without reading its body.

uvicorn's own `limit_concurrency` is not used: it counts open connections as well as requests,
so 2 000 idle connections (or a load generator's kept-alive ones) would make it answer 503 to
everything, /healthz included, although an idle connection costs a few KiB and the read
deadlines of iris_serving.protocol close it within HTTP_READ_HEADER_TIMEOUT. This counts only
requests whose head has been read and whose response has not finished. One event loop runs
every request, so a plain counter is exact. The latency histogram, installed outside this, records
the 503s.
"""

from __future__ import annotations

from typing import Any

from iris_serving.http_metrics import ASGIApp, Receive, Scope, Send

OVERLOADED_BODY = (
    b'{"error":{"code":"overloaded","message":"too many requests in progress '
    b'(HTTP_MAX_CONCURRENT_REQUESTS); retry later"}}'
)
OVERLOADED_START: dict[str, Any] = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(OVERLOADED_BODY)).encode()),
        # Closing drops what the connection buffered (uvicorn reads a body ahead of the app,
        # up to 64 KiB): without it, shed connections kept their bodies and, measured, 144
        # of them on top of 256 requests in progress OOM-killed the pickle service.
        (b"connection", b"close"),
    ],
}
OVERLOADED_BODY_MESSAGE: dict[str, Any] = {"type": "http.response.body", "body": OVERLOADED_BODY}


class ConcurrencyLimit:
    """ASGI middleware: at most `limit` HTTP requests inside `app` at a time."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.limit:
            await send(OVERLOADED_START)
            await send(OVERLOADED_BODY_MESSAGE)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1
