"""From raw request to validated instances, with the contract's ranking of errors (CONTRACT.md).

The routes take the raw `Request` instead of a pydantic body parameter because FastAPI's own
body handling cannot honour the contract: it parses JSON leniently (`NaN` and `Infinity` are
accepted) and answers 422 where the contract wants 400/413/415. Here: 415 (content type) → 413
(size, declared or received) → 400 (I-JSON: RFC 8259 in UTF-8, unique member names, no lone
surrogates, nesting at most 64 deep) → 422 (pydantic's first error).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.requests import Request

from iris_serving.contract import FEATURE_NAMES, FLOAT32_MAX, MAX_BATCH, MAX_BODY_BYTES, Instance
from iris_serving.errors import ContractError

EXPECTED_FEATURES = ", ".join(FEATURE_NAMES)
MAX_DEPTH = 64  # arrays and objects nested deeper than this: 400
_SURROGATE = re.compile("[\ud800-\udfff]")
M = TypeVar("M", bound=BaseModel)


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON (RFC 8259 has no NaN or Infinity tokens)")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, unless a member name repeats (I-JSON, RFC 7493 §2.3: 400)."""
    members = dict(pairs)
    if len(members) < len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"duplicate member name {name!r} (I-JSON, RFC 7493)")
            seen.add(name)
    return members


# parse_int=float: JSON does not distinguish integers from fractions, and it keeps a
# 60 000-digit integer from hitting Python's int-parsing limit (it becomes inf → 422).
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant, parse_int=float, object_pairs_hook=_unique_members
)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float | int):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_json(content_type: str | None) -> bool:
    # Media types are case-insensitive; parameters (`; charset=utf-8`) are allowed.
    return (
        content_type is not None
        and content_type.split(";", 1)[0].strip().lower() == "application/json"
    )


async def read_body(request: Request) -> bytes:
    """The body, after the 415 and 413 checks; never buffers more than the limit."""
    if not _is_json(request.headers.get("content-type")):
        raise ContractError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got "
            f"{request.headers.get('content-type') or 'none'}",
        )
    return await read_capped_body(request)


def _declared_length(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """Content-Length from the raw ASGI headers (lower-case names): cheaper than building
    Starlette's Headers, which the noop stage would otherwise do for this alone."""
    for name, value in headers:
        if name == b"content-length":
            return value
    return None


async def read_capped_body(request: Request) -> bytes:
    """The body, or a 413 as soon as it is known to exceed MAX_BODY_BYTES (declared or
    received). Raises starlette's ClientDisconnect when the client leaves before its end."""
    too_large = ContractError(413, "payload_too_large", f"body larger than {MAX_BODY_BYTES} bytes")
    declared = _declared_length(request.scope["headers"])
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    # Counted while it arrives: a chunked body has no Content-Length to check up front.
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json_object(body: bytes) -> dict[str, Any]:
    """I-JSON (400 otherwise) whose top-level value is an object (422)."""
    try:
        document = _DECODER.decode(body.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ContractError(400, "invalid_json", f"body is not UTF-8: {error}") from None
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, a duplicate name
        raise ContractError(400, "invalid_json", f"body is not valid JSON: {error}") from None
    except RecursionError:
        raise ContractError(400, "invalid_json", f"nested more than {MAX_DEPTH} deep") from None
    if not isinstance(document, dict):
        _check_before_422(document)
        raise ContractError(
            422, "validation_error", f"body must be a JSON object, got {_json_type(document)}"
        )
    return document


def _check_before_422(document: Any) -> None:
    """The 400s that `json` lets through, checked only on the way to a 422 (400 outranks it).

    A body that validates holds nothing but feature names and numbers at depth ≤ 3, so only a
    rejected one can nest more than MAX_DEPTH deep or hold a lone surrogate (`"\\ud800"`).
    """
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str) and _SURROGATE.search(node):
            raise ContractError(400, "invalid_json", "body has a lone surrogate (not I-JSON)")
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise ContractError(400, "invalid_json", f"nested more than {MAX_DEPTH} deep")
            children = [*node, *node.values()] if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _message(error: ErrorDetails, path: str, batch_body: bool) -> str:
    kind, value = error["type"], error["input"]
    if kind == "extra_forbidden":
        if batch_body and "[" not in path:
            return f"unknown field {path}; a batch body has only 'instances'"
        return f"unknown field {path}; an instance may only have {EXPECTED_FEATURES}"
    if kind in ("finite_number", "greater_than_equal", "less_than_equal"):
        return f"{path} is {value!r}, outside the finite float32 range (|x| <= {FLOAT32_MAX!r})"
    if kind == "float_type":
        return f"{path} must be a JSON number or null, got {_json_type(value)}"
    if kind == "model_type":
        return f"{path} must be an object with {EXPECTED_FEATURES}, got {_json_type(value)}"
    if kind == "missing":
        return f"{path} is required: an array of 1..{MAX_BATCH} instances"
    if kind == "list_type":
        return f"{path} must be an array of 1..{MAX_BATCH} instances, got {_json_type(value)}"
    if kind in ("too_short", "too_long"):
        return f"{path} must hold 1..{MAX_BATCH} instances, got {len(value)}"
    return f"{path}: {error['msg']}"


def validate(model: type[M], document: dict[str, Any]) -> M:
    """Validate with the contract model; pydantic's first error answers (any field of several)."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise validation_failure(exc.errors(), document, batch_body=model is not Instance) from None


def validation_failure(
    errors: Sequence[Any], document: Any, batch_body: bool, prefix: tuple[str, ...] = ()
) -> ContractError:
    """The contract's answer to a body that failed validation: a 400 if it also breaks a rule
    of I-JSON that `json` lets through (400 outranks 422), else a 422 naming the field of
    pydantic's first error. `prefix` is stripped from the error's location (FastAPI puts
    `body` first)."""
    try:
        _check_before_422(document)
    except ContractError as error:
        return error
    first = errors[0]
    loc = tuple(first["loc"])
    path = _field_path(loc[len(prefix) :] if loc[: len(prefix)] == prefix else loc)
    return ContractError(422, "validation_error", _message(first, path, batch_body), path or None)
