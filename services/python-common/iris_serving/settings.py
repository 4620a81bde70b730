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

MetricsExporter = Literal["prometheus", "otlp", "none"]
METRICS_EXPORTERS: tuple[MetricsExporter, ...] = ("prometheus", "otlp", "none")


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
        return cls(
            service_name=env.get("OTEL_SERVICE_NAME", "").strip() or default_service_name,
            host=host,
            port=port,
            model_path=Path(env.get("MODEL_PATH", "").strip() or f"artifacts/{default_model_file}"),
            manifest_path=Path(env.get("MODEL_MANIFEST", "").strip() or "artifacts/manifest.json"),
            metrics_exporter=exporter,  # type: ignore[arg-type]  # checked by env_choice
            prometheus_host=prometheus_host,
            prometheus_port=prometheus_port,
        )
