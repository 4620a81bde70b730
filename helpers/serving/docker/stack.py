"""The `docker` backend: docker-compose.yaml behind the same `Stack` protocol as the local one.

`start_stack("docker", run_dir=..., artifacts_dir=...)` does, in order, and tears down whatever
it started if any step fails (Ctrl-C included):
1. the engine (`engine`): a running one is borrowed, else a private one is started;
2. the images (`choice`): what `compose config` pins where present or pullable, else the local
   stand-ins (`images`), each choice logged; `compose build` builds the three APIs with them;
3. the services that can run here (`topology`), `compose up` with a per-run override
   (`stack/docker-compose.run.yaml`, `override`: the run's Prometheus config and TSDB, written
   as the calling user so the host reads it afterwards, and one compose service per instance —
   helpers.serving.instances: its environment, limits, model folder and telemetry path);
4. readiness by polling (/healthz, Prometheus, every scrape target up once), failing fast when
   the engine reports a container dead; the limits read back from each container's cgroup
   (`readback`; `docker inspect` where the host cannot see it).
From `compose up` on, the engine's events are watched (`containers.ExitWatcher`): an instance,
Prometheus, the collector or cAdvisor that dies or is OOM-killed is recorded (`failures()`,
stack/events.json), and so is the host cgroup exporter's process; `restart(name)` stops and
starts an instance's container without that counting as a failure.
k6 runs as a container on the host network against the published 127.0.0.1 ports, with the k6
scripts and the run folder mounted at their host paths. `stop()` stops k6 and the stack, saves
each container's log to stack/logs/, runs `compose down`, stops the host exporter, and stops
the engine only if it started it.
"""

from __future__ import annotations

import atexit
import contextlib
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from helpers import files, machine, net, paths
from helpers.serving import collector, ports, process, prometheus_server
from helpers.serving.docker import (
    choice,
    engine,
    grafana,
    override,
    plan,
    readback,
    record,
    topology,
)
from helpers.serving.docker.compose import PROJECT, PROJECT_LABEL, SERVICE_LABEL, Compose
from helpers.serving.docker.containers import ExitWatcher, K6Container
from helpers.serving.instances import SERVICE_NAMES, Instance
from helpers.serving.local import cgroups, watch
from helpers.serving.protocol import (
    SERVICE_READY_TIMEOUT_S,
    ExitLog,
    Limits,
    ServiceExit,
    Stack,
    Usage,
    freeze_manifest,
    run_id_of,
)
from helpers.serving.teardown import Teardown

HOST = ports.HOST
STACK_LABEL = "org.onnx-serving-study.stack"  # on the k6 containers, to find leftovers
STOP_GRACE_S = 15


def log(message: str) -> None:
    print(f"[docker] {message}", file=sys.stderr, flush=True)


