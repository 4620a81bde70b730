"""The FastAPI application: three routes around one `Predictor`, identical for both services.

Handlers are `async def` and predict inline on the event loop. A prediction takes tens of
microseconds (about a millisecond for a full batch); handing it to a thread pool, as a plain
`def` handler would, costs more than the work itself and adds GIL hand-offs on a process that
owns half a CPU. Responses are serialised once with `json.dumps` into a plain `Response`,
skipping FastAPI's response-model validation pass, which would re-validate what was just built
from the model output; the shapes are the ones in `iris_serving.contract`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from iris_serving.artifact import VerifiedArtifact
from iris_serving.contract import BatchRequest, Health, Instance
from iris_serving.errors import (
    ContractError,
    contract_error_handler,
    http_error_handler,
    internal_error_handler,
)
from iris_serving.requests import parse_json_object, read_body, validate
from iris_serving.settings import ConfigError, Settings


class Predictor(Protocol):
    """What a service plugs in: class probabilities for rows of features.

    `rows` is float64 of shape (n, 4) in the manifest's feature order, with NaN where a
    feature is missing (the pipeline's SimpleImputer fills it, as in training). The result is
    (n, n_classes) in the manifest's label order. `runtime` names the engine for /healthz.
    """

    runtime: str

    def predict(self, rows: np.ndarray) -> np.ndarray: ...


def _rows(instances: Sequence[Instance]) -> np.ndarray:
    # numpy turns None into NaN for a float array: "missing" reaches the imputer as in training.
    return np.array([instance.row() for instance in instances], dtype=np.float64)


class Renderer:
    """Turns a probability matrix into the contract's prediction objects."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = tuple(labels)

    def predictions(self, probabilities: np.ndarray, batch: bool) -> list[dict[str, Any]]:
        """Raises ContractError (row 11) for a row the model could not score: the ONNX graph
        computes in float32, and features near its maximum overflow to NaN."""
        unscorable = np.flatnonzero(~np.isfinite(probabilities).all(axis=1))
        if unscorable.size:
            index = int(unscorable[0])
            raise ContractError(
                422,
                "validation_error",
                "the model cannot score this instance: its features are so large that the "
                "model's arithmetic overflows (the ONNX graph computes in float32)",
                f"instances[{index}]" if batch else None,
            )
        class_ids = probabilities.argmax(axis=1).tolist()  # first maximum on ties
        return [
            {
                "label": self.labels[class_id],
                "class_id": class_id,
                "probabilities": dict(zip(self.labels, row, strict=True)),
            }
            for class_id, row in zip(class_ids, probabilities.tolist(), strict=True)
        ]


def _json(content: Any) -> Response:
    return Response(
        json.dumps(content, separators=(",", ":"), allow_nan=False).encode(),
        media_type="application/json",
    )


def _fixed_predictions(
    renderer: Renderer, warmup: np.ndarray, stage: str
) -> tuple[bytes, bytes] | None:
    """The stage's canned answers (one prediction, and its `{"predictions": [...]}` framing
    prefix), rendered once from the warm-up prediction; None for `full`."""
    if stage == "full":
        return None
    prediction = _json(renderer.predictions(warmup[:1], batch=False)[0]).body
    return bytes(prediction), b'{"predictions":['


def create_app(
    settings: Settings, predictor: Predictor, artifact: VerifiedArtifact, warmup: np.ndarray
) -> FastAPI:
    """The app for one loaded model. No global state: everything hangs off this closure.

    `warmup` is the start-up prediction (`check_predictor`): the fixed answer of the
    measurement stages `parse` and `noop` (PREDICT_STAGE, see `add_prediction_routes`).
    """
    renderer = Renderer(artifact.class_labels)
    health = Health(model_sha256=artifact.sha256, runtime=predictor.runtime).model_dump()
    if settings.predict_stage != "full":
        # Only then: a default deployment's /healthz is exactly the contract's three keys.
        health["predict_stage"] = settings.predict_stage
    health_body = json.dumps(health, separators=(",", ":")).encode()

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
            Exception: internal_error_handler,
        },
    )
    add_prediction_routes(app, settings.predict_stage, predictor, renderer, warmup)

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(health_body, media_type="application/json")

    return app


def add_prediction_routes(
    app: FastAPI, stage: str, predictor: Predictor, renderer: Renderer, warmup: np.ndarray
) -> None:
    """POST /predict and /predict/batch for one PREDICT_STAGE (the overhead ladder's rungs).

    - `full`: the contract — read, parse, validate, run the model, render.
    - `parse`: read, parse and validate exactly as `full` (every error answer is the same),
      then answer the warm-up prediction without running the model (a batch gets one copy
      per instance).
    - `noop`: read the body off the socket and answer the warm-up prediction without looking
      at the body at all (a batch gets one prediction, whatever it held): the floor the
      server stack costs on its own.
    Telemetry is not a stage: the ladder's last rung is `full` with metrics on and off.
    """
    fixed = _fixed_predictions(renderer, warmup, stage)
    if fixed is None:

        @app.post("/predict")
        async def predict(request: Request) -> Response:
            instance = validate(Instance, parse_json_object(await read_body(request)))
            probabilities = predictor.predict(_rows([instance]))
            return _json(renderer.predictions(probabilities, batch=False)[0])

        @app.post("/predict/batch")
        async def predict_batch(request: Request) -> Response:
            batch = validate(BatchRequest, parse_json_object(await read_body(request)))
            probabilities = predictor.predict(_rows(batch.instances))
            return _json({"predictions": renderer.predictions(probabilities, batch=True)})

        return

    one, batch_prefix = fixed
    one_batch = batch_prefix + one + b"]}"
    if stage == "parse":

        @app.post("/predict")
        async def predict_parse(request: Request) -> Response:
            validate(Instance, parse_json_object(await read_body(request)))
            return Response(one, media_type="application/json")

        @app.post("/predict/batch")
        async def predict_batch_parse(request: Request) -> Response:
            batch = validate(BatchRequest, parse_json_object(await read_body(request)))
            body = batch_prefix + b",".join([one] * len(batch.instances)) + b"]}"
            return Response(body, media_type="application/json")

        return

    @app.post("/predict")
    async def predict_noop(request: Request) -> Response:
        await request.body()
        return Response(one, media_type="application/json")

    @app.post("/predict/batch")
    async def predict_batch_noop(request: Request) -> Response:
        await request.body()
        return Response(one_batch, media_type="application/json")


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
