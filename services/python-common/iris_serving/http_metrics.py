"""The latency histogram, recorded by a small ASGI middleware through the OpenTelemetry API.

It records what the OpenTelemetry ASGI/FastAPI instrumentation records for the contract's
histogram, and nothing else: `http.server.request.duration` (unit `s`, the contract's
buckets from the view in iris_serving.telemetry) with the stable HTTP semantic-convention
attributes `http.request.method` (`_OTHER` for unknown methods), `http.route` (for a path
that is one of the app's routes, also on a 405; absent on a 404), `http.response.status_code`,
`url.scheme`, `network.protocol.version` and, for a 5xx, `error.type`. `/healthz` is not
recorded. The series therefore look the same to Prometheus whichever recorder produced them
(only `otel_scope_name` differs).

Why not the instrumentation: per request it records five instruments (duration, active
requests up and down, request and response body size), each hashing its attribute set,
creates a (non-recording) span plus two for receive and send, decodes every header to look
for ones to capture, and matches the path against every route — on this service that is
several times the CPU of parsing and predicting (services/CONTRACT.md, "Measurement and
as-published settings", has the numbers). Here: one clock read at each end, one cached
attribute dict, one `Histogram.record`. With tracing on, the instrumentation is used instead
(it makes the spans and records the histogram itself, as in the original post).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter
from typing import Any

from opentelemetry.metrics import Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DURATION_NAME = "http.server.request.duration"
DURATION_DESCRIPTION = "Duration of HTTP server requests."
# The methods the semantic conventions name; anything else is recorded as `_OTHER`, which
# keeps the attribute's cardinality bounded whatever clients send.
KNOWN_METHODS = frozenset(
    ("CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY")
)
MAX_CACHED_ATTRIBUTE_SETS = 256


class RequestDurationMiddleware:
    """Times each HTTP request from its arrival at the app to the end of its response."""

    def __init__(
        self, app: ASGIApp, histogram: Histogram, routes: Iterable[str], excluded: Iterable[str]
    ) -> None:
        self.app = app
        self._record = histogram.record
        self._routes = frozenset(routes)
        self._excluded = frozenset(excluded)
        # (method, path-or-None, status, scheme, version) → the attribute dict, built once.
        self._attributes: dict[tuple[str, str | None, int, str, str], dict[str, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._excluded:
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 500  # an exception before the response started is answered 500 outside

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            self._record(perf_counter() - start, self._attributes_for(scope, status))

    def _attributes_for(self, scope: Scope, status: int) -> dict[str, Any]:
        method = scope["method"]
        path = scope["path"]
        route = path if path in self._routes else None
        key = (method, route, status, scope.get("scheme", "http"), scope.get("http_version", ""))
        attributes = self._attributes.get(key)
        if attributes is None:
            attributes = {
                "http.request.method": method.upper()
                if method.upper() in KNOWN_METHODS
                else "_OTHER",
                "http.response.status_code": status,
                "url.scheme": key[3],
                "network.protocol.version": key[4],
            }
            if route is not None:
                attributes["http.route"] = route
            if status >= 500:
                attributes["error.type"] = str(status)
            if len(self._attributes) < MAX_CACHED_ATTRIBUTE_SETS:  # unknown methods vary
                self._attributes[key] = attributes
        return attributes
