"""What the docker backend's stack.json records: the local backend's keys (endpoints, limits read
back, each service's environment, the histogram's buckets, GOMAXPROCS, versions), plus the
engine, the compose files and project, and which image each variable used and why."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from helpers.serving import process, prometheus_server
from helpers.serving.docker import containers, engine, topology
from helpers.serving.docker.compose import PROJECT, Compose
from helpers.serving.protocol import Stack, gomaxprocs_from_log, record_header
from helpers.serving.services import LATENCY_BUCKETS_S


class RecordedStack(Stack, Protocol):
    """What the record reads of a running docker stack (helpers.serving.docker.stack), named
    here so the record needs no import of the stack that writes it."""

    telemetry: str
    prometheus_config: Path
    containers: dict[str, Any]
    exporter: process.ManagedProcess | None
    exporter_target: str | None
    grafana_url: str | None
    grafana_password_file: Path | None
    service_names: list[str]
    service_env: dict[str, dict[str, str]]
    healthz: dict[str, Any]
    logs_dir: Path
    engine: engine.DockerEngine
    compose: Compose
    topology: topology.Topology
    images: dict[str, str]
    image_reasons: dict[str, str]
    build: bool
    client: Any


def describe(stack: RecordedStack) -> dict[str, Any]:
    """Everything stack.json records (the local backend's keys, plus the docker ones)."""
    go_log = stack.containers["go-api-onnx"].logs().decode(errors="replace")
    return record_header(stack) | {
        "telemetry": stack.telemetry,
        "prometheus": {
            "url": stack.prometheus_url,
            "remote_write_url": stack.remote_write_url,
            "data_dir": str(stack.run_dir / "prometheus" / "data"),
            "config": str(stack.prometheus_config),
            "scrape_interval_s": prometheus_server.SCRAPE_INTERVAL_S,
            "container": containers.summary(stack.containers["prometheus"].attrs),
        },
        "exporter": {
            "kind": "host cgroup exporter" if stack.exporter else "cadvisor",
            "target": stack.exporter_target,
            "pid": stack.exporter.pid if stack.exporter else None,
        },
        "grafana_url": stack.grafana_url,
        "grafana_password_file": (
            str(stack.grafana_password_file) if stack.grafana_password_file else None
        ),
        "services": {
            name: {
                "url": stack.service_urls[name],
                "load_target_url": stack.load_target_urls[name],
                "container": containers.summary(stack.containers[name].attrs),
                "limits": asdict(stack.limits[name]),
                "environment": stack.service_env.get(name, {}),
                "healthz": stack.healthz.get(name),
                "log": str(stack.logs_dir / f"{name}.log"),
            }
            for name in stack.service_names
        },
        "latency_buckets_s": list(LATENCY_BUCKETS_S),
        "docker": {
            "engine": stack.engine.host,
            "engine_owned": stack.engine.owned,
            "compose_files": [str(f) for f in stack.compose.files],
            "project": PROJECT,
            "services": stack.topology.services,
            "images": stack.images,
            "image_choice": stack.image_reasons,
            "built": stack.build,
        },
        "go_maxprocs": gomaxprocs_from_log(go_log),
        "versions": {
            "docker_engine": str(stack.client.version().get("Version")),
            "compose": stack.compose.version(),
            **{name: str(health.get("runtime", "?")) for name, health in stack.healthz.items()},
        },
    }
