"""The local backend: the stack's instances as processes on 127.0.0.1, each in its own cgroup.

Each instance (helpers.serving.instances: one of the three services in one configuration)
runs in `onnx-study/<run-id>/<instance>` limited like a container (by default 0.5 CPU / 128
MiB, joined before exec); the real Prometheus binary scrapes them once a second, and
`helpers.serving.local.exporter` publishes every cgroup under cAdvisor's metric names, so the same
PromQL answers as under Docker. k6 runs as a plain process outside the cgroups. If cgroups
cannot be made, the stack runs unlimited and says so loudly (`limits_enforced` false).

Telemetry travels one of two ways, per instance (`Instance.telemetry`, else the stack's
`telemetry`): `pull` — Prometheus scrapes the instance's own endpoint, as the contract's local
default; `collector` — the instance pushes OTLP to the OpenTelemetry Collector
(helpers.serving.collector) and Prometheus scrapes that, the post's path. Either way the same
PromQL answers, and the collector's own CPU and memory are measured.

A watcher thread per process — every instance, and Prometheus, the exporter and the collector
that measure them — notices the moment one exits while the stack runs and records it
(`Stack.failures()`, stack/events.json), with the OOM kills its cgroup counted: a dead
Prometheus or exporter would otherwise read as a quiet service.
"""

from __future__ import annotations

import atexit
import os
import time
from pathlib import Path
from typing import Any

from helpers import files, machine, net, paths
from helpers.serving import collector, ports, process, prometheus_server
from helpers.serving.instances import Instance, check_unique, default_instances
from helpers.serving.local import (
    cgroup_removal,
    cgroup_stats,
    cgroups,
    exporter,
    limits,
    record,
    watch,
)
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
from helpers.serving.services import ServiceSpec, all_services
from helpers.serving.teardown import Teardown

HOST = ports.HOST
PROMETHEUS_KEY = "prometheus"


