"""Error bodies and handlers: every failure answers `{"error": {"code", "message", "field"?}}`.

The HTTP-level failures (404, 405) are raised by Starlette's router and re-shaped here; the
request-level ones (415, 413, 400, 422) are `ContractError`s raised by `iris_serving.requests`
(and, with FRAMEWORK=fastapi, FastAPI's `RequestValidationError`, mapped to the same 422);
anything else is a 500 `internal`, which the contract suite treats as a bug.

A client that goes away before its body has arrived (or is cut off by HTTP_READ_TIMEOUT) is
not an error of the service: Starlette raises `ClientDisconnect`, and the answer is the
status 499 ("client closed request", nginx's convention), which never reaches the wire — the
connection is gone — but is what the latency histogram records. Nothing is logged.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from iris_serving.contract import ErrorBody, ErrorDetail

log = logging.getLogger("iris_serving")

CLIENT_CLOSED_REQUEST = 499
ROUTES_HINT = "routes are POST /predict, POST /predict/batch and GET /healthz"


class ContractError(Exception):
    """A request the contract rejects, with the status, code and field it prescribes."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = ErrorBody(error=ErrorDetail(code=code, message=message, field=field))
    return Response(
        body.model_dump_json(exclude_none=True),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


async def contract_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ContractError)
    return error_response(exc.status, exc.code, exc.message, exc.field)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """404 and 405 from the router; the 405 keeps Starlette's `Allow` header."""
    assert isinstance(exc, HTTPException)
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        return error_response(404, "not_found", f"no route {path}; {ROUTES_HINT}")
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return error_response(
            405,
            "method_not_allowed",
            f"{method} is not allowed on {path}; allowed: {allowed}",
            headers=exc.headers,
        )
    # Not raised by this app's code; kept truthful rather than mapped to a contract code.
    return error_response(exc.status_code, "http_error", str(exc.detail), headers=exc.headers)


async def client_abort_handler(request: Request, exc: Exception) -> Response:
    """The client left mid-body: nothing to answer, no one to log for; 499 for the histogram."""
    assert isinstance(exc, ClientDisconnect)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error; the request was not processed")
