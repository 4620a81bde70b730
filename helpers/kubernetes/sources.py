"""What Kubernetes takes from the other backends: read from their own files, never retyped.

- docker-compose.yaml: each API's image, container port, environment, artifacts mount,
  `deploy.resources.limits`, numeric `user` (uid:gid, what the images' USER is) and `tmpfs`
  (what a read-only container may write); Prometheus' and k6's images and Prometheus' flags.
- docker-compose.scrape.yaml: the services' telemetry as Prometheus scrapes it (pull), which is
  how the cluster's Prometheus gets their histograms.
- helpers.serving.local.cgroups: the local backend's limits. Compose and the cgroups must agree
  (`budget()` raises if they drift), so the Deployments get the study's one budget.
- observability/prometheus/prometheus.scrape.yml: the scrape interval and timeout.

Compose files are read with PyYAML, not `docker compose config`: generating manifests must
not need Docker, and the only interpolation in the fields read is `${VAR:-default}`, whose
default is taken (any other form is refused).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers import paths
from helpers.serving.docker.compose import COMPOSE_FILE, SCRAPE_OVERRIDE
from helpers.serving.local import cgroups
from helpers.serving.services import SERVICE_NAMES, all_services

PROMETHEUS_SCRAPE_CONFIG = paths.OBSERVABILITY_DIR / "prometheus" / "prometheus.scrape.yml"
# Only for pushing OTLP to the collector, which the cluster does not run (Prometheus scrapes).
PUSH_ONLY_ENV = ("OTEL_EXPORTER_OTLP_", "OTEL_METRIC_EXPORT_INTERVAL")
_DEFAULTED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):-([^}]*)\}")
_DOCKER_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True)
class Budget:
    cpu_cores: float
    memory_bytes: int

    @property
    def cpu_quantity(self) -> str:
        return f"{round(self.cpu_cores * 1000)}m"

    @property
    def memory_quantity(self) -> str:
        mib = self.memory_bytes / cgroups.MIB
        if mib != int(mib):
            raise ValueError(f"memory limit {self.memory_bytes} B is not a whole number of MiB")
        return f"{int(mib)}Mi"


@dataclass(frozen=True)
class RunAs:
    """A numeric uid:gid, neither root: Kubernetes can prove `runAsNonRoot` only of numbers."""

    uid: int
    gid: int


@dataclass(frozen=True)
class ApiSource:
    name: str
    image: str
    container_port: int
    metrics_port: int
    artifacts_mount: str  # where the container reads the model and its manifest
    model_file: str  # inside the mount
    environment: dict[str, str]
    run_as: RunAs
    scratch: dict[str, int | None]  # compose's tmpfs: path → size in bytes (None: unbounded)


def default_of(value: Any) -> str:
    """`${VAR:-default}` → default (what compose uses with VAR unset); plain text unchanged."""
    text = str(value)
    resolved = _DEFAULTED.sub(lambda m: m.group(2), text)
    if "$" in resolved:
        raise ValueError(f"{text!r}: only ${{VAR:-default}} interpolation is understood here")
    return resolved


def compose(path: Path = COMPOSE_FILE) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def docker_memory_bytes(text: str) -> int:
    """Docker's memory notation (`128M`, `1g`, binary units) in bytes."""
    match = re.fullmatch(r"(\d+)([bkmg]?)", str(text).strip().lower())
    if not match:
        raise ValueError(f"memory limit {text!r}: expected a number with b, k, m or g")
    return int(match.group(1)) * _DOCKER_UNITS[match.group(2)]


def compose_limits(spec: dict[str, Any]) -> dict[str, Budget]:
    """Each API's `deploy.resources.limits` as compose states them."""
    limits = {}
    for name in SERVICE_NAMES:
        raw = spec["services"][name]["deploy"]["resources"]["limits"]
        limits[name] = Budget(float(raw["cpus"]), docker_memory_bytes(raw["memory"]))
    return limits


