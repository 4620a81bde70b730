"""Which of the compose file's services run here, and how their metrics reach Prometheus.

The APIs and Prometheus always run; the collector, cAdvisor and Grafana when their images are
there (`choice`). Without the collector, `docker-compose.scrape.yaml` has Prometheus scrape the
APIs' own endpoints (same names and labels); without cAdvisor, `helpers.serving.local.exporter` runs
on the host against the containers' cgroups and publishes cAdvisor's `container_*` names. The
run's Prometheus config keeps only the jobs whose targets exist, so every target must be up.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers import net, paths
from helpers.serving import process
from helpers.serving.docker.choice import OPTIONAL_SERVICES
from helpers.serving.docker.compose import COMPOSE_FILE, SCRAPE_OVERRIDE
from helpers.serving.local import exporter
from helpers.serving.services import SERVICE_NAMES

PROMETHEUS_CONFIGS = paths.OBSERVABILITY_DIR / "prometheus"
EXPORTER_JOB = exporter.JOB


@dataclass(frozen=True)
class Topology:
    optional: tuple[str, ...]  # the optional services that run (their image is there)
    unscraped: tuple[str, ...] = ()  # services told to export no metrics (OTEL_METRICS_EXPORTER)
    metrics_via_collector: bool = True  # telemetry="collector"; "pull": Prometheus scrapes APIs
    apis: tuple[str, ...] = SERVICE_NAMES  # the APIs that run (all three unless a subset)

    @classmethod
    def for_images(
        cls,
        images: dict[str, str],
        service_env: dict[str, dict[str, str]] | None = None,
        telemetry: str = "pull",
        apis: tuple[str, ...] = SERVICE_NAMES,
    ) -> Topology:
        """telemetry "collector" (the post's path) needs the collector's image; "pull" runs
        the collector only when a service sends spans (OTEL_TRACES_EXPORTER=otlp)."""
        envs = service_env or {}
        traced = any(env.get("OTEL_TRACES_EXPORTER") == "otlp" for env in envs.values())
        wanted = {"otel-collector": telemetry == "collector" or traced}
        optional = tuple(
            s
            for s, variable in OPTIONAL_SERVICES.items()
            if variable in images and wanted.get(s, True)
        )
        if telemetry == "collector" and "otel-collector" not in optional:
            raise ValueError("telemetry='collector' needs OTEL_COLLECTOR_IMAGE (none could be had)")
        silent = [s for s, env in envs.items() if env.get("OTEL_METRICS_EXPORTER") == "none"]
        return cls(optional, tuple(silent), telemetry == "collector", tuple(apis))

    collector = property(lambda self: "otel-collector" in self.optional)
    cadvisor = property(lambda self: "cadvisor" in self.optional)
    grafana = property(lambda self: "grafana" in self.optional)

    @property
    def services(self) -> list[str]:
        return [*self.apis, "prometheus", *self.optional]

    @property
    def compose_files(self) -> list[Path]:
        return [COMPOSE_FILE] if self.metrics_via_collector else [COMPOSE_FILE, SCRAPE_OVERRIDE]

    @property
    def prometheus_base(self) -> Path:
        name = "prometheus.yml" if self.metrics_via_collector else "prometheus.scrape.yml"
        return PROMETHEUS_CONFIGS / name

    @property
    def jobs(self) -> list[str]:
        """Prometheus' jobs, every one of which must be up before the stack is ready."""
        scraped = [name for name in self.apis if name not in self.unscraped]
        server = ["otel-collector"] if self.metrics_via_collector else scraped
        return ["prometheus", *server, "cadvisor" if self.cadvisor else EXPORTER_JOB]

    def sentence(self) -> str:
        server = "via the collector" if self.metrics_via_collector else "scraped directly"
        container = "cAdvisor" if self.cadvisor else "the host cgroup exporter"
        return (
            f"services: {', '.join(self.services)}; server metrics {server}; container "
            f"metrics from {container}"
        )

    def prometheus_config(self, exporter: str | None = None) -> str:
        return render_prometheus_config(self.prometheus_base, self.jobs, exporter)


def render_prometheus_config(base: Path, keep_jobs: list[str], exporter: str | None) -> str:
    """The run's Prometheus config: the repo's `base` with only the jobs in `keep_jobs`, plus
    the host cgroup exporter at `exporter` (its `name` label kept, as cAdvisor's)."""
    config = yaml.safe_load(base.read_text())
    jobs = [job for job in config["scrape_configs"] if job["job_name"] in keep_jobs]
    if exporter:
        target = {"targets": [exporter]}
        jobs.append({"job_name": EXPORTER_JOB, "honor_labels": True, "static_configs": [target]})
    config["scrape_configs"] = jobs
    header = f"# Written for this run from {base.name} (helpers.serving.docker.topology).\n"
    return header + yaml.safe_dump(config, sort_keys=False)


def run_override(
    prometheus_config: Path, data_dir: Path, user: str, service_env: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The per-run compose override: Prometheus' config and TSDB bind-mounted from the run
    folder and run as `user` (so the host reads the TSDB afterwards), and each service's extra
    environment (`$` doubled: compose must not interpolate a value)."""
    services: dict[str, Any] = {
        "prometheus": {
            "user": user,
            "volumes": [
                f"{prometheus_config}:/etc/prometheus/prometheus.yml:ro",
                f"{data_dir}:/prometheus",
            ],
        }
    }
    for name, env in service_env.items():
        services[name] = {"environment": {k: v.replace("$", "$$") for k, v in env.items()}}
    return {"services": services}


def cgroup_relpath(pid: int, proc: Path = Path("/proc")) -> str:
    """The cgroup of process `pid` relative to the hierarchy roots, as the exporter wants it:
    v2's `0::` line, or v1's memory controller (docker puts every controller at one path).
    Read from /proc by hand: psutil does not expose a process' cgroup."""
    lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    by_controllers = dict(line.split(":", 2)[1:] for line in lines)
    for controllers, path in by_controllers.items():
        if "memory" in controllers.split(","):
            return path.strip("/")
    if "" in by_controllers:
        return by_controllers[""].strip("/")
    raise OSError(f"no memory or unified cgroup in /proc/{pid}/cgroup: {lines}")


def start_host_exporter(
    containers: dict[str, Any], client: Any, logs_dir: Path, apis: tuple[str, ...] = SERVICE_NAMES
) -> tuple[process.ManagedProcess, str]:
    """`helpers.serving.local.exporter` on the host for the APIs' containers, listening on the
    project network's gateway (the host side of its bridge: Prometheus' container reaches it,
    nothing beyond this machine does). Returns the process and its host:port, once it answers."""
    argv = [sys.executable, "-m", "helpers.serving.local.exporter"]
    for name in apis:
        pid = int(containers[name].attrs["State"].get("Pid") or 0)
        try:
            argv += ["--cgroup", f"{name}={cgroup_relpath(pid)}"]
        except OSError as error:
            raise RuntimeError(
                f"no cAdvisor image and the cgroup of {name} (pid {pid}) is not readable here "
                f"({error}): the engine runs elsewhere (a VM?). Make CADVISOR_IMAGE available, "
                "or use backend='local'"
            ) from error
    network = next(iter(containers["prometheus"].attrs["NetworkSettings"]["Networks"]))
    ipam = client.networks.get(network).attrs["IPAM"]["Config"]
    gateway = next(c["Gateway"] for c in ipam if ":" not in c.get("Gateway", ":"))
    port = net.free_port(gateway)
    argv += ["--host", gateway, "--port", str(port)]
    exporter = process.start(
        EXPORTER_JOB, argv, logs_dir / f"{EXPORTER_JOB}.log", cwd=paths.REPO_ROOT
    )
    try:
        net.wait_until_ready(f"http://{gateway}:{port}/metrics", 20, exporter.popen)
    except net.NotReady as error:
        exporter.stop()
        raise net.NotReady(f"{error}\n{exporter.log_tail()}") from error
    return exporter, f"{gateway}:{port}"
