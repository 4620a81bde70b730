"""Start-up and shutdown, the same for both services: check, load, bind, serve, drain, flush.

    settings from env ─ manifest + sha256 ─ load model ─ warm-up ─ app + metrics ─ uvicorn
    (any failure before uvicorn: one line on stderr, exit 2, nothing bound)

uvicorn runs with uvloop and httptools by default: measured on this machine they nearly
double what FastAPI serves per CPU second compared with asyncio + h11, which matters at half a
CPU. One process, no workers: a second worker would double the memory and share the same half
CPU. The access log is off by default: at thousands of requests per second formatting and
writing a line per request costs CPU comparable to the prediction itself, and every request
is already counted and timed by the latency histogram. `UVICORN_LOOP=asyncio`,
`UVICORN_HTTP=h11` and `ACCESS_LOG=1` reproduce the original post's plain `uvicorn.run(app)`
one factor at a time (services/CONTRACT.md, "Measurement and as-published settings").
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from iris_serving import artifact as artifact_io
from iris_serving.app import Predictor, check_predictor, create_app
from iris_serving.artifact import VerifiedArtifact
from iris_serving.settings import ConfigError, Settings
from iris_serving.telemetry import Telemetry, instrument

log = logging.getLogger("iris_serving")

CONFIG_ERROR_EXIT = 2
# Seconds to finish in-flight requests after SIGTERM; below Docker's 10 s stop timeout.
GRACEFUL_SHUTDOWN_S = 5

PredictorLoader = Callable[[VerifiedArtifact, Mapping[str, str]], Predictor]


@dataclass
class Service:
    """A service ready to bind: everything validated and loaded, no socket open yet."""

    settings: Settings
    artifact: VerifiedArtifact
    predictor: Predictor
    app: FastAPI
    telemetry: Telemetry


def prepare(
    service_name: str,
    default_model_file: str,
    load_predictor: PredictorLoader,
    env: Mapping[str, str] | None = None,
) -> Service:
    """Validate settings, verify the model's sha256 *before* loading it, load, build the app.

    Raises ConfigError for anything wrong with the deployment. `load_predictor` receives only
    a verified artifact, so no loader can open an unchecked file.
    """
    env = os.environ if env is None else env
    settings = Settings.from_env(env, service_name, default_model_file)
    verified = artifact_io.verify(settings.model_path, settings.manifest_path)
    predictor = load_predictor(verified, env)
    warmup = check_predictor(predictor, verified)
    app = create_app(settings, predictor, verified, warmup)
    telemetry = instrument(settings, app)
    return Service(settings, verified, predictor, app, telemetry)


def _ignore(signum: int, frame: object) -> None:
    """Stand-in handler for uvicorn to restore and re-raise after its graceful shutdown.

    uvicorn re-raises the signal that stopped it once it has drained; with the default
    handler the process would then die *by* SIGTERM (status 143) before metrics are flushed.
    """


def run(service: Service) -> None:
    """Serve until SIGTERM/SIGINT, let in-flight requests finish, then flush metrics."""
    settings = service.settings
    config = uvicorn.Config(
        service.app,
        host=settings.host,
        port=settings.port,
        loop=settings.uvicorn_loop,
        http=settings.uvicorn_http,
        access_log=settings.access_log,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        log_level="info",
    )
    server = uvicorn.Server(config)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ignore)
    service.telemetry.start()
    try:
        server.run()
    finally:  # also when uvicorn exits 1 because the port is taken
        service.telemetry.shutdown()


def main(service_name: str, default_model_file: str, load_predictor: PredictorLoader) -> int:
    """`python -m <service>`: exit 2 with one stderr line on a deployment error, else serve."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    try:
        service = prepare(service_name, default_model_file, load_predictor)
    except ConfigError as error:
        print(f"{service_name}: {error}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    settings = service.settings
    log.info(
        "%s: %s sha256 %s, runtime %s, metrics %s, traces %s, predict stage %s, %s + %s, "
        "access log %s",
        settings.service_name,
        service.artifact.path,
        service.artifact.sha256,
        service.predictor.runtime,
        settings.metrics_exporter,
        settings.traces_exporter,
        settings.predict_stage,
        settings.uvicorn_loop,
        settings.uvicorn_http,
        "on" if settings.access_log else "off",
    )
    run(service)
    return 0
