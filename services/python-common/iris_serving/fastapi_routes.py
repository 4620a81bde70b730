"""FRAMEWORK=fastapi: the prediction routes as FastAPI path operations with pydantic models.

What most teams write, and what the original post ran: `async def predict(instance: Instance)
-> Prediction`, the request and response models being the contract's (iris_serving.contract),
FastAPI validating the body into them and serialising the returned model. Only what FastAPI
cannot do the contract's way happens before it, in `ContractRoute`:

- FastAPI reads a body of any size whatever its Content-Type, and parses JSON with
  `json.loads`, which accepts NaN/Infinity, duplicate member names (the last one wins) and
  lone surrogates. The contract wants 415, 413 and 400 (I-JSON) first, so the body is read and
  parsed with the lean routes' checks (iris_serving.requests), and FastAPI gets a request whose
  `body()` and `json()` return what was checked: its own body handling then runs unchanged.
- FastAPI turns any exception while it reads the body into a 400 "There was an error parsing
  the body"; read before it, a client that leaves mid-body stays a client abort (499).

FastAPI's own `RequestValidationError` is answered by `validation_error_handler` with the
contract's 422 (its `body` location prefix stripped, so fields are named as everywhere else),
or a 400 when the body also breaks an I-JSON rule `json` let through. Row 11 (a prediction
that is not finite) is checked before the response model is built, since pydantic would
serialise NaN as `null`. /healthz, 404/405, load shedding and telemetry are the app's, as for
`lean`; PREDICT_STAGE has the same meaning (`noop` takes the raw Request, as no body model is
involved).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import numpy as np
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from iris_serving.app import Predictor, Renderer, check_scorable, fixed_predictions, rows_of
from iris_serving.contract import BatchRequest, BatchResponse, Instance, Prediction
from iris_serving.errors import error_response
from iris_serving.requests import parse_json_object, read_body, read_capped_body, validation_failure

JSON = "application/json"


class CheckedBodyRequest(Request):
    """The request FastAPI sees: its body already read and parsed under the contract's rules."""

    def __init__(self, request: Request, body: bytes, document: dict[str, Any]) -> None:
        super().__init__(request.scope, request.receive)
        self._checked_body = body
        self._document = document

    async def body(self) -> bytes:
        return self._checked_body

    async def json(self) -> Any:
        return self._document


class ContractRoute(APIRoute):
    """A path operation whose body is read and parsed by the contract's rules (415, 413, 400,
    and a 422 for a top-level value that is not an object) before FastAPI handles it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked_handler(request: Request) -> Response:
            body = await read_body(request)
            return await handler(CheckedBodyRequest(request, body, parse_json_object(body)))

        return checked_handler


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's RequestValidationError as the contract's answer (see the module)."""
    assert isinstance(exc, RequestValidationError)
    batch = request.url.path == "/predict/batch"
    error = validation_failure(exc.errors(), exc.body, batch_body=batch, prefix=("body",))
    return error_response(error.status, error.code, error.message, error.field)


def prediction_models(
    probabilities: np.ndarray, labels: Sequence[str], batch: bool
) -> list[Prediction]:
    """The contract's prediction objects: `class_id` is the first maximum, probabilities keyed
    by label in the manifest's order. Raises ContractError (row 11) for a row not finite."""
    rows: list[list[float]] = probabilities.tolist()
    check_scorable(probabilities, rows, batch)
    models = []
    for row in rows:
        class_id = row.index(max(row))
        probabilities_by_label = dict(zip(labels, row, strict=True))
        models.append(
            Prediction(
                label=labels[class_id], class_id=class_id, probabilities=probabilities_by_label
            )
        )
    return models


def add_path_operations(
    app: FastAPI, stage: str, predictor: Predictor, renderer: Renderer, warmup: np.ndarray
) -> None:
    """POST /predict and /predict/batch as path operations, for one PREDICT_STAGE.

    Registered on the app's own router (what `@app.post` does) with `ContractRoute` as their
    route class, not through an included APIRouter: FastAPI 0.163 keeps an included router as
    one route of its own, and the latency recorder reads the routes' paths from `app.routes`.
    """
    fixed = fixed_predictions(renderer, warmup, stage)
    if fixed is not None and stage == "noop":
        one, batch_prefix = fixed
        one_batch = batch_prefix + one + b"]}"

        async def predict_noop(request: Request) -> Response:
            await read_capped_body(request)
            return Response(one, media_type=JSON)

        async def predict_batch_noop(request: Request) -> Response:
            await read_capped_body(request)
            return Response(one_batch, media_type=JSON)

        app.post("/predict")(predict_noop)
        app.post("/predict/batch")(predict_batch_noop)
        return

    labels = renderer.labels
    if fixed is None:

        async def predict(instance: Instance) -> Prediction:
            probabilities = predictor.predict(rows_of([instance]))
            return prediction_models(probabilities, labels, batch=False)[0]

        async def predict_batch(batch: BatchRequest) -> BatchResponse:
            probabilities = predictor.predict(rows_of(batch.instances))
            return BatchResponse(predictions=prediction_models(probabilities, labels, batch=True))

        endpoints: tuple[Callable[..., Any], Callable[..., Any]] = (predict, predict_batch)
    else:  # parse: FastAPI validates, the warm-up prediction answers
        one, batch_prefix = fixed

        async def predict_parse(instance: Instance) -> Response:
            return Response(one, media_type=JSON)

        async def predict_batch_parse(batch: BatchRequest) -> Response:
            body = batch_prefix + b",".join([one] * len(batch.instances)) + b"]}"
            return Response(body, media_type=JSON)

        endpoints = (predict_parse, predict_batch_parse)

    for path, endpoint in zip(("/predict", "/predict/batch"), endpoints, strict=True):
        app.router.add_api_route(
            path, endpoint, methods=["POST"], route_class_override=ContractRoute
        )
