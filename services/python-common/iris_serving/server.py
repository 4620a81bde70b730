"""Start-up and shutdown, the same for both services: check, load, bind, serve, drain, flush.

    settings from env ─ manifest + sha256 ─ load model ─ warm-up ─ app + metrics ─ uvicorn
    (any failure before uvicorn: one line on stderr, exit 2, nothing bound)

uvicorn runs with uvloop and httptools by default: measured on this machine they nearly
double what FastAPI serves per CPU second compared with asyncio + h11, which matters at half a
CPU. One process by default: a second worker would double the memory and share the same half
CPU; UVICORN_WORKERS=N (for more than one CPU) runs uvicorn's own worker processes, each
loading the model itself (`serve_workers`). The access log is off by default: at thousands of
requests per second formatting and writing a line per request costs CPU comparable to the
prediction itself, and every request is already counted and timed by the latency histogram.
`UVICORN_LOOP=asyncio`, `UVICORN_HTTP=h11` and `ACCESS_LOG=1` reproduce the original post's
plain `uvicorn.run(app)` one factor at a time (services/CONTRACT.md, "Measurement and
as-published settings"). The read limits uvicorn lacks (HTTP_*) come with its protocol
classes from iris_serving.protocol.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.server import Server

from iris_serving import artifact as artifact_io
from iris_serving.app import Predictor, check_predictor, create_app
from iris_serving.artifact import VerifiedArtifact
from iris_serving.protocol import PROTOCOLS, LimitedConfig
from iris_serving.settings import ConfigError, Settings
from iris_serving.startup import StartupTimes
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
    startup: StartupTimes


def prepare(
    service_name: str,
    default_model_file: str,
    load_predictor: PredictorLoader,
    env: Mapping[str, str] | None = None,
    startup: StartupTimes | None = None,
) -> Service:
    """Validate settings, verify the model's sha256 *before* loading it, load, build the app.

    Raises ConfigError for anything wrong with the deployment. `load_predictor` receives only
    a verified artifact — the bytes that were hashed — so no loader can open an unchecked file.
    """
    startup = startup or StartupTimes()
    env = os.environ if env is None else env
    settings = Settings.from_env(env, service_name, default_model_file)
    verified = artifact_io.verify(settings.model_path, settings.manifest_path)
    predictor = load_predictor(verified, env)
    verified = verified.without_data()  # loaded: the file's bytes are not kept
    warmup = check_predictor(predictor, verified)
    startup.model_loaded()
    app = create_app(settings, predictor, verified, warmup, startup)
    telemetry = instrument(settings, app)
    return Service(settings, verified, predictor, app, telemetry, startup)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")


def _log_started(service: Service) -> None:
    settings = service.settings
    log.info(
        "%s: %s sha256 %s, runtime %s, framework %s, metrics %s, traces %s, predict stage %s, "
        "%s + %s, access log %s, workers %d, pid %d, %s",
        settings.service_name,
        service.artifact.path,
        service.artifact.sha256,
        service.predictor.runtime,
        settings.framework,
        settings.metrics_exporter,
        settings.traces_exporter,
        settings.predict_stage,
        settings.uvicorn_loop,
        settings.uvicorn_http,
        "on" if settings.access_log else "off",
        settings.uvicorn_workers,
        os.getpid(),
        service.startup.describe(),
    )


def _with_lifespan(service: Service, flush_telemetry: bool) -> None:
    """On start-up (uvicorn starts serving right after): note and log `listening_unix`. On
    shutdown, in a worker process, flush telemetry (a single process flushes in `run`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.startup.listening()
        _log_started(service)
        yield
        if flush_telemetry:
            service.telemetry.shutdown()

    service.app.router.lifespan_context = lifespan


def _ignore(signum: int, frame: object) -> None:
    """Stand-in handler for uvicorn to restore and re-raise after its graceful shutdown.

    uvicorn re-raises the signal that stopped it once it has drained; with the default
    handler the process would then die *by* SIGTERM (status 143) before metrics are flushed.
    """


def uvicorn_config(settings: Settings, app: object, **extra: object) -> LimitedConfig:
    limits = settings.http_limits
    return LimitedConfig(
        app,
        limits,
        host=settings.host,
        port=settings.port,
        loop=settings.uvicorn_loop,
        http=PROTOCOLS[settings.uvicorn_http],
        h11_max_incomplete_event_size=limits.max_header_bytes,
        access_log=settings.access_log,
        server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        log_level="info",
        **extra,  # type: ignore[arg-type]
    )


def run(service: Service) -> None:
    """Serve until SIGTERM/SIGINT, let in-flight requests finish, then flush metrics."""
    _with_lifespan(service, flush_telemetry=False)
    server = Server(uvicorn_config(service.settings, service.app))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _ignore)
    service.telemetry.start()
    try:
        server.run()
    finally:  # also when uvicorn exits 1 because the port is taken
        service.telemetry.shutdown()


def worker_app(
    service_name: str, default_model_file: str, load_predictor: PredictorLoader
) -> FastAPI:
    """The app factory each UVICORN_WORKERS process calls (uvicorn's `factory=True`): the
    whole start-up of one process. A deployment error exits with uvicorn's STARTUP_FAILURE,
    which makes the supervisor stop instead of restarting the worker forever."""
    startup = StartupTimes()
    _configure_logging()
    try:
        service = prepare(service_name, default_model_file, load_predictor, startup=startup)
    except ConfigError as error:
        print(f"{service_name}: {error}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    _with_lifespan(service, flush_telemetry=True)
    service.telemetry.start()  # metrics are off with workers; traces need no endpoint
    return service.app


def serve_workers(
    settings: Settings, service_name: str, default_model_file: str, load_predictor: PredictorLoader
) -> int:
    """UVICORN_WORKERS > 1: uvicorn binds the socket here and supervises worker processes
    (spawned: each imports, verifies and loads the model itself; memory grows with N).
    Returns 2 when a worker failed to start, else 0."""
    from uvicorn.supervisors.multiprocess import Multiprocess

    factory = functools.partial(worker_app, service_name, default_model_file, load_predictor)
    config = uvicorn_config(settings, factory, factory=True, workers=settings.uvicorn_workers)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    supervisor.run()
    failed = any(p.exitcode == STARTUP_FAILURE for p in supervisor.processes)
    return CONFIG_ERROR_EXIT if failed else 0


def main(service_name: str, default_model_file: str, load_predictor: PredictorLoader) -> int:
    """`python -m <service>`: exit 2 with one stderr line on a deployment error, else serve."""
    startup = StartupTimes()  # the service's modules are imported by now
    _configure_logging()
    try:
        settings = Settings.from_env(os.environ, service_name, default_model_file)
        if settings.uvicorn_workers > 1:
            # Checked here, before any worker starts; each worker verifies again and loads.
            artifact_io.verify(settings.model_path, settings.manifest_path)
        else:
            service = prepare(service_name, default_model_file, load_predictor, startup=startup)
    except ConfigError as error:
        print(f"{service_name}: {error}", file=sys.stderr)
        return CONFIG_ERROR_EXIT
    if settings.uvicorn_workers > 1:
        return serve_workers(settings, service_name, default_model_file, load_predictor)
    run(service)
    return 0
