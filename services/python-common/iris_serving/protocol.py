"""The read limits uvicorn does not have: a deadline and a size cap for every request it reads.

uvicorn 0.54 arms no timer on a connection until it has answered a request
(`timeout_keep_alive`), and httptools buffers a request head of any size. So a client that
connects and sends nothing, or its headers one line every two seconds (slowloris), or its body
a byte at a time, holds a connection forever; and one 16 MiB header line, which httptools keeps
re-concatenating, OOM-killed the pickle service inside its 128 MiB. Go's net/http bounds all of
it (`ReadHeaderTimeout`, `ReadTimeout`, `MaxHeaderBytes`); `ReadLimits` adds the same to both of
uvicorn's HTTP protocols, with the same meaning (CONTRACT.md, "Abusive clients"):

- a request's *start* is the connection's opening, or the first byte of a next request on a
  kept-alive connection (the wait before it is uvicorn's own `timeout_keep_alive`);
- its head (request line and headers) must be complete `read_header_timeout_s` after the start,
  and while incomplete may not exceed `max_header_bytes` (431, then close); a head that is late
  is closed without an answer, as Go does;
- the whole request, body included, must have arrived `read_timeout_s` after the start; if not,
  the connection is closed and the app's pending read sees a disconnect, which it records as a
  client abort (499), as for a client that went away mid-body.

It is a mixin over uvicorn's protocol classes because neither offers a hook between "bytes
arrived" and "request parsed": `data_received` is the one place every byte passes. The cost on
the hot path is a few attribute reads per `data_received`; the clock is read and a timer armed
only for a request still incomplete after a read (and once per connection, on connect, for
its first request), so a request that arrives in one segment, the common case, costs neither.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from iris_serving.settings import HttpLimits

HEADER_TOO_LARGE_BODY = (
    b'{"error":{"code":"header_too_large","message":"the request line and headers are larger '
    b'than this service accepts (HTTP_MAX_HEADER_BYTES)"}}'
)
HEADER_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s"
    % (len(HEADER_TOO_LARGE_BODY), HEADER_TOO_LARGE_BODY)
)


class LimitedConfig(uvicorn.Config):
    """uvicorn's Config plus the service's HttpLimits, which the protocols read. A subclass
    rather than a closure so it pickles by reference into UVICORN_WORKERS' worker processes."""

    def __init__(self, app: Any, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.limits = limits


class ReadLimits:
    """Deadlines and a head-size cap for the protocol it is mixed into (see the module)."""

    # Set by uvicorn's protocol classes, which this is always mixed into first.
    config: LimitedConfig
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        limits = self.config.limits
        self._max_header_bytes = limits.max_header_bytes
        self._header_timeout = limits.read_header_timeout_s
        self._read_timeout = limits.read_timeout_s
        self._feed = super().data_received  # type: ignore[misc]  # bound once, not per call
        self._timer: asyncio.TimerHandle | None = None
        # A fresh connection's first request starts now: idle ones are closed on time too.
        self._start: float | None = self.loop.time()
        self._head_cycle = self.cycle  # a new cycle object means the head is complete
        self._head_bytes = 0
        self._arm(self._start + self._header_timeout)

    def data_received(self, data: bytes) -> None:
        fresh = self._start is None  # the first bytes of a next request on this connection
        if fresh:
            self._head_cycle = self.cycle
            self._head_bytes = 0
        if self.cycle is self._head_cycle:
            self._head_bytes += len(data)
        self._feed(data)
        cycle = self.cycle
        if cycle is not self._head_cycle and not cycle.more_body:
            # Read in full (the common case, often in one segment): nothing to watch until
            # the next request's first byte.
            self._start = None
            if self._timer is not None:
                self._cancel()
            return
        if self.transport.is_closing():
            return
        if fresh:  # incomplete after its first segment: from now on it is on the clock
            self._start = self.loop.time()
        assert self._start is not None
        if cycle is self._head_cycle:  # the head is still incomplete
            if self._head_bytes > self._max_header_bytes:
                self.transport.write(HEADER_TOO_LARGE)
                self.transport.close()
            elif self._timer is None:
                self._arm(self._start + self._header_timeout)
        else:  # the body is still incomplete
            self._arm(self._start + self._read_timeout)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            if self._timer.when() == when:
                return
            self._timer.cancel()
        self._timer = self.loop.call_at(when, self._deadline_passed)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _deadline_passed(self) -> None:
        self._timer = None
        if self._start is None or self.transport.is_closing():
            return
        head_incomplete = self.cycle is self._head_cycle
        if not head_incomplete and not self.cycle.more_body:
            self._start = None  # read in full meanwhile (h11 parses pipelined data later)
            return
        limit = self._header_timeout if head_incomplete else self._read_timeout
        if self.loop.time() >= self._start + limit:
            self.transport.close()  # a pending body read sees http.disconnect
        else:  # the head completed since the timer was set: now the body's deadline
            self._arm(self._start + limit)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)  # type: ignore[misc]


class LimitedHttpToolsProtocol(ReadLimits, HttpToolsProtocol):
    """UVICORN_HTTP=httptools (the default) with the read limits."""


class LimitedH11Protocol(ReadLimits, H11Protocol):
    """UVICORN_HTTP=h11 with the read limits. h11 has its own head cap, which uvicorn sets
    from `h11_max_incomplete_event_size` (the server sets it to the same number): it may
    trip first, and uvicorn then answers 400 and closes."""


PROTOCOLS: dict[str, type[asyncio.Protocol]] = {
    "httptools": LimitedHttpToolsProtocol,
    "h11": LimitedH11Protocol,
}
