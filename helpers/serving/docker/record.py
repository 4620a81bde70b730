"""What the docker backend's stack.json records: the local backend's keys (the machine, each
instance's service, model folder, telemetry path, endpoints, cgroup, limits read back and
environment, the histogram's buckets, GOMAXPROCS, versions), plus each instance's container,
the engine, the compose files and project, and which image each variable used and why."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from helpers.serving import process, prometheus_server
from helpers.serving.docker import containers, engine, topology
from helpers.serving.docker.compose import PROJECT, Compose
from helpers.serving.local.cgroups import Cgroup
from helpers.serving.protocol import Stack, gomaxprocs_from_log, record_header
from helpers.serving.services import LATENCY_BUCKETS_S


class RecordedStack(Stack, Protocol):
    """What the record reads of a running docker stack (helpers.serving.docker.stack), named
    here so the record needs no import of the stack that writes it."""

    telemetry: str
    artifacts_dir: Path
    prometheus_config: Path
    containers: dict[str, Any]
    cgroups: dict[str, Cgroup | None]
    exporter: process.ManagedProcess | None
    exporter_target: str | None
    grafana_url: str | None
    grafana_password_file: Path | None
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


def _gomaxprocs(stack: RecordedStack, name: str) -> int | None:
    """GOMAXPROCS as the Go runtime of instance `name` logged it (None: not a Go instance)."""
    if stack.instances[name].service != "go-api-onnx":
        return None
    return gomaxprocs_from_log(stack.containers[name].logs().decode(errors="replace"))


def _instance(stack: RecordedStack, name: str) -> dict[str, Any]:
    instance, group = stack.instances[name], stack.cgroups.get(name)
    return {
        "service": instance.service,
        "artifacts_dir": str(instance.artifacts_dir or stack.artifacts_dir),
        "telemetry": stack.topology.telemetry_of(name),
        "url": stack.service_urls[name],
        "load_target_url": stack.load_target_urls[name],
        "container": containers.summary(stack.containers[name].attrs),
        "cgroup": group.relpath if group else None,
        "limits_asked": {"cpu_cores": instance.cpu_cores, "memory_bytes": instance.memory_bytes},
        "limits": asdict(stack.limits[name]),
        "environment": stack.service_env.get(name, {}),
        "healthz": stack.healthz.get(name),
        "gomaxprocs": _gomaxprocs(stack, name),
        "log": str(stack.logs_dir / f"{name}.log"),
    }


def describe(stack: RecordedStack) -> dict[str, Any]:
    """Everything stack.json records (the local backend's keys, plus the docker ones)."""
    go = [name for name, i in stack.instances.items() if i.service == "go-api-onnx"]
    return record_header(stack) | {
        "machine": stack.machine,
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
        "services": {name: _instance(stack, name) for name in stack.instances},
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
        "go_maxprocs": _gomaxprocs(stack, go[0]) if go else None,
        "versions": {
            "docker_engine": str(stack.client.version().get("Version")),
            "compose": stack.compose.version(),
            **{name: str(health.get("runtime", "?")) for name, health in stack.healthz.items()},
        },
    }
