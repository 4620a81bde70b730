"""Which of the compose file's services run here, and how their metrics reach Prometheus.

The instances (one container each) and Prometheus always run; the collector, cAdvisor and
Grafana when their images are there (`choice`). Each instance's metrics travel its own path:
Prometheus scrapes its endpoint (`pull`, a job named after it) or it pushes OTLP to the
collector, which Prometheus scrapes (`collector`); the names and labels are the same either
way. Without cAdvisor, `helpers.serving.local.exporter` runs on the host against the
containers' cgroups and publishes cAdvisor's `container_*` names. The run's Prometheus config
has only the jobs whose targets exist, so every target must be up.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from helpers import net, paths
from helpers.serving import process
from helpers.serving.docker.choice import OPTIONAL_SERVICES
from helpers.serving.docker.compose import COMPOSE_FILE, SCRAPE_OVERRIDE
from helpers.serving.instances import Instance, default_instances
from helpers.serving.local import exporter
from helpers.serving.services import SERVICE_NAMES

PROMETHEUS_BASE = paths.OBSERVABILITY_DIR / "prometheus" / "prometheus.yml"
EXPORTER_JOB = exporter.JOB
# Where a service's own Prometheus endpoint listens in its container (x-api-environment's
# OTEL_EXPORTER_PROMETHEUS_PORT in docker-compose.yaml).
METRICS_PORT = 9464


@dataclass(frozen=True)
class Topology:
    optional: tuple[str, ...]  # the optional services that run (their image is there)
    unscraped: tuple[str, ...] = ()  # instances told to export no metrics (OTEL_METRICS_EXPORTER)
    metrics_via_collector: bool = True  # the stack's telemetry is "collector" (else "pull")
    apis: tuple[str, ...] = SERVICE_NAMES  # the instances that run, one container each
    pushed: tuple[str, ...] = ()  # instances that push OTLP to the collector; others are scraped

    @classmethod
    def for_images(
        cls,
        images: dict[str, str],
        service_env: dict[str, dict[str, str]] | None = None,
        telemetry: str = "pull",
        apis: tuple[str, ...] = SERVICE_NAMES,
    ) -> Topology:
        """One instance per API (`default_instances`), as a stack without `instances` runs."""
        return cls.for_instances(images, default_instances(apis, service_env), telemetry)

    @classmethod
    def for_instances(
        cls, images: dict[str, str], instances: Iterable[Instance], telemetry: str = "pull"
    ) -> Topology:
        """Each instance's telemetry path is its own, else the stack's `telemetry`. The
        collector runs when the stack's path is "collector" or an instance pushes to it (then
        its image is required), or when an instance sends spans (OTEL_TRACES_EXPORTER=otlp)."""
        instances = list(instances)
        pushed = tuple(
            i.name
            for i in instances
            if i.exports_metrics and (i.telemetry or telemetry) == "collector"
        )
        needed = telemetry == "collector" or bool(pushed)
        traced = any(i.environment.get("OTEL_TRACES_EXPORTER") == "otlp" for i in instances)
        wanted = {"otel-collector": needed or traced}
        optional = tuple(
            s
            for s, variable in OPTIONAL_SERVICES.items()
            if variable in images and wanted.get(s, True)
        )
        if needed and "otel-collector" not in optional:
            raise ValueError("telemetry 'collector' needs OTEL_COLLECTOR_IMAGE (none could be had)")
        silent = tuple(i.name for i in instances if not i.exports_metrics)
        names = tuple(i.name for i in instances)
        return cls(optional, silent, telemetry == "collector", names, pushed)

    collector = property(lambda self: "otel-collector" in self.optional)
    cadvisor = property(lambda self: "cadvisor" in self.optional)
    grafana = property(lambda self: "grafana" in self.optional)

    @property
    def services(self) -> list[str]:
        return [*self.apis, "prometheus", *self.optional]

    @property
    def watched(self) -> list[str]:
        """The containers whose death is a failure: the instances and what measures them."""
        return [*self.apis, "prometheus", *(s for s in self.optional if s != "grafana")]

    @property
    def scraped(self) -> list[str]:
        """The instances Prometheus scrapes directly (their own /metrics)."""
        return [n for n in self.apis if n not in self.unscraped and n not in self.pushed]

    def telemetry_of(self, name: str) -> str | None:
        """How an instance's metrics reach Prometheus: "pull", "collector", None (not at all)."""
        if name in self.unscraped:
            return None
        return "collector" if name in self.pushed else "pull"

    @property
    def compose_files(self) -> list[Path]:
        return [COMPOSE_FILE] if self.metrics_via_collector else [COMPOSE_FILE, SCRAPE_OVERRIDE]

    @property
    def jobs(self) -> list[str]:
        """Prometheus' jobs, every one of which must be up before the stack is ready."""
        server = [*self.scraped, *(["otel-collector"] if self.pushed else [])]
        return ["prometheus", *server, "cadvisor" if self.cadvisor else EXPORTER_JOB]

    def sentence(self) -> str:
        server = f"{len(self.pushed)} via the collector, {len(self.scraped)} scraped directly"
        container = "cAdvisor" if self.cadvisor else "the host cgroup exporter"
        return (
            f"services: {', '.join(self.services)}; server metrics: {server}; container "
            f"metrics from {container}"
        )

    def prometheus_config(self, exporter: str | None = None) -> str:
        return render_prometheus_config(self, exporter)


def render_prometheus_config(topology: Topology, exporter: str | None) -> str:
    """The run's Prometheus config, from the repo's prometheus.yml: its global settings and
    `prometheus` job; a job per scraped instance (`job` = instance name, as the local
    backend's); the collector's job (its `job` labels kept) if an instance pushes; cAdvisor's
    job keeping the instances' containers; the host cgroup exporter at `exporter` (its `name`
    label kept, as cAdvisor's)."""
    config = yaml.safe_load(PROMETHEUS_BASE.read_text())
    base = {job["job_name"]: job for job in config["scrape_configs"]}
    jobs = [base["prometheus"]]
    jobs += [
        {"job_name": name, "static_configs": [{"targets": [f"{name}:{METRICS_PORT}"]}]}
        for name in topology.scraped
    ]
    if topology.pushed:
        jobs.append(base["otel-collector"])
    if topology.cadvisor:
        cadvisor = copy.deepcopy(base["cadvisor"])
        for rule in cadvisor.get("metric_relabel_configs", []):
            if rule.get("action") == "keep" and rule.get("source_labels") == ["name"]:
                rule["regex"] = "|".join(name.replace(".", r"\.") for name in topology.apis)
        jobs.append(cadvisor)
    if exporter:
        target = {"targets": [exporter]}
        jobs.append({"job_name": EXPORTER_JOB, "honor_labels": True, "static_configs": [target]})
    config["scrape_configs"] = jobs
    header = f"# Written for this run from {PROMETHEUS_BASE.name} (helpers.serving.docker.topology)"
    return f"{header}.\n{yaml.safe_dump(config, sort_keys=False)}"


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