def local_budget() -> Budget:
    """The local backend's cgroup limits (helpers.serving.local.cgroups' defaults)."""
    return Budget(cgroups.DEFAULT_CPU_CORES, cgroups.DEFAULT_MEMORY_BYTES)


def budget(spec: dict[str, Any] | None = None) -> Budget:
    """The study's one budget; ValueError naming the drift if compose and the cgroups differ."""
    local = local_budget()
    for name, limit in compose_limits(spec or compose()).items():
        if limit != local:
            raise ValueError(
                f"{name}: docker-compose.yaml limits {limit} differ from the local backend's "
                f"cgroup limits {local}; make them agree before generating manifests"
            )
    return local


def apis(spec: dict[str, Any] | None = None, scrape: Path = SCRAPE_OVERRIDE) -> list[ApiSource]:
    """The three APIs as compose runs them with Prometheus scraping them (the scrape override)."""
    spec = spec or compose()
    override = yaml.safe_load(Path(scrape).read_text())["services"]
    specs = all_services()
    result = []
    for name in SERVICE_NAMES:
        service = spec["services"][name]
        env = {k: default_of(v) for k, v in service["environment"].items()}
        env |= {k: default_of(v) for k, v in override[name].get("environment", {}).items()}
        env = {k: v for k, v in env.items() if not k.startswith(PUSH_ONLY_ENV)}
        mount = _artifacts_mount(service["volumes"])
        model_file = specs[name].model_file
        if env["MODEL_PATH"] != f"{mount}/{model_file}":
            raise ValueError(f"{name}: MODEL_PATH {env['MODEL_PATH']} is not {mount}/{model_file}")
        result.append(
            ApiSource(
                name=name,
                image=default_of(service["image"]),
                container_port=int(env["PORT"]),
                metrics_port=int(env["OTEL_EXPORTER_PROMETHEUS_PORT"]),
                artifacts_mount=mount,
                model_file=model_file,
                environment=env,
                run_as=run_as(name, service.get("user")),
                scratch=scratch(service.get("tmpfs")),
            )
        )
    return result


def run_as(service: str, user: Any) -> RunAs:
    """Compose's `user: "uid:gid"`, both numbers and neither 0, else ValueError naming it."""
    match = re.fullmatch(r"(\d+):(\d+)", str(user or ""))
    ids = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if 0 in ids:
        raise ValueError(
            f"{service}: docker-compose.yaml `user` is {user!r}; expected a numeric non-root "
            '"uid:gid" (the image\'s USER, e.g. "10001:10001")'
        )
    return RunAs(*ids)


def scratch(tmpfs: Any) -> dict[str, int | None]:
    """Compose's `tmpfs` (`/tmp:size=16m,mode=1777`, one or a list) as path → size in bytes."""
    entries = [tmpfs] if isinstance(tmpfs, str) else list(tmpfs or [])
    result: dict[str, int | None] = {}
    for entry in entries:
        path, _, options = str(entry).partition(":")
        sizes = [o.split("=", 1)[1] for o in options.split(",") if o.startswith("size=")]
        result[path] = docker_memory_bytes(sizes[0]) if sizes else None
    return result


def _artifacts_mount(volumes: list[str]) -> str:
    for volume in volumes:
        parts = default_of(volume).split(":")
        if len(parts) >= 2 and parts[1].endswith("/artifacts"):
            return parts[1]
    raise ValueError(f"no artifacts volume among {volumes}")


def image(service: str, spec: dict[str, Any] | None = None) -> str:
    """The pinned image compose uses for `service` (prometheus, k6) with its variable unset."""
    return default_of((spec or compose())["services"][service]["image"])


def prometheus_flags(spec: dict[str, Any] | None = None) -> list[str]:
    return [default_of(flag) for flag in (spec or compose())["services"]["prometheus"]["command"]]


def scrape_timing(path: Path = PROMETHEUS_SCRAPE_CONFIG) -> dict[str, str]:
    """The `global` block both backends' Prometheus use (1 s: the profiles' stages are short)."""
    return dict(yaml.safe_load(Path(path).read_text())["global"])
