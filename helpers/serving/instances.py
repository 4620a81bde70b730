"""Instances: what a stack runs — one of the three services, in one configuration, under its
own limits.

The study's questions compare configurations side by side on one stack (helpers.load.
interleave): the tuned service and the same service with one setting flipped, a service and
its no-op floor, 0.25 and 1 CPU, one worker and two. Each such configuration is an
*instance*: a name unique in the stack, the service it runs, the environment that configures
it, the model folder it serves, its CPU and memory limits and its telemetry path. A stack
started with only `services`/`service_env` runs one instance per service, named after it,
under the study's budget — what notebooks 03–05 serve.

Instance names are what every record says: cgroups, logs, Prometheus' `service_name` and
`name` labels, the windows' `target`. They are DNS-label-like (`python-api-onnx.noop`), so
they are valid everywhere they go (a compose service, a cgroup, a label value).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

SERVICE_NAMES = ("python-api-pkl", "python-api-onnx", "go-api-onnx")
BUDGET_CPU_CORES = 0.5
BUDGET_MEMORY_BYTES = 128 * 1024 * 1024
TELEMETRY_PATHS = ("pull", "collector")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class Instance:
    name: str
    service: str  # one of SERVICE_NAMES
    environment: Mapping[str, str] = field(default_factory=dict)
    artifacts_dir: Path | None = None  # None: the stack's
    cpu_cores: float | None = BUDGET_CPU_CORES  # None: no quota
    memory_bytes: int | None = BUDGET_MEMORY_BYTES  # None: no limit
    telemetry: str | None = None  # "pull" | "collector"; None: the stack's

    def __post_init__(self) -> None:
        if self.service not in SERVICE_NAMES:
            raise ValueError(f"instance {self.name!r}: unknown service {self.service!r}")
        if not _NAME.match(self.name):
            raise ValueError(
                f"instance name {self.name!r}: expected lower-case letters, digits, '.' and '-'"
            )
        if self.cpu_cores is not None and not self.cpu_cores > 0:
            raise ValueError(f"instance {self.name!r}: cpu_cores must be > 0")
        if self.memory_bytes is not None and self.memory_bytes < 16 * 1024 * 1024:
            raise ValueError(f"instance {self.name!r}: memory_bytes below 16 MiB")
        if self.telemetry is not None and self.telemetry not in TELEMETRY_PATHS:
            raise ValueError(f"instance {self.name!r}: telemetry {self.telemetry!r}")

    @property
    def exports_metrics(self) -> bool:
        return self.environment.get("OTEL_METRICS_EXPORTER", "prometheus") != "none"


def variant(service: str, tag: str = "", **options: object) -> Instance:
    """`service` itself (no tag) or `service.tag`, with `options` (environment, limits …)."""
    return Instance(f"{service}.{tag}" if tag else service, service, **options)  # type: ignore[arg-type]


def default_instances(
    services: Iterable[str] | None = None,
    service_env: Mapping[str, Mapping[str, str]] | None = None,
) -> list[Instance]:
    """One instance per service under the budget: what `services`/`service_env` ask for."""
    chosen = list(services) if services is not None else list(SERVICE_NAMES)
    unknown = sorted({*chosen, *(service_env or {})} - set(SERVICE_NAMES))
    if unknown:
        raise ValueError(f"unknown services {unknown}: expected some of {list(SERVICE_NAMES)}")
    missing = sorted(set(service_env or {}) - set(chosen))
    if missing:
        raise ValueError(f"service_env names services that are not started: {missing}")
    return [Instance(s, s, dict((service_env or {}).get(s, {}))) for s in chosen]


def check_unique(instances: Iterable[Instance]) -> dict[str, Instance]:
    """name → instance; ValueError on an empty list or a repeated name."""
    by_name: dict[str, Instance] = {}
    for each in instances:
        if each.name in by_name:
            raise ValueError(f"two instances are named {each.name!r}")
        by_name[each.name] = each
    if not by_name:
        raise ValueError("a stack needs at least one instance")
    return by_name
