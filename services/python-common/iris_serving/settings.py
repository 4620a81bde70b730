"""Settings from the environment, with the contract's names and defaults (services/CONTRACT.md).

Every setting is validated before anything is loaded or bound: a bad value is a `ConfigError`
whose text names the variable, the value and what was expected, and the service turns it into
one line on stderr and exit status 2 (the same status as a model that fails its hash check,
because both mean "this deployment is wrong", not "this request is wrong").
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

MetricsExporter = Literal["prometheus", "otlp", "none"]
METRICS_EXPORTERS: tuple[MetricsExporter, ...] = ("prometheus", "otlp", "none")
TracesExporter = Literal["none", "otlp"]
TRACES_EXPORTERS: tuple[TracesExporter, ...] = ("none", "otlp")
# A measurement knob for the overhead ladder (iris_serving.app): how much of a prediction
# request the service does. Only `full` meets the contract for every input.
PredictStage = Literal["full", "parse", "noop"]
PREDICT_STAGES: tuple[PredictStage, ...] = ("full", "parse", "noop")
# The tuned server stack first; the original post ran plain uvicorn, i.e. asyncio + h11.
UvicornLoop = Literal["uvloop", "asyncio"]
UVICORN_LOOPS: tuple[UvicornLoop, ...] = ("uvloop", "asyncio")
UvicornHttp = Literal["httptools", "h11"]
UVICORN_HTTPS: tuple[UvicornHttp, ...] = ("httptools", "h11")
# How the prediction routes are written (iris_serving.app): plain Starlette routes with the
# hand-written parser and renderer (`lean`), or FastAPI path operations with the contract's
# pydantic models (`fastapi`, what most teams write and what the original post ran).
Framework = Literal["lean", "fastapi"]
FRAMEWORKS: tuple[Framework, ...] = ("lean", "fastapi")
MAX_WORKERS = 64
# OpenTelemetry's default schedule delay of the BatchSpanProcessor; the post used 3000.
DEFAULT_BSP_SCHEDULE_DELAY_MS = 5000


class ConfigError(Exception):
    """The deployment is wrong (setting, model file or manifest); the service exits with 2."""


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int) -> int:
    """An integer setting within [minimum, maximum]; absent or empty means the default."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(
            f"{name}={raw!r} is not an integer; expected {minimum}..{maximum}"
        ) from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name}={value} is out of range; expected {minimum}..{maximum}")
    return value


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    """A setting that must be one of a few words (compared case-insensitively)."""
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name}={raw!r} is not supported; expected one of {', '.join(choices)}")
    return raw


def env_flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A switch spelled 0 or 1; absent or empty means the default."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw not in ("0", "1"):
        raise ConfigError(f"{name}={raw!r} is not a switch; expected 0 or 1")
    return raw == "1"


def _http_url(env: Mapping[str, str], name: str) -> None:
    """An OTLP endpoint variable, when set, must be an http(s) URL with a host (the exporter
    would otherwise fail every export in the background, silently)."""
    raw = env.get(name, "").strip()
    if not raw:
        return
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{name}={raw!r} is not an http(s) URL; expected e.g. http://127.0.0.1:4318"
        )


def _resolvable_host(name: str, host: str) -> str:
    # Checked here so an unresolvable HOST is a config error (exit 2), not a bind failure later.
    if not host:
        raise ConfigError(f"{name} is empty; expected an address such as 127.0.0.1 or 0.0.0.0")
    try:
        socket.getaddrinfo(host, None)
    except OSError as error:
        raise ConfigError(
            f"{name}={host!r} cannot be resolved ({error}); expected an address"
        ) from None
    return host


@dataclass(frozen=True)
class HttpLimits:
    """What one client may hold of the service (CONTRACT.md, "Abusive clients"); Go's
    net/http fields of the same meaning are named after each."""

    # MaxHeaderBytes: a request head still incomplete after this many bytes → 431, closed.
    max_header_bytes: int = 16384
    # ReadHeaderTimeout: the head must be complete this long after the request's start.
    read_header_timeout_s: int = 5
    # ReadTimeout: the whole request, body included, this long after its start.
    read_timeout_s: int = 15
    # Requests being served at once (headers read, response not finished); more → 503.
    max_concurrent_requests: int = 128

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> HttpLimits:
        limits = cls(
            max_header_bytes=env_int(env, "HTTP_MAX_HEADER_BYTES", 16384, 1024, 1 << 20),
            read_header_timeout_s=env_int(env, "HTTP_READ_HEADER_TIMEOUT", 5, 1, 3600),
            read_timeout_s=env_int(env, "HTTP_READ_TIMEOUT", 15, 1, 3600),
            max_concurrent_requests=env_int(env, "HTTP_MAX_CONCURRENT_REQUESTS", 128, 1, 65535),
        )
        if limits.read_timeout_s < limits.read_header_timeout_s:
            raise ConfigError(
                f"HTTP_READ_TIMEOUT={limits.read_timeout_s} is shorter than "
                f"HTTP_READ_HEADER_TIMEOUT={limits.read_header_timeout_s}; expected a whole "
                "request to be allowed at least as long as its head"
            )
        return limits