class LocalStack(Stack):
    """Processes on 127.0.0.1, cgroups for limits, the Prometheus binary."""

    backend = "local"

    def __init__(
        self,
        run_dir: Path,
        artifacts_dir: Path,
        ports_requested: dict[str, int] | None = None,
        service_env: dict[str, dict[str, str]] | None = None,
        telemetry: str = "pull",
        services: list[str] | None = None,
        instances: list[Instance] | None = None,
    ) -> None:
        collector.check_mode(telemetry)
        self.run_dir = Path(run_dir).resolve()
        self.artifacts_dir = Path(artifacts_dir).resolve()
        if instances is not None and (services is not None or service_env):
            raise ValueError("give instances, or services/service_env: not both")
        self.instances = check_unique(instances or default_instances(services, service_env))
        known = all_services()
        self.specs: dict[str, ServiceSpec] = {
            name: known[instance.service] for name, instance in self.instances.items()
        }
        self.service_env = {n: dict(i.environment) for n, i in self.instances.items()}
        self.telemetry = telemetry
        self.telemetry_of = {n: i.telemetry or telemetry for n, i in self.instances.items()}
        self.with_collector = collector.needed("pull", self.service_env) or any(
            self.telemetry_of[n] == "collector" for n in self._exporting()
        )
        self.run_id = run_id_of(self.run_dir)
        self.stack_dir = self.run_dir / "stack"
        self.logs_dir = self.stack_dir / "logs"
        named = [n for n in self.instances if n in ports.DEFAULTS]  # the seed's own ports
        self.ports = ports.resolve(
            named=[*named, PROMETHEUS_KEY],
            free=[
                exporter.JOB,
                *(n for n in self.instances if n not in named),
                *(f"{name}-metrics" for name in self.instances),
                *(collector.PORT_KEYS.values() if self.with_collector else ()),
            ],
            requested=ports_requested,
        )
        self.service_urls = {n: f"http://{HOST}:{self.ports[n]}" for n in self.instances}
        self.load_target_urls = dict(self.service_urls)
        self.metrics_urls = {
            n: f"http://{HOST}:{self.ports[f'{n}-metrics']}/metrics" for n in self.instances
        }
        self.prometheus_url = f"http://{HOST}:{self.ports[PROMETHEUS_KEY]}"
        self.remote_write_url = f"{self.prometheus_url}/api/v1/write"
        self.exporter_url = f"http://{HOST}:{self.ports[exporter.JOB]}/metrics"
        self.limits: dict[str, Limits] = {}
        self.limits_enforced = False
        self.limits_note = ""
        self.machine: dict[str, Any] = {}
        self.cgroups: dict[str, cgroups.Cgroup] = {}
        self.processes: dict[str, process.ManagedProcess] = {}
        self.load_generators: list[process.ManagedProcess] = []
        self.healthz: dict[str, Any] = {}
        self.stale_cgroups_removed: list[str] = []
        self.exits = ExitLog(self.stack_dir)
        self.watchers = watch.Watchers(self.exits, self.processes, self.cgroups)
        self._stopped = False

    # -- start ----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        """Start everything in order; on any failure (or Ctrl-C) tear down what was started."""
        self._check_inputs()
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _check_inputs(self) -> None:
        manifest = self.artifacts_dir / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found: train the model first (notebook 01)")
        for name, instance in self.instances.items():
            folder = instance.artifacts_dir or self.artifacts_dir
            if not (Path(folder) / "manifest.json").is_file():
                raise FileNotFoundError(f"{name}: no manifest.json in {folder}")
        for spec in self.specs.values():
            if not Path(spec.argv[0]).exists():
                raise FileNotFoundError(
                    f"{spec.name}: {spec.argv[0]} not found; run `make setup` to build the services"
                )
        prometheus_server.binary()
        if self.with_collector:
            collector.binary()

    def _start(self) -> None:
        self.machine = machine.describe()  # before anything of the stack loads the machine
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        freeze_manifest(self.artifacts_dir, self.stack_dir)
        self.stale_cgroups_removed = cgroup_removal.clean_stale(keep_run=self.run_id)
        self._create_cgroups()
        jobs = [
            prometheus_server.ScrapeTarget(n, self.metrics_urls[n].split("/")[2])
            for n in self._pulled()
        ]
        if self._pushed():
            address = f"{HOST}:{self.ports[collector.PORT_KEYS['OTELCOL_PROMETHEUS_ENDPOINT']]}"
            jobs.append(prometheus_server.ScrapeTarget(collector.NAME, address, honor_labels=True))
        config = prometheus_server.render_config(
            prometheus_address=self.prometheus_url.split("//")[1],
            exporter_address=self.exporter_url.split("/")[2],
            services=jobs,
        )
        self.processes[PROMETHEUS_KEY] = prometheus_server.start(
            config, self.run_dir, self.ports[PROMETHEUS_KEY], self.log_path(PROMETHEUS_KEY)
        )
        if self.limits_enforced:
            self._start_exporter()
        if self.with_collector:
            self.processes[collector.NAME] = collector.start(
                HOST,
                self.ports,
                self.log_path(collector.NAME),
                [cgroups.join_before_exec(self.cgroups[collector.NAME])],
            )
        for name in self.instances:
            self._start_service(name)
        for name in self.instances:
            self._wait_service(name)
        if not self.limits_enforced:
            self._start_exporter()  # the process-based fallback needs the services' pids
        pulled = {*self._pulled(), *([collector.NAME] if self._pushed() else [])}
        prometheus_server.wait_for_targets(self.prometheus_url, {*pulled, exporter.JOB})
        for name in self.processes:
            self.watchers.watch(name)
        self._write_stack_json()

    def _exporting(self) -> list[str]:
        """Instances with metrics on: all but those told to export none (the overhead ladder
        measures a service without its telemetry)."""
        return [n for n, i in self.instances.items() if i.exports_metrics]

    def _pulled(self) -> list[str]:
        return [n for n in self._exporting() if self.telemetry_of[n] == "pull"]

    def _pushed(self) -> list[str]:
        return [n for n in self._exporting() if self.telemetry_of[n] == "collector"]

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _create_cgroups(self) -> None:
        self.limits_note = limits.create_cgroups(
            self.run_id, self.run_dir, self.instances, self.with_collector, self.cgroups,
            self.limits,
        )  # fmt: skip
        self.limits_enforced = all(self.cgroups[name].enforced for name in self.instances)

    def _start_exporter(self) -> None:
        pids = {name: p.pid for name, p in self.processes.items()}
        argv = exporter.command(HOST, self.ports[exporter.JOB], self.cgroups, pids)
        managed = process.start(
            exporter.JOB, argv, self.log_path(exporter.JOB), cwd=paths.REPO_ROOT
        )
        self.processes[exporter.JOB] = managed
        self._wait(exporter.JOB, self.exporter_url, timeout_s=20.0)

    def _start_service(self, name: str) -> None:
        instance, spec = self.instances[name], self.specs[name]
        pulled = name in self._pulled()
        overrides = {"OTEL_SERVICE_NAME": name}
        if self.with_collector:
            overrides |= collector.service_environment(HOST, self.ports, name in self._pushed())
        env = spec.environment(
            Path(instance.artifacts_dir or self.artifacts_dir).resolve(),
            port=self.ports[name],
            metrics_port=self.ports[f"{name}-metrics"] if pulled else None,
            host=HOST,
            overrides=overrides | self.service_env[name],
        )
        self.processes[name] = process.start(
            name,
            spec.argv,
            self.log_path(name),
            env=env,
            cwd=spec.cwd,
            before_exec=[cgroups.join_before_exec(self.cgroups[name])],
        )

    def _wait_service(self, name: str) -> None:
        response = self._wait(name, f"{self.service_urls[name]}/healthz", SERVICE_READY_TIMEOUT_S)
        try:
            self.healthz[name] = response.json()
        except ValueError:
            self.healthz[name] = {"raw": response.text[:200]}

    def _wait(self, name: str, url: str, timeout_s: float):
        managed = self.processes[name]
        try:
            return net.wait_until_ready(url, timeout_s=timeout_s, process=managed.popen)
        except net.NotReady as error:
            raise net.NotReady(
                f"{name} did not become ready: {error}\n--- last lines of {managed.log_path} ---\n"
                f"{managed.log_tail(30)}"
            ) from error

    def failures(self) -> list[ServiceExit]:
        return self.exits.all()

    def usage(self, name: str) -> Usage:
        return cgroup_stats.usage(self.cgroups[name], self.processes[name].pid)

    def restart(self, name: str) -> float:
        """Stop the instance (SIGTERM, as a scheduler would) and spawn it again in its cgroup;
        returns the spawn time. Its watcher ignores the stop it asked for."""
        if name not in self.instances:
            raise KeyError(f"no instance {name!r} in this stack: {list(self.instances)}")
        self.watchers.restarting.add(name)
        try:
            self.processes[name].stop()
            spawned = time.time()
            self._start_service(name)
        finally:
            self.watchers.restarting.discard(name)
        self.watchers.watch(name)
        return spawned

    # -- record ---------------------------------------------------------------------------

    def _write_stack_json(self) -> None:
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        files.write_json(self.stack_dir / "stack.json", record.describe(self))

    # -- load and stop ----------------------------------------------------------------------

    def start_load_generator(
        self, args: list[str], env: dict[str, str], log_path: Path
    ) -> process.ManagedProcess:
        """`k6 <args>` as a plain process, outside every cgroup: the generator must not eat
        the services' budget (nor be throttled by it). Stopped with the stack if still running.
        """
        if self._stopped:
            raise RuntimeError("the stack is stopped; start a new one")
        managed = process.start(
            "k6",
            [str(paths.k6_binary()), *args],
            Path(log_path),
            env={**os.environ, **env},
            cwd=paths.REPO_ROOT,
        )
        self.load_generators.append(managed)
        return managed

    def stop(self) -> None:
        """Stop k6, the services, the exporter, Prometheus; remove the cgroups. Idempotent.

        Every step runs even if an earlier one failed; the first error is raised at the end.
        """
        if self._stopped:
            return
        self._stopped = True
        self.watchers.stopping.set()
        with Teardown() as teardown:
            teardown.stop_all(self.load_generators)
            for names in (list(self.instances), [collector.NAME, exporter.JOB], [PROMETHEUS_KEY]):
                teardown.stop_all(self.processes[n] for n in names if n in self.processes)
            for group in self.cgroups.values():
                teardown.step(cgroup_removal.remove_cgroup, group)
            teardown.step(cgroup_removal.remove_run, self.run_id)
            atexit.unregister(self.stop)


def start_local_stack(
    *,
    run_dir: Path,
    artifacts_dir: Path,
    ports: dict[str, int] | None = None,
    service_env: dict[str, dict[str, str]] | None = None,
    telemetry: str = "pull",
    services: list[str] | None = None,
    instances: list[Instance] | None = None,
) -> LocalStack:
    """The local backend's starter. `instances` says what runs (helpers.serving.instances);
    without it, one instance per service of `services` (default all three), with
    `service_env` added per service (ACCESS_LOG, OTEL_TRACES_EXPORTER, …). `telemetry` is the
    default path: "pull" (Prometheus scrapes) or "collector" (instances push to it)."""
    return LocalStack(
        run_dir, artifacts_dir, ports, service_env, telemetry, services, instances
    ).start()