class DockerStack(Stack):
    """The compose stack, read back through the Docker SDK."""

    backend = "docker"

    def __init__(
        self,
        run_dir: Path,
        artifacts_dir: Path,
        ports_requested: dict[str, int] | None = None,
        service_env: dict[str, dict[str, str]] | None = None,
        images_mode: str | None = None,
        build: bool = True,
        telemetry: str = "pull",
        services: list[str] | None = None,
        instances: list[Instance] | None = None,
    ) -> None:
        collector.check_mode(telemetry)
        self.telemetry = telemetry
        self.instances = plan.choose_instances(instances, services, service_env)
        self.run_dir = Path(run_dir).resolve()
        self.artifacts_dir = Path(artifacts_dir).resolve()
        plan.check_model_folders(self.instances, self.artifacts_dir)
        self.service_env = {n: dict(i.environment) for n, i in self.instances.items()}
        self.images_mode, self.build = images_mode, build
        self.run_id = run_id_of(self.run_dir)
        self.stack_dir = self.run_dir / "stack"
        self.logs_dir = self.stack_dir / "logs"
        self.prometheus_config = self.run_dir / "prometheus" / "prometheus.yml"
        self.ports = plan.host_ports(self.instances, ports_requested)
        self.service_urls = {n: f"http://{HOST}:{self.ports[n]}" for n in self.instances}
        self.load_target_urls = dict(self.service_urls)
        self.prometheus_url = f"http://{HOST}:{self.ports['prometheus']}"
        self.remote_write_url = f"{self.prometheus_url}/api/v1/write"
        self.grafana_url: str | None = None
        self.grafana_password_file: Path | None = None  # None: the caller's own password
        self.limits: dict[str, Limits] = {}
        self.limits_enforced, self.limits_note = False, ""
        self.machine: dict[str, Any] = {}
        self.healthz: dict[str, Any] = {}
        self.engine: engine.DockerEngine | None = None
        self.client: Any = None
        self.compose: Compose | None = None
        self.images: dict[str, str] = {}  # and why each was chosen:
        self.image_reasons: dict[str, str] = {}
        self.topology = topology.Topology(())
        self.containers: dict[str, Any] = {}
        self.cgroups: dict[str, cgroups.Cgroup | None] = {}  # None: not readable on this host
        self.exporter: process.ManagedProcess | None = None  # the host's, for cAdvisor
        self.exporter_target: str | None = None
        self.load_generators: list[K6Container] = []
        self.exits = ExitLog(self.stack_dir)
        self.watcher: ExitWatcher | None = None
        self.process_watchers = watch.Watchers(self.exits, {}, {})  # the host exporter's
        self._stopped = False

    def start(self) -> DockerStack:
        """Bring the stack up; on any failure (Ctrl-C included) tear down what was started."""
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop()
            raise
        return self

    def _start(self) -> None:
        started = time.monotonic()
        self.machine = machine.describe()  # before anything of the stack loads the machine
        (self.run_dir / "prometheus" / "data").mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        freeze_manifest(self.artifacts_dir, self.stack_dir)
        self.engine = plan.acquire_engine()
        owner = "started for this stack" if self.engine.owned else "already running, borrowed"
        self.client = self.engine.client(timeout=600)
        env = plan.compose_environment(
            self.engine, self.client.info(), self.artifacts_dir, self.ports, HOST
        )
        self.compose = Compose(env, log_path=self.logs_dir / "compose.log")
        log(f"engine {self.engine.host} ({owner}); compose: {' '.join(self.compose.command)}")
        self._remove_leftovers()
        resolved = self.compose.config()
        override.check_names(self.instances, set(resolved["services"]))
        self.images, self.image_reasons = choice.resolve_images(
            self.client, choice.pinned_images(resolved), self.images_mode, log
        )
        self.compose.env |= self.images
        if self.build:
            apis = [s for s in SERVICE_NAMES if s in {i.service for i in self.instances.values()}]
            log(f"compose build {' '.join(apis)} (layer cache kept by the engine)")
            self.compose.run("build", *apis)
        self.topology = topology.Topology.for_instances(
            self.images, self.instances.values(), self.telemetry
        )
        self.prometheus_config.write_text(self.topology.prometheus_config())
        run_override = self._write_run_override(resolved["services"])
        self.compose.files = [*self.topology.compose_files, run_override]
        log(self.topology.sentence())
        if self.topology.grafana:
            added, self.grafana_password_file = grafana.login(self.compose.env, self.stack_dir)
            self.compose.env |= added
        watched = tuple(self.topology.watched)
        self.watcher = ExitWatcher(self.engine.client(), self.exits, watched)
        self.compose.up(self.topology.services)
        self.containers = {s: self._container(s) for s in self.topology.services}
        self.cgroups = {
            n: readback.container_cgroup(n, self.containers[n].attrs) for n in self.instances
        }
        self._read_limits()
        for name in self.instances:
            response = self._wait(name, f"{self.service_urls[name]}/healthz")
            self.healthz[name] = response.json()
        self._wait("prometheus", f"{self.prometheus_url}/-/ready")
        if not self.topology.cadvisor:
            self._start_exporter()
        prometheus_server.wait_for_targets(
            self.prometheus_url, set(self.topology.jobs), timeout_s=60
        )
        if self.topology.grafana:
            self.grafana_url = f"http://{HOST}:{self.ports['grafana']}"
            log(grafana.ready(self.grafana_url, self.compose.env, self.grafana_password_file))
        files.write_json(self.stack_dir / "stack.json", record.describe(self))
        log(f"stack ready in {time.monotonic() - started:.1f} s")

    def _remove_leftovers(self) -> None:
        """What an earlier, killed run left would hold the ports and container names."""
        for container in self.client.containers.list(all=True, filters={"label": STACK_LABEL}):
            container.remove(force=True)
        self.compose.run("down", "--remove-orphans", "-t", "0")

    def _write_run_override(self, resolved: dict[str, Any]) -> Path:
        """stack/docker-compose.run.yaml: the run's Prometheus, a service per instance."""
        return override.write(
            self.stack_dir / "docker-compose.run.yaml",
            self.run_dir / "prometheus" / "data",
            self.prometheus_config,
            override.instance_services(
                self.instances, resolved, self.topology.telemetry_of, self.artifacts_dir,
                self.ports,
            ),
        )  # fmt: skip

    def _container(self, service: str) -> Any:
        labels = [PROJECT_LABEL, f"com.docker.compose.service={service}"]
        found = self.client.containers.list(all=True, filters={"label": labels})
        if not found:
            raise RuntimeError(f"compose started no container for {service}")
        return found[0]

    def _read_limits(self) -> None:
        self.limits, self.limits_note = readback.all_limits(
            self.instances, {n: self.containers[n].attrs for n in self.instances}, self.cgroups
        )
        self.limits_enforced = all(limit.enforced for limit in self.limits.values())
        where = "cgroups" if all(self.cgroups.values()) else "docker inspect"
        log(f"limits read back from the containers' {where}: {self.limits}")
        if self.limits_note:  # loudly: every number of this run is measured without the budget
            print(f"{'!' * 78}\nLIMITS NOT ENFORCED — {self.limits_note}.\n{'!' * 78}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def _wait(self, service: str, url: str) -> httpx.Response:
        """Poll `url` until 2xx; fail fast, with the container's log, if its container dies."""
        try:
            return net.wait_until_ready(
                url, SERVICE_READY_TIMEOUT_S, gone=self.watcher.gone(service)
            )
        except net.NotReady as error:
            tail = self.containers[service].logs(tail=30).decode(errors="replace")
            raise net.NotReady(f"{service}: {error}\n--- its last lines ---\n{tail}") from None

    def _start_exporter(self) -> None:
        self.exporter, self.exporter_target = topology.start_host_exporter(
            self.containers, self.client, self.logs_dir, self.topology.apis
        )
        self.process_watchers.processes[topology.EXPORTER_JOB] = self.exporter
        self.process_watchers.watch(topology.EXPORTER_JOB)
        # The same file, rewritten in place: the bind mount follows the inode, not the name.
        self.prometheus_config.write_text(self.topology.prometheus_config(self.exporter_target))
        # SIGHUP, not POST /-/reload: Prometheus runs without --web.enable-lifecycle. Whether
        # it took the new config shows as the exporter's job coming up (wait_for_targets).
        self.containers["prometheus"].kill(signal="SIGHUP")
        log(f"container metrics: host cgroup exporter on {self.exporter_target}")

    def failures(self) -> list[ServiceExit]:
        return self.exits.all()

    def usage(self, name: str) -> Usage:
        """The instance's counters now, from its container's cgroup (`readback.usage`)."""
        return readback.usage(self.cgroups[name], self.containers[name])

    def restart(self, name: str) -> float:
        """Stop the instance's container (SIGTERM, then SIGKILL after the grace period, as
        `docker stop`) and start it again — same container, config and limits; returns the
        moment it was asked to start (unix seconds), not when it is ready. Its watcher does
        not count this stop as a failure; a later exit still is one."""
        if name not in self.instances:
            raise KeyError(f"no instance {name!r} in this stack: {list(self.instances)}")
        container = self.containers[name]
        container.reload()
        with self.watcher.expecting_exit(name, running=container.status == "running"):
            container.stop(timeout=STOP_GRACE_S)
        spawned = time.time()
        container.start()
        container.reload()  # its new pid (the cgroup keeps its path: named after the id)
        return spawned

    def start_load_generator(
        self, args: list[str], env: dict[str, str], log_path: Path
    ) -> K6Container:
        """`k6 <args>` in a container (K6_IMAGE) on the host network, outside every limit, with
        the k6 scripts and the run folder at their host paths; stopped with the stack."""
        if self._stopped or self.client is None:
            raise RuntimeError("the stack is stopped; start a new one")
        generator = K6Container.run(
            self.client,
            self.images["K6_IMAGE"],
            args,
            env,
            Path(log_path),
            mounts={paths.K6_DIR: "ro", self.run_dir: "rw"},
            name=f"{PROJECT}-k6-{self.run_id}-{len(self.load_generators) + 1}",
            labels={STACK_LABEL: self.run_id},
        )
        self.load_generators.append(generator)
        return generator

    def _save_logs(self) -> None:
        for container in self.client.containers.list(all=True, filters={"label": PROJECT_LABEL}):
            service = container.labels.get(SERVICE_LABEL, container.name)
            (self.logs_dir / f"{service}.log").write_bytes(container.logs())

    def stop(self) -> None:
        """Stop k6, the stack (logs saved first), the exporter, and our engine. Idempotent;
        every step runs even if an earlier one failed, the first error is raised at the end."""
        if self._stopped:
            return
        self._stopped = True
        self.process_watchers.stopping.set()
        with Teardown() as teardown:
            teardown.stop_all(self.load_generators)
            if self.watcher is not None:
                teardown.step(self.watcher.close)
            if self.compose is not None and self.watcher is not None:
                teardown.step(self.compose.run, "stop", "-t", str(STOP_GRACE_S))
                teardown.step(self._save_logs)
                teardown.step(self.compose.run, "down", "--volumes", "--remove-orphans", "-t", "5")
            if self.exporter is not None:
                teardown.step(self.exporter.stop)
            if self.client is not None:
                teardown.step(self.client.close)
            if self.engine is not None and self.engine.owned:
                teardown.step(self.engine.stop)
            atexit.unregister(self.stop)


def start_docker_stack(
    *,
    run_dir: Path,
    artifacts_dir: Path,
    ports: dict[str, int] | None = None,
    service_env: dict[str, dict[str, str]] | None = None,
    images: str | None = None,
    build: bool = True,
    telemetry: str = "pull",
    services: list[str] | None = None,
    instances: list[Instance] | None = None,
) -> DockerStack:
    """The docker backend's starter (`start_stack("docker", ...)`). `instances` says what runs
    (helpers.serving.instances), a container each; without it, one instance per service of
    `services` (default all three), with `service_env` added per service, as in the local
    backend. `images` overrides STUDY_DOCKER_IMAGES (auto|registry|local); `build=False` uses
    the images already built; `telemetry` is the default path: "pull" (Prometheus scrapes the
    instances) or "collector" (they push OTLP to it)."""
    return DockerStack(
        run_dir, artifacts_dir, ports, service_env, images, build, telemetry, services, instances
    ).start()