def _workers(env: Mapping[str, str], metrics_exporter: str) -> int:
    """UVICORN_WORKERS, refused with metrics on: every worker is a process with its own
    meter provider, so `prometheus` would bind the scrape port once per worker and `otlp`
    would push one process's cumulative series under the same identity as the others'."""
    workers = env_int(env, "UVICORN_WORKERS", 1, 1, MAX_WORKERS)
    if workers > 1 and metrics_exporter != "none":
        raise ConfigError(
            f"UVICORN_WORKERS={workers} needs OTEL_METRICS_EXPORTER=none (it is "
            f"{metrics_exporter}: each worker process would export its own series); expected "
            "UVICORN_WORKERS=1, or metrics off and latency measured by the load generator"
        )
    return workers


@dataclass(frozen=True)
class Settings:
    """Everything the shared part of a service needs; ONNX-only settings live in onnx_api."""

    service_name: str
    host: str
    port: int
    model_path: Path
    manifest_path: Path
    metrics_exporter: MetricsExporter
    prometheus_host: str
    prometheus_port: int
    # Measurement and as-published settings (CONTRACT.md, last section); the defaults are
    # the tuned configuration, and the contract suite never sets them.
    predict_stage: PredictStage = "full"
    uvicorn_loop: UvicornLoop = "uvloop"
    uvicorn_http: UvicornHttp = "httptools"
    access_log: bool = False
    traces_exporter: TracesExporter = "none"
    bsp_schedule_delay_ms: int = DEFAULT_BSP_SCHEDULE_DELAY_MS
    framework: Framework = "lean"
    uvicorn_workers: int = 1
    http_limits: HttpLimits = HttpLimits()

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], default_service_name: str, default_model_file: str
    ) -> Settings:
        """Read and validate the contract's variables; raises ConfigError on a bad value."""
        host = _resolvable_host("HOST", env.get("HOST", "").strip() or "127.0.0.1")
        port = env_int(env, "PORT", 5000, 1, 65535)
        exporter = env_choice(env, "OTEL_METRICS_EXPORTER", "prometheus", METRICS_EXPORTERS)
        prometheus_host = _resolvable_host(
            "OTEL_EXPORTER_PROMETHEUS_HOST",
            env.get("OTEL_EXPORTER_PROMETHEUS_HOST", "").strip() or host,
        )
        prometheus_port = env_int(env, "OTEL_EXPORTER_PROMETHEUS_PORT", 9464, 1, 65535)
        if exporter == "prometheus" and prometheus_port == port:
            raise ConfigError(
                f"OTEL_EXPORTER_PROMETHEUS_PORT={prometheus_port} equals PORT; the scrape "
                "endpoint needs a port of its own"
            )
        traces_exporter = env_choice(env, "OTEL_TRACES_EXPORTER", "none", TRACES_EXPORTERS)
        # Read by the SDK too, but validated here so a typo is exit 2, not a silent default.
        bsp_delay = env_int(
            env, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_BSP_SCHEDULE_DELAY_MS, 1, 3_600_000
        )
        if "otlp" in (exporter, traces_exporter):
            for name in (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            ):
                _http_url(env, name)
        stage = env_choice(env, "PREDICT_STAGE", "full", PREDICT_STAGES)
        loop = env_choice(env, "UVICORN_LOOP", "uvloop", UVICORN_LOOPS)
        http = env_choice(env, "UVICORN_HTTP", "httptools", UVICORN_HTTPS)
        return cls(
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or default_service_name,
            host=host,
            port=port,
            model_path=Path(env.get("MODEL_PATH", "").strip() or f"artifacts/{default_model_file}"),
            manifest_path=Path(env.get("MODEL_MANIFEST", "").strip() or "artifacts/manifest.json"),
            metrics_exporter=exporter,  # type: ignore[arg-type]  # checked by env_choice
            prometheus_host=prometheus_host,
            prometheus_port=prometheus_port,
            predict_stage=stage,  # type: ignore[arg-type]  # checked by env_choice
            uvicorn_loop=loop,  # type: ignore[arg-type]
            uvicorn_http=http,  # type: ignore[arg-type]
            access_log=env_flag(env, "ACCESS_LOG", False),
            traces_exporter=traces_exporter,  # type: ignore[arg-type]
            bsp_schedule_delay_ms=bsp_delay,
            framework=env_choice(env, "FRAMEWORK", "lean", FRAMEWORKS),  # type: ignore[arg-type]
            uvicorn_workers=_workers(env, exporter),
            http_limits=HttpLimits.from_env(env),
        )
