"""The OpenTelemetry Collector on this host: the original study's path for telemetry.

In the post, the services push OTLP to a collector and Prometheus scrapes the collector. The
local backend runs that path for real with `telemetry="collector"` — the distribution
`make setup` builds from observability/otel-collector/builder.yaml (its image cannot be pulled
without a registry), started with the same config.yaml as under compose, its listen addresses
moved to 127.0.0.1 and free ports through the config's own `${env:…}` variables. It runs in a
cgroup of its own without limits, so its CPU and memory are measured like a service's (the
post gave it 1–2 CPUs of its own).

With `telemetry="pull"` (the default) Prometheus scrapes each service's own endpoint and no
collector runs — unless a service exports spans (OTEL_TRACES_EXPORTER=otlp), which need a
receiver: then the collector runs for the spans alone (its traces pipeline ends in `nop`).
"""

from __future__ import annotations

from pathlib import Path

from helpers import net, paths
from helpers.serving import process

NAME = "otel-collector"
TELEMETRY_MODES = ("pull", "collector")
PORT_KEYS = {
    "OTELCOL_OTLP_GRPC_ENDPOINT": f"{NAME}-otlp-grpc",
    "OTELCOL_OTLP_HTTP_ENDPOINT": f"{NAME}-otlp-http",
    "OTELCOL_PROMETHEUS_ENDPOINT": f"{NAME}-metrics",
    "OTELCOL_HEALTH_ENDPOINT": f"{NAME}-health",
}
READY_TIMEOUT_S = 30.0


def binary() -> Path:
    if not paths.COLLECTOR_BINARY.exists():
        raise FileNotFoundError(
            f"the collector {paths.COLLECTOR_BINARY} does not exist: run `make setup` to build it"
        )
    return paths.COLLECTOR_BINARY


def check_mode(telemetry: str) -> None:
    if telemetry not in TELEMETRY_MODES:
        raise ValueError(f"telemetry {telemetry!r}: expected one of {', '.join(TELEMETRY_MODES)}")


def needed(telemetry: str, service_env: dict[str, dict[str, str]]) -> bool:
    """Whether a collector must run: it carries the metrics, or some service sends spans."""
    traced = any(env.get("OTEL_TRACES_EXPORTER", "none") == "otlp" for env in service_env.values())
    return telemetry == "collector" or traced


def start(
    host: str,
    ports: dict[str, int],
    log_path: Path,
    before_exec=(),
) -> process.ManagedProcess:
    """The collector on `host` and the ports named in PORT_KEYS; returns once it is healthy."""
    env = {variable: f"{host}:{ports[key]}" for variable, key in PORT_KEYS.items()}
    managed = process.start(
        NAME,
        [str(binary()), f"--config={paths.COLLECTOR_CONFIG}"],
        log_path,
        env={"PATH": "/usr/bin:/bin", **env},
        before_exec=before_exec,
    )
    health = f"http://{host}:{ports[PORT_KEYS['OTELCOL_HEALTH_ENDPOINT']]}/"
    try:
        net.wait_until_ready(health, READY_TIMEOUT_S, process=managed.popen)
    except net.NotReady as error:
        managed.stop()
        raise net.NotReady(
            f"the collector did not start: {error}\n{managed.log_tail(20)}"
        ) from None
    return managed


def service_environment(host: str, ports: dict[str, int], metrics: bool) -> dict[str, str]:
    """What a service needs to push to the collector: OTLP/HTTP, a metrics export a second
    (like the 1 s scrape of the pull mode), and spans if it is told to send them."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{host}:{ports[PORT_KEYS['OTELCOL_OTLP_HTTP_ENDPOINT']]}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    if metrics:
        env |= {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "1000"}
    return env
