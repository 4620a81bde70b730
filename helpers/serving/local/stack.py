"""The local backend: the three services as processes on 127.0.0.1, each in its own cgroup.

Each service runs in `onnx-study/<run-id>/<service>` limited like a container (0.5 CPU / 128
MiB, joined before exec); the real Prometheus binary scrapes the services once a second, and
`helpers.serving.local.exporter` publishes every cgroup under cAdvisor's metric names, so the same
PromQL answers as under Docker. k6 runs as a plain process outside the cgroups. If cgroups
cannot be made, the stack runs unlimited and says so loudly (`limits_enforced` false).

Telemetry travels one of two ways (`telemetry`): `pull` (default) — Prometheus scrapes each
service's own endpoint, as the contract's local default; `collector` — the services push OTLP
to the OpenTelemetry Collector (helpers.serving.collector) and Prometheus scrapes it, the post's
path. Either way the same PromQL answers, and the collector's own CPU and memory are measured.

A watcher thread per service notices the moment a service exits while the stack runs and
records it (`Stack.failures()`, stack/events.json) with the OOM kills its cgroup counted.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

from helpers import net, paths
from helpers.serving import collector, ports, process, prometheus_server
from helpers.serving.local import cgroup_removal, cgroup_stats, cgroups, exporter, limits, record
from helpers.serving.protocol import (
    SERVICE_READY_TIMEOUT_S,
    ExitLog,
    Limits,
    ServiceExit,
    Stack,
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
    ) -> None:
        collector.check_mode(telemetry)
        self.run_dir = Path(run_dir).resolve()
        self.artifacts_dir = Path(artifacts_dir).resolve()
        self.specs: dict[str, ServiceSpec] = all_services()
        unknown = sorted(set(services or []) - set(self.specs))
        if unknown:
            raise ValueError(f"services names unknown services {unknown}: {list(self.specs)}")
        if services is not None:  # a subset: e.g. a model only the pickle service can serve
            self.specs = {name: spec for name, spec in self.specs.items() if name in services}
        unknown = sorted(set(service_env or {}) - set(self.specs))
        if unknown:
            raise ValueError(f"service_env names unknown services {unknown}: {list(self.specs)}")
        self.service_env = {name: dict(env) for name, env in (service_env or {}).items()}
        self.telemetry = telemetry
        self.with_collector = collector.needed(telemetry, self.service_env)
        self.run_id = run_id_of(self.run_dir)
        self.stack_dir = self.run_dir / "stack"
        self.logs_dir = self.stack_dir / "logs"
        self.ports = ports.resolve(
            named=[*self.specs, PROMETHEUS_KEY],
            free=[
                exporter.JOB,
                *(f"{name}-metrics" for name in self.specs),
                *(collector.PORT_KEYS.values() if self.with_collector else ()),
            ],
            requested=ports_requested,
        )
        self.service_urls = {n: f"http://{HOST}:{self.ports[n]}" for n in self.specs}
        self.load_target_urls = dict(self.service_urls)
        self.metrics_urls = {
            n: f"http://{HOST}:{self.ports[f'{n}-metrics']}/metrics" for n in self.specs
        }
        self.prometheus_url = f"http://{HOST}:{self.ports[PROMETHEUS_KEY]}"
        self.remote_write_url = f"{self.prometheus_url}/api/v1/write"
        self.exporter_url = f"http://{HOST}:{self.ports[exporter.JOB]}/metrics"
        self.limits: dict[str, Limits] = {}
        self.limits_enforced = False
        self.limits_note = ""
        self.cgroups: dict[str, cgroups.Cgroup] = {}
        self.processes: dict[str, process.ManagedProcess] = {}
        self.load_generators: list[process.ManagedProcess] = []
        self.healthz: dict[str, Any] = {}
        self.stale_cgroups_removed: list[str] = []
        self.exits = ExitLog(self.stack_dir)
        self._stopping = threading.Event()
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
        for spec in self.specs.values():
            if not Path(spec.argv[0]).exists():
                raise FileNotFoundError(
                    f"{spec.name}: {spec.argv[0]} not found; run `make setup` to build the services"
                )
        prometheus_server.binary()
        if self.with_collector:
            collector.binary()

    def _start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        freeze_manifest(self.artifacts_dir, self.stack_dir)
        self.stale_cgroups_removed = cgroup_removal.clean_stale(keep_run=self.run_id)
        self._create_cgroups()
        if self.telemetry == "collector":
            address = f"{HOST}:{self.ports[collector.PORT_KEYS['OTELCOL_PROMETHEUS_ENDPOINT']]}"
            jobs = [prometheus_server.ScrapeTarget(collector.NAME, address, honor_labels=True)]
        else:
            jobs = [
                prometheus_server.ScrapeTarget(n, self.metrics_urls[n].split("/")[2])
                for n in self._scraped()
            ]
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
        for name, spec in self.specs.items():
            self._start_service(name, spec)
        for name in self.specs:
            self._wait_service(name)
        if not self.limits_enforced:
            self._start_exporter()  # the process-based fallback needs the services' pids
        pulled = [collector.NAME] if self.telemetry == "collector" else self._scraped()
        prometheus_server.wait_for_targets(self.prometheus_url, {*pulled, exporter.JOB})
        for name in self.specs:
            threading.Thread(target=self._watch, args=(name,), daemon=True).start()
        self._write_stack_json()

    def _scraped(self) -> list[str]:
        """The services whose metrics Prometheus scrapes: all but those told to export none
        (the overhead ladder measures a service without its telemetry)."""
        return [
            name
            for name in self.specs
            if self.service_env.get(name, {}).get("OTEL_METRICS_EXPORTER", "prometheus") != "none"
        ]

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _create_cgroups(self) -> None:
        self.limits_note = limits.create_cgroups(
            self.run_id, self.run_dir, self.specs, self.with_collector, self.cgroups, self.limits
        )
        self.limits_enforced = all(self.cgroups[name].enforced for name in self.specs)

    def _start_exporter(self) -> None:
        argv = [sys.executable, "-m", "helpers.serving.local.exporter", "--host", HOST]
        argv += ["--port", str(self.ports[exporter.JOB])]
        for name, group in self.cgroups.items():
            if group.enforced:
                argv += ["--cgroup", f"{name}={group.relpath}"]
            else:
                argv += ["--pid", f"{name}={self.processes[name].pid}"]
        managed = process.start(
            exporter.JOB, argv, self.log_path(exporter.JOB), cwd=paths.REPO_ROOT
        )
        self.processes[exporter.JOB] = managed
        self._wait(exporter.JOB, self.exporter_url, timeout_s=20.0)

    def _start_service(self, name: str, spec: ServiceSpec) -> None:
        pulled = self.telemetry == "pull" and name in self._scraped()
        overrides = {}
        if self.with_collector:
            pushed = self.telemetry == "collector" and name in self._scraped()
            overrides = collector.service_environment(HOST, self.ports, metrics=pushed)
        env = spec.environment(
            self.artifacts_dir,
            port=self.ports[name],
            metrics_port=self.ports[f"{name}-metrics"] if pulled else None,
            host=HOST,
            overrides=overrides | self.service_env.get(name, {}),
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

    def _watch(self, name: str) -> None:
        """Block until the service exits; unless the stack is stopping, that is a failure."""
        managed = self.processes[name]
        status = managed.popen.wait()
        if self._stopping.is_set():
            return
        oom_kills = None
        group = self.cgroups.get(name)
        if group is not None and group.enforced:
            try:
                oom_kills = cgroup_stats.read_stats(group).oom_kills
            except (OSError, cgroups.CgroupError):
                oom_kills = None
        how = process.describe_status(status)
        self.exits.record(ServiceExit(name, time.time(), how, oom_kills, managed.log_tail(15)))

    def failures(self) -> list[ServiceExit]:
        return self.exits.all()

    # -- record ---------------------------------------------------------------------------

    def _write_stack_json(self) -> None:
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        described = record.describe(self)
        (self.stack_dir / "stack.json").write_text(json.dumps(described, indent=2) + "\n")

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
        self._stopping.set()
        with Teardown() as teardown:
            teardown.stop_all(self.load_generators)
            for names in (list(self.specs), [collector.NAME, exporter.JOB], [PROMETHEUS_KEY]):
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
) -> LocalStack:
    """The local backend's starter. `service_env` adds environment variables per service
    (the settings the why notebook varies: ACCESS_LOG, OTEL_TRACES_EXPORTER, …); `telemetry`
    is "pull" (Prometheus scrapes the services) or "collector" (they push to the collector);
    `services` starts only some of the three."""
    return LocalStack(run_dir, artifacts_dir, ports, service_env, telemetry, services).start()
