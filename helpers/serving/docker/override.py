"""The per-run compose override (`stack/docker-compose.run.yaml`): the run's Prometheus, and one
compose service per instance, written without touching docker-compose.yaml.

An instance named like one of the compose file's APIs (`python-api-onnx`) *is* that service: the
override only adds to it — its environment, its limits, its model folder — and it keeps the
compose file's port (`PYTHON_API_ONNX_PORT`) and container name. Any other instance
(`python-api-onnx.noop`) becomes a service of its own, copied from its API's definition as
`compose config` resolves it (so whatever the compose file sets — image, stop grace period,
security options — it has too), with the instance's name as container name (cAdvisor's and the
host exporter's `name` label), its own published 127.0.0.1 port, environment, limits and model
folder. Compose interpolates the override again, so what it adds is written with `$` doubled;
what it copies is left as `compose config` printed it (compose text: `$` already doubled).

Compose merges an override into the file's service key by key and cannot delete one, so an
instance of a compose service that asks for *no* CPU or memory limit is given `0`, which the
engine reads as "no limit" (a copied service simply has no such key).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from helpers import files
from helpers.serving.instances import Instance

# What the per-instance telemetry path means for a service's own exporter (services/CONTRACT.md).
METRICS_EXPORTER = {"pull": "prometheus", "collector": "otlp"}
# Keys of a resolved service that a copy must not keep: the build belongs to the API's own
# service (the copy runs the image it builds), the name and port are the instance's own.
NOT_COPIED = ("build", "container_name", "ports", "profiles", "depends_on")


def escaped(value: Any) -> Any:
    """`value` with every `$` in its strings doubled, so compose passes them through as written."""
    if isinstance(value, str):
        return value.replace("$", "$$")
    if isinstance(value, dict):
        return {key: escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [escaped(item) for item in value]
    return value


def model_folder_target(resolved: Mapping[str, Any]) -> str:
    """Where the compose file mounts the model for a service: the folder of its MODEL_PATH."""
    return str(PurePosixPath(resolved["environment"]["MODEL_PATH"]).parent)


def _volume_target(volume: Any) -> str | None:
    """The container path of a volume in either syntax (`src:dst[:mode]` or compose v2's dict)."""
    if isinstance(volume, dict):
        return volume.get("target")
    parts = str(volume).split(":")
    return parts[1] if len(parts) >= 2 else parts[0]


def with_model_folder(volumes: list[Any], target: str, folder: str) -> list[Any]:
    """`volumes` with the mount at `target` replaced by `folder`, read-only."""
    kept = [v for v in volumes if _volume_target(v) != target]
    return [*kept, f"{folder}:{target}:ro"]


def environment(instance: Instance, telemetry: str | None) -> dict[str, str]:
    """What the instance's container adds to its API's environment: its name for the telemetry
    (Prometheus' `job`, `service_name`), the exporter its telemetry path needs, then its own."""
    env = {"OTEL_SERVICE_NAME": instance.name}
    if telemetry is not None:
        env["OTEL_METRICS_EXPORTER"] = METRICS_EXPORTER[telemetry]
    return env | dict(instance.environment)


def _limits(instance: Instance, removable: bool) -> dict[str, Any]:
    """deploy.resources.limits for the instance; `removable`: a key left out means no limit."""
    limits: dict[str, Any] = {}
    if instance.cpu_cores is not None or not removable:
        limits["cpus"] = str(instance.cpu_cores or 0)
    if instance.memory_bytes is not None or not removable:
        limits["memory"] = str(instance.memory_bytes or 0)  # bytes; compose wants a string
    return limits


def instance_service(
    instance: Instance,
    resolved: Mapping[str, Any],
    telemetry: str | None,
    artifacts_dir: Path,
    port: int,
    host: str,
) -> dict[str, Any]:
    """The override's entry for one instance. `resolved` is its API's service as `compose
    config` gives it; `artifacts_dir` the model folder it serves; `port` its host port;
    `telemetry` its path ("pull" | "collector"; None: it exports no metrics)."""
    target = model_folder_target(resolved)
    own_folder = Path(instance.artifacts_dir or artifacts_dir)
    added = escaped(environment(instance, telemetry))
    folder = escaped(str(own_folder.resolve()))
    if instance.name == instance.service:  # the compose file's own service: added to
        entry: dict[str, Any] = {
            "environment": added,
            "deploy": {"resources": {"limits": _limits(instance, removable=False)}},
        }
        if instance.artifacts_dir is not None:
            entry["volumes"] = [f"{folder}:{target}:ro"]
        return entry
    entry = {k: copy.deepcopy(v) for k, v in resolved.items() if k not in NOT_COPIED}
    entry["container_name"] = instance.name
    entry["environment"] = dict(resolved.get("environment") or {}) | added
    deploy = entry.setdefault("deploy", {})
    deploy.setdefault("resources", {})["limits"] = _limits(instance, removable=True)
    entry["volumes"] = with_model_folder(list(resolved.get("volumes") or []), target, folder)
    entry["ports"] = [f"{host}:{port}:{resolved['environment'].get('PORT', '5000')}"]
    return entry


def instance_services(
    instances: Mapping[str, Instance],
    resolved: Mapping[str, Any],
    telemetry_of: Callable[[str], str | None],
    artifacts_dir: Path,
    ports: Mapping[str, int],
    host: str = "127.0.0.1",
) -> dict[str, dict[str, Any]]:
    """`instance_service` for every instance; `resolved` is `compose config`'s `services`."""
    services = {}
    for name, instance in instances.items():
        services[name] = instance_service(
            instance,
            resolved[instance.service],
            telemetry_of(name),
            artifacts_dir,
            ports[name],
            host,
        )
    return services


def check_names(instances: Mapping[str, Instance], compose_services: set[str]) -> None:
    """ValueError for an instance that would take another compose service's place: named like
    one of the infrastructure's services, or like an API but running another one."""
    for name, instance in instances.items():
        if name in compose_services and name != instance.service:
            raise ValueError(
                f"instance {name!r} runs {instance.service} but is named like the compose "
                f"service {name!r}: give it another name (e.g. {instance.service}.{name})"
            )


def run_override(
    prometheus_config: Path,
    data_dir: Path,
    user: str,
    services: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The per-run compose override: Prometheus' config and TSDB bind-mounted from the run
    folder and run as `user` (so the host reads the TSDB afterwards), and the instances'
    entries (`instance_service`)."""
    prometheus = {
        "user": user,
        "volumes": [
            f"{escaped(str(prometheus_config))}:/etc/prometheus/prometheus.yml:ro",
            f"{escaped(str(data_dir))}:/prometheus",
        ],
    }
    return {"services": {"prometheus": prometheus, **dict(services or {})}}


def write(path: Path, data_dir: Path, prometheus_config: Path, services: dict[str, Any]) -> Path:
    """The run override for `services`, its TSDB written as the calling user (the host reads
    it afterwards), into `path`."""
    user = f"{os.getuid()}:{os.getgid()}"
    content = run_override(prometheus_config, data_dir, user, services)
    return files.write_text(path, yaml.safe_dump(content, sort_keys=False))
