"""The FastAPI application: three routes around one `Predictor`, identical for both services.

FRAMEWORK picks how the two prediction routes are written: `lean` (the default, below) or
`fastapi` (iris_serving.fastapi_routes: path operations with the contract's pydantic models).
Everything else — /healthz, error handlers, load shedding, telemetry — is the same app's.

Handlers are `async def` and predict inline on the event loop. A prediction takes tens of
microseconds (about a millisecond for a full batch); handing it to a thread pool, as a plain
`def` handler would, costs more than the work itself and adds GIL hand-offs on a process that
owns half a CPU. Responses are rendered straight to JSON text (`Renderer`) into a plain
`Response`, skipping FastAPI's response-model validation pass, which would re-validate what
was just built from the model output; the shapes are the ones in `iris_serving.contract`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from math import isfinite
from typing import Protocol

import numpy as np
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from iris_serving.artifact import VerifiedArtifact
from iris_serving.contract import BatchRequest, Health, Instance
from iris_serving.errors import (
    ContractError,
    client_abort_handler,
    contract_error_handler,
    http_error_handler,
    internal_error_handler,
)
from iris_serving.overload import ConcurrencyLimit
from iris_serving.requests import parse_json_object, read_body, read_capped_body, validate
from iris_serving.settings import ConfigError, Settings
from iris_serving.startup import StartupTimes


class Predictor(Protocol):
    """What a service plugs in: class probabilities for rows of features.

    `rows` is float64 of shape (n, 4) in the manifest's feature order, with NaN where a
    feature is missing (the pipeline's SimpleImputer fills it, as in training). The result is
    (n, n_classes) in the manifest's label order. `runtime` names the engine for /healthz.
    """

    runtime: str

    def predict(self, rows: np.ndarray) -> np.ndarray: ...


def rows_of(instances: Sequence[Instance]) -> np.ndarray:
    # numpy turns None into NaN for a float array: "missing" reaches the imputer as in training.
    return np.array([instance.row() for instance in instances], dtype=np.float64)


UNSCORABLE = (
    "the model cannot score this instance: its features are so large that the model's "
    "arithmetic overflows (the ONNX graph computes in float32)"
)


class Renderer:
    """Turns a probability matrix into the contract's prediction objects, as JSON text.

    The text is assembled from pieces encoded once per label at start-up (`json.dumps` of
    the label, the keys, the class id) plus `repr` of each probability, which is exactly
    the text `json.dumps` writes for a finite float. It is the same bytes `json.dumps` of
    the prediction dict gives (tests compare the two), at a fraction of the cost of
    building and encoding a nested dict per request.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)
        self._heads = tuple(
            f'{{"label":{json.dumps(label)},"class_id":{class_id},"probabilities":{{'
            for class_id, label in enumerate(self.labels)
        )
        self._keys = tuple(f"{json.dumps(label)}:" for label in self.labels)

    def predictions(self, probabilities: np.ndarray, batch: bool) -> list[str]:
        """One JSON object per row: `class_id` is the first maximum, labels and keys in the
        manifest's order.

        Raises ContractError (row 11) for a row the model could not score: the ONNX graph
        computes in float32, and features near its maximum overflow to NaN.
        """
        rows: list[list[float]] = probabilities.tolist()
        check_scorable(probabilities, rows, batch)
        heads, keys = self._heads, self._keys
        rendered = []
        for row in rows:
            class_id = row.index(max(row))  # first maximum on ties, like numpy's argmax
            pairs = ",".join([key + repr(value) for key, value in zip(keys, row, strict=True)])
            rendered.append(f"{heads[class_id]}{pairs}}}}}")
        return rendered


def check_scorable(probabilities: np.ndarray, rows: list[list[float]], batch: bool) -> None:
    """Row 11: a ContractError (422) for the first row the model could not score."""
    if len(rows) == 1:  # the common case: a plain check beats two numpy reductions
        finite = all(map(isfinite, rows[0]))
    else:
        finite = bool(np.isfinite(probabilities).all())
    if not finite:
        index = int(np.flatnonzero(~np.isfinite(probabilities).all(axis=1))[0])
        raise ContractError(
            422, "validation_error", UNSCORABLE, f"instances[{index}]" if batch else None
        )


def _json_response(text: str) -> Response:
    return Response(text.encode(), media_type="application/json")


def _batch_text(predictions: list[str]) -> str:
    return '{"predictions":[' + ",".join(predictions) + "]}"


def fixed_predictions(
    renderer: Renderer, warmup: np.ndarray, stage: str
) -> tuple[bytes, bytes] | None:
    """The stage's canned answers (one prediction, and its `{"predictions": [...]}` framing
    prefix), rendered once from the warm-up prediction; None for `full`."""
    if stage == "full":
        return None
    return renderer.predictions(warmup[:1], batch=False)[0].encode(), b'{"predictions":['


def create_app(
    settings: Settings,
    predictor: Predictor,
    artifact: VerifiedArtifact,
    warmup: np.ndarray,
    startup: StartupTimes,
) -> FastAPI:
    """The app for one loaded model. No global state: everything hangs off this closure.

    `warmup` is the start-up prediction (`check_predictor`): the fixed answer of the
    measurement stages `parse` and `noop` (PREDICT_STAGE, see `add_prediction_routes`).
    `startup` is shown on /healthz; its last time is set as the server starts listening.
    """
    renderer = Renderer(artifact.class_labels)
    health = Health(
        model_sha256=artifact.sha256, runtime=predictor.runtime, framework=settings.framework
    ).model_dump()
    if settings.predict_stage != "full":
        # Only then: a default deployment's /healthz has exactly the contract's keys.
        health["predict_stage"] = settings.predict_stage

    app = FastAPI(
        title=settings.service_name,
        # The contract has exactly three routes; the Go service has no docs pages either.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # `/predict/` must be a 404 like everywhere else, not a redirect to `/predict`.
        redirect_slashes=False,
        # FastAPI's built-in telemetry stays off: iris_serving.telemetry records the
        # histogram, and two recorders would double it.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        exception_handlers={
            ContractError: contract_error_handler,
            HTTPException: http_error_handler,
            ClientDisconnect: client_abort_handler,
            Exception: internal_error_handler,
        },
    )
    # Added first, so the latency histogram (added by iris_serving.telemetry) wraps it and
    # records the 503s it answers.
    app.add_middleware(
        ConcurrencyLimit,  # type: ignore[arg-type]
        limit=settings.http_limits.max_concurrent_requests,
    )
    if settings.framework == "fastapi":
        from iris_serving.fastapi_routes import add_path_operations, validation_error_handler

        app.add_exception_handler(RequestValidationError, validation_error_handler)
        add_path_operations(app, settings.predict_stage, predictor, renderer, warmup)
    else:
        add_prediction_routes(app, settings.predict_stage, predictor, renderer, warmup)

    @app.get("/healthz")
    async def healthz() -> Response:
        body = {**health, "startup": startup.as_dict()}
        return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")

    return app


Endpoint = Callable[[Request], Awaitable[Response]]


def add_prediction_routes(
    app: FastAPI, stage: str, predictor: Predictor, renderer: Renderer, warmup: np.ndarray
) -> None:
    """POST /predict and /predict/batch for one PREDICT_STAGE (the overhead ladder's rungs).

    - `full`: the contract — read, parse, validate, run the model, render.
    - `parse`: read, parse and validate exactly as `full` (every error answer is the same),
      then answer the warm-up prediction without running the model (a batch gets one copy
      per instance).
    - `noop`: read the body off the socket (a 413 beyond the contract's 64 KiB, as in `full`)
      and answer the warm-up prediction without looking at the body at all (a batch gets one
      prediction, whatever it held): the floor the server stack costs on its own.
    Telemetry is not a stage: the ladder's last rung is `full` with metrics on and off.

    The two routes are the app's plain (Starlette) routes, `app.add_route`, not FastAPI path
    operations: the handlers take the raw `Request` and return a `Response`, so FastAPI's
    per-request dependency solving, exit stack and endpoint wrapping had nothing to do, yet
    cost about 30 µs per request here — more than parsing, validating, predicting with ONNX
    Runtime and rendering together. Routing, 405s with `Allow`, exception handlers and
    middleware are the same app's; /healthz stays a FastAPI route.
    """
    predict, predict_batch = _prediction_endpoints(stage, predictor, renderer, warmup)
    app.add_route("/predict", predict, methods=["POST"])
    app.add_route("/predict/batch", predict_batch, methods=["POST"])


def _prediction_endpoints(
    stage: str, predictor: Predictor, renderer: Renderer, warmup: np.ndarray
) -> tuple[Endpoint, Endpoint]:
    fixed = fixed_predictions(renderer, warmup, stage)
    if fixed is None:

        async def predict(request: Request) -> Response:
            instance = validate(Instance, parse_json_object(await read_body(request)))
            probabilities = predictor.predict(rows_of([instance]))
            return _json_response(renderer.predictions(probabilities, batch=False)[0])

        async def predict_batch(request: Request) -> Response:
            batch = validate(BatchRequest, parse_json_object(await read_body(request)))
            probabilities = predictor.predict(rows_of(batch.instances))
            return _json_response(_batch_text(renderer.predictions(probabilities, batch=True)))

        return predict, predict_batch

    one, batch_prefix = fixed
    one_batch = batch_prefix + one + b"]}"
    if stage == "parse":

        async def predict_parse(request: Request) -> Response:
            validate(Instance, parse_json_object(await read_body(request)))
            return Response(one, media_type="application/json")

        async def predict_batch_parse(request: Request) -> Response:
            batch = validate(BatchRequest, parse_json_object(await read_body(request)))
            body = batch_prefix + b",".join([one] * len(batch.instances)) + b"]}"
            return Response(body, media_type="application/json")

        return predict_parse, predict_batch_parse

    async def predict_noop(request: Request) -> Response:
        await read_capped_body(request)
        return Response(one, media_type="application/json")

    async def predict_batch_noop(request: Request) -> Response:
        await read_capped_body(request)
        return Response(one_batch, media_type="application/json")

    return predict_noop, predict_batch_noop


def check_predictor(predictor: Predictor, artifact: VerifiedArtifact) -> np.ndarray:
    """One prediction at start-up: proves the model runs and matches the manifest's labels.

    Also warms the runtime (first-call allocations), so the first request and the RSS measured
    after start both reflect the steady state. Returns the probabilities for one instance
    with every feature missing (what the stages `parse` and `noop` answer); a model that
    cannot score it is a ConfigError.
    """
    row = np.full((1, len(artifact.feature_names)), np.nan)
    probabilities = np.asarray(predictor.predict(row))
    expected = (1, len(artifact.class_labels))
    if probabilities.shape != expected:
        raise ConfigError(
            f"{artifact.path} predicts shape {probabilities.shape}; expected {expected} "
            f"for the manifest's labels {list(artifact.class_labels)}"
        )
    if not np.isfinite(probabilities).all():
        raise ConfigError(
            f"{artifact.path} predicts {probabilities.tolist()} for an all-missing instance; "
            "expected finite probabilities"
        )
    return probabilities
