"""The serving stack behind one small interface: three services, their limits, Prometheus, k6.

Notebooks and helpers code against `Stack` and `start_stack(backend=...)` and never branch on
the backend. Two backends fill the interface:
- `local` (here, the default): each service a process on 127.0.0.1 in its own cgroup limited
  to 0.5 CPU / 128 MiB, joined *before* exec as in a container; the real Prometheus binary
  scrapes the services and `helpers.serving.exporter` (cAdvisor's metric names); k6 is a process.
- `docker`: docker-compose.yaml — registered in `_BACKENDS` by the Docker module.

Everything a run produces lands in its run folder:
    run_dir/stack/stack.json        endpoints, pids, cgroups, limits read back, versions
    run_dir/stack/logs/<name>.log   each process's stdout+stderr
    run_dir/prometheus/data/        the TSDB (reopen with helpers.serving.prometheus.open_for_analysis)

Teardown is guaranteed on every path: `stop()` is idempotent and runs from the context
manager, on any exception during start-up (KeyboardInterrupt included), and at interpreter
exit (atexit). If the kernel itself is killed, PR_SET_PDEATHSIG (helpers.serving.process) kills the
children, and the next `start_stack` removes the empty cgroups left behind.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from helpers import net, paths
from helpers.serving import cgroups, process, prometheus
from helpers.serving.services import ServiceSpec, all_services

HOST = "127.0.0.1"
EXPORTER_KEY = "cgroup-exporter"
PROMETHEUS_KEY = "prometheus"
DEFAULT_PROMETHEUS_PORT = 9090
SERVICE_READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Limits:
    """A service's limits as the backend reports them (read back, not requested).

    None means "no limit". `enforced` is False when the backend could not apply limits at all
    (e.g. cgroups not writable): the numbers of such a run are not the study's budget.
    """

    cpu_cores: float | None
    memory_bytes: int | None
    enforced: bool


class Stack:
    """What every backend exposes once its stack is up; `start_stack` returns one.

    Use it as a context manager (or call `stop()`): stop is idempotent and also registered
    with atexit, so a notebook that forgets it leaves nothing running.
    """

    backend: str
    run_dir: Path
    run_id: str
    service_urls: dict[str, str]  # name -> base URL for clients on this host
    load_target_urls: dict[str, str]  # name -> base URL as the load generator sees it
    prometheus_url: str  # query API, e.g. http://127.0.0.1:9090
    remote_write_url: str  # Prometheus remote-write endpoint for k6
    limits: dict[str, Limits]
    limits_enforced: bool
    limits_note: str  # why limits are (not) enforced, in words

    def start_load_generator(
        self, args: list[str], env: dict[str, str], log_path: Path
    ) -> process.ManagedProcess:
        """Run `k6 <args>` where it can reach `load_target_urls`; stopped with the stack."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def record_header(self) -> dict[str, Any]:
        """The keys every backend's stack.json starts with (each adds its own after them)."""
        return {
            "backend": self.backend,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "limits_enforced": self.limits_enforced,
            "limits_note": self.limits_note,
        }

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def port_variable(key: str) -> str:
    """The environment variable (compose's too) that moves the port of `key`."""
    return key.upper().replace("-", "_") + "_PORT"


def port_from_environment(key: str, default: int) -> int:
    """A default port, moved by the compose file's variable for it (PYTHON_API_PKL_PORT,
    PROMETHEUS_PORT, …) in both backends: a second study, or a test, can run beside a stack
    that holds the seed's ports."""
    variable = port_variable(key)
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ValueError(f"{variable}={value!r}: expected a port number 1..65535")
    return int(value)


# --- backend registry ----------------------------------------------------------------------

BackendStarter = Callable[..., Stack]
# name -> "module:function"; imported only when chosen, so the local backend never imports
# the Docker SDK. A starter is called as starter(run_dir=..., artifacts_dir=..., ports=...).
_BACKENDS: dict[str, str] = {
    "local": "helpers.serving.stack:start_local_stack",
    "docker": "helpers.serving.docker.stack:start_docker_stack",
}
_PLANNED: dict[str, str] = {}  # name -> why a known backend cannot be used yet


def register_backend(name: str, target: str) -> None:
    """Make `start_stack(backend=name)` call `target` ("package.module:function")."""
    _BACKENDS[name] = target


def start_stack(
    backend: str = "local",
    *,
    run_dir: Path,
    artifacts_dir: Path,
    ports: dict[str, int] | None = None,
    **options: Any,
) -> Stack:
    """Bring the three services, their limits and Prometheus up; returns when all are ready.

    `ports` overrides the defaults by name: a service name (5001/5002/5003), "prometheus"
    (9090), "cgroup-exporter" and "<service>-metrics" (free ports otherwise).
    """
    if backend not in _BACKENDS:
        if backend in _PLANNED:
            raise NotImplementedError(_PLANNED[backend])
        known = ", ".join(sorted(_BACKENDS))
        raise ValueError(f"unknown backend {backend!r}: expected one of {known}")
    module_name, _, function_name = _BACKENDS[backend].partition(":")
    starter: BackendStarter = getattr(importlib.import_module(module_name), function_name)
    return starter(run_dir=Path(run_dir), artifacts_dir=Path(artifacts_dir), ports=ports, **options)


# --- the local backend ---------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _resolve_ports(
    services: dict[str, ServiceSpec], ports: dict[str, int] | None
) -> dict[str, int]:
    """Every port the stack binds, validated: known names, valid numbers, distinct, free."""
    requested = dict(ports or {})
    known = {*services, PROMETHEUS_KEY, EXPORTER_KEY, *(f"{s}-metrics" for s in services)}
    unknown = sorted(set(requested) - known)
    if unknown:
        raise ValueError(f"unknown port name(s) {unknown}: expected some of {sorted(known)}")
    for key, port in requested.items():
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ValueError(f"port for {key} must be an integer 1..65535, got {port!r}")
    resolved: dict[str, int] = {}
    for name, spec in services.items():
        resolved[name] = requested.get(name, port_from_environment(name, spec.default_port))
    resolved[PROMETHEUS_KEY] = requested.get(
        PROMETHEUS_KEY, port_from_environment(PROMETHEUS_KEY, DEFAULT_PROMETHEUS_PORT)
    )
    fixed = dict(resolved)
    for key in [EXPORTER_KEY, *(f"{s}-metrics" for s in services)]:
        if key in requested:
            fixed[key] = requested[key]
    clashes = {p for p in fixed.values() if list(fixed.values()).count(p) > 1}
    if clashes:
        raise ValueError(f"the same port is given twice: {sorted(clashes)} in {fixed}")
    for key, port in fixed.items():
        if not _port_free(port):
            raise ValueError(
                f"port {port} for {key} is already in use on {HOST}; stop what holds it or pass "
                f"ports={{{key!r}: <another port>}}"
            )
    for key in [EXPORTER_KEY, *(f"{s}-metrics" for s in services)]:
        if key not in fixed:
            port = net.free_port()
            while port in fixed.values():
                port = net.free_port()
            fixed[key] = port
    return fixed


def run_id_of(run_dir: Path) -> str:
    """The run folder's name, made safe as a cgroup name (both backends tag a run with it)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_dir.resolve().name).strip(".") or "run"


def gomaxprocs_from_log(text: str) -> int | None:
    """GOMAXPROCS as the Go service logs it at start (slog text or JSON), or None."""
    match = re.search(r"gomaxprocs\W{1,4}(\d+)", text, flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def _command_version(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unavailable ({error})"
    text = (result.stdout or result.stderr).strip()
    return text.splitlines()[0] if text else "?"


class LocalStack(Stack):
    """The local backend: processes on 127.0.0.1, cgroups for limits, the Prometheus binary."""

    def __init__(
        self,
        run_dir: Path,
        artifacts_dir: Path,
        ports: dict[str, int] | None,
        services: dict[str, ServiceSpec] | None = None,
        scrape_interval_s: float = prometheus.SCRAPE_INTERVAL_S,
        cpu_cores: float | None = cgroups.DEFAULT_CPU_CORES,
        memory_bytes: int | None = cgroups.DEFAULT_MEMORY_BYTES,
    ) -> None:
        self.backend = "local"
        self.run_dir = Path(run_dir)
        self.artifacts_dir = Path(artifacts_dir)
        self.specs = services if services is not None else all_services()
        self.scrape_interval_s = scrape_interval_s
        self.cpu_cores = cpu_cores
        self.memory_bytes = memory_bytes
        self.run_id = run_id_of(self.run_dir)
        self.stack_dir = self.run_dir / "stack"
        self.logs_dir = self.stack_dir / "logs"
        self.ports = _resolve_ports(self.specs, ports)
        self.service_urls = {n: f"http://{HOST}:{self.ports[n]}" for n in self.specs}
        self.load_target_urls = dict(self.service_urls)
        self.metrics_urls = {
            n: f"http://{HOST}:{self.ports[f'{n}-metrics']}/metrics" for n in self.specs
        }
        self.prometheus_url = f"http://{HOST}:{self.ports[PROMETHEUS_KEY]}"
        self.remote_write_url = f"{self.prometheus_url}/api/v1/write"
        self.exporter_url = f"http://{HOST}:{self.ports[EXPORTER_KEY]}/metrics"
        self.limits: dict[str, Limits] = {}
        self.limits_enforced = False
        self.limits_note = ""
        self.cgroups: dict[str, cgroups.Cgroup] = {}
        self.processes: dict[str, process.ManagedProcess] = {}
        self.load_generators: list[process.ManagedProcess] = []
        self.healthz: dict[str, Any] = {}
        self.stale_cgroups_removed: list[str] = []
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
            program = Path(spec.argv[0])
            if not program.exists():
                raise FileNotFoundError(
                    f"{spec.name}: {program} not found; run `make setup` to build the services"
                )
        prometheus.binary()

    def _start(self) -> None:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.stale_cgroups_removed = cgroups.clean_stale(keep_run=self.run_id)
        self._create_cgroups()
        jobs = [prometheus.ScrapeTarget(n, self.metrics_urls[n].split("/")[2]) for n in self.specs]
        config = prometheus.render_config(
            prometheus_address=self.prometheus_url.split("//")[1],
            exporter_address=self.exporter_url.split("/")[2],
            services=jobs,
            scrape_interval_s=self.scrape_interval_s,
        )
        self.processes[PROMETHEUS_KEY] = prometheus.start(
            config, self.run_dir, self.ports[PROMETHEUS_KEY], self._log(PROMETHEUS_KEY)
        )
        if self.limits_enforced:
            self._start_exporter()
        for name, spec in self.specs.items():
            self._start_service(name, spec)
        for name in self.specs:
            self._wait_service(name)
        if not self.limits_enforced:
            self._start_exporter()  # process-based fallback needs the services' pids
        prometheus.wait_for_targets(self.prometheus_url, {*self.specs, EXPORTER_KEY})
        self._write_stack_json()

    def _log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def _create_cgroups(self) -> None:
        for name in self.specs:
            group = cgroups.create_cgroup(self.run_id, name, self.cpu_cores, self.memory_bytes)
            if group.enforced and cgroups.pids(group):
                raise RuntimeError(
                    f"cgroup {group.relpath} already holds processes {cgroups.pids(group)}: "
                    f"another stack is running with run folder {self.run_dir}; use a new one"
                )
            self.cgroups[name] = group
            read = cgroups.read_limits(group)
            self.limits[name] = Limits(read.cpu_cores, read.memory_limit_bytes, group.enforced)
        self.limits_enforced = all(g.enforced for g in self.cgroups.values())
        if not self.limits_enforced:
            reasons = sorted({g.reason for g in self.cgroups.values() if not g.enforced})
            self.limits_note = "; ".join(reasons)
            # Loudly: every number of this run is measured without the study's budget.
            banner = "!" * 78
            print(
                f"{banner}\nLIMITS NOT ENFORCED — the services run WITHOUT 0.5 CPU / 128 MiB.\n"
                f"{self.limits_note}\nResults of this run are not comparable with limited runs."
                f"\n{banner}",
                file=sys.stderr,
                flush=True,
            )

    def _start_exporter(self) -> None:
        argv = [sys.executable, "-m", "helpers.serving.exporter", "--host", HOST]
        argv += ["--port", str(self.ports[EXPORTER_KEY])]
        for name, group in self.cgroups.items():
            if group.enforced:
                argv += ["--cgroup", f"{name}={group.relpath}"]
            else:
                argv += ["--pid", f"{name}={self.processes[name].pid}"]
        managed = process.start(EXPORTER_KEY, argv, self._log(EXPORTER_KEY), cwd=paths.REPO_ROOT)
        self.processes[EXPORTER_KEY] = managed
        self._wait(EXPORTER_KEY, self.exporter_url, timeout_s=20.0)

    def _start_service(self, name: str, spec: ServiceSpec) -> None:
        env = spec.environment(
            self.artifacts_dir,
            port=self.ports[name],
            metrics_port=self.ports[f"{name}-metrics"],
            host=HOST,
        )
        self.processes[name] = process.start(
            name,
            spec.argv,
            self._log(name),
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

    def _wait(self, name: str, url: str, timeout_s: float) -> httpx.Response:
        managed = self.processes[name]
        try:
            return net.wait_until_ready(url, timeout_s=timeout_s, process=managed.popen)
        except net.NotReady as error:
            raise net.NotReady(
                f"{name} did not become ready: {error}\n--- last lines of {managed.log_path} ---\n"
                f"{managed.log_tail(30)}"
            ) from error

    # -- record ---------------------------------------------------------------------------

    def versions(self) -> dict[str, str]:
        layout = cgroups.detect_layout()
        found = {
            "prometheus": prometheus.version(),
            "python": platform.python_version(),
            "kernel": platform.release(),
            "cgroup": layout.version if layout else "none",
        }
        try:
            found["k6"] = _command_version([str(paths.k6_binary()), "version"])
        except FileNotFoundError as error:
            found["k6"] = f"unavailable ({error})"
        for name, health in self.healthz.items():
            found[name] = str(health.get("runtime", "?"))
        return found

    def describe(self) -> dict[str, Any]:
        """Everything stack.json records: enough to find, re-read and judge the run later."""
        go_log = self.processes.get("go-api-onnx")
        gomaxprocs = None
        if go_log is not None and go_log.log_path.exists():
            gomaxprocs = gomaxprocs_from_log(go_log.log_path.read_text(errors="replace"))
        return self.record_header() | {
            "prometheus": {
                "url": self.prometheus_url,
                "remote_write_url": self.remote_write_url,
                "data_dir": str(self.run_dir / "prometheus" / "data"),
                "scrape_interval_s": self.scrape_interval_s,
                "pid": self._pid(PROMETHEUS_KEY),
            },
            "exporter": {"url": self.exporter_url, "pid": self._pid(EXPORTER_KEY)},
            "services": {
                name: {
                    "url": self.service_urls[name],
                    "load_target_url": self.load_target_urls[name],
                    "metrics_url": self.metrics_urls[name],
                    "pid": self._pid(name),
                    "cgroup": self.cgroups[name].relpath if name in self.cgroups else None,
                    "cgroup_dirs": {
                        k: str(v) for k, v in getattr(self.cgroups.get(name), "dirs", {}).items()
                    },
                    "limits": asdict(self.limits[name]) if name in self.limits else None,
                    "healthz": self.healthz.get(name),
                    "log": str(self._log(name)),
                }
                for name in self.specs
            },
            "go_maxprocs": gomaxprocs,
            "stale_cgroups_removed": self.stale_cgroups_removed,
            "versions": self.versions(),
        }

    def _pid(self, name: str) -> int | None:
        managed = self.processes.get(name)
        return managed.pid if managed else None

    def _write_stack_json(self) -> None:
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        (self.stack_dir / "stack.json").write_text(json.dumps(self.describe(), indent=2) + "\n")

    # -- load and stop ----------------------------------------------------------------------

    def start_load_generator(
        self, args: list[str], env: dict[str, str], log_path: Path
    ) -> process.ManagedProcess:
        """`k6 <args>` as a plain process, outside every cgroup: the generator must not eat
        the services' budget (nor be throttled by it). Stopped with the stack if still running.
        """
        if self._stopped:
            raise RuntimeError("the stack is stopped; start a new one")
        full_env = {**os.environ, **env}
        managed = process.start(
            "k6", [str(paths.k6_binary()), *args], Path(log_path), env=full_env, cwd=paths.REPO_ROOT
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
        errors: list[BaseException] = []

        def stop_all(group: list[process.ManagedProcess]) -> None:
            # In parallel: each gets its SIGTERM grace period at the same time.
            with ThreadPoolExecutor(max_workers=max(len(group), 1)) as pool:
                for future in [pool.submit(m.stop) for m in group]:
                    try:
                        future.result()
                    except Exception as error:
                        errors.append(error)

        stop_all(self.load_generators)
        stop_all([self.processes[n] for n in self.specs if n in self.processes])
        stop_all([self.processes[k] for k in (EXPORTER_KEY,) if k in self.processes])
        stop_all([self.processes[k] for k in (PROMETHEUS_KEY,) if k in self.processes])
        for group in self.cgroups.values():
            try:
                cgroups.remove_cgroup(group)
            except (OSError, cgroups.CgroupError) as error:
                errors.append(error)
        try:
            cgroups.remove_run(self.run_id)
        except OSError as error:
            errors.append(error)
        atexit.unregister(self.stop)
        if errors:
            raise errors[0]


def start_local_stack(
    *,
    run_dir: Path,
    artifacts_dir: Path,
    ports: dict[str, int] | None = None,
    services: dict[str, ServiceSpec] | None = None,
    scrape_interval_s: float = prometheus.SCRAPE_INTERVAL_S,
    cpu_cores: float | None = cgroups.DEFAULT_CPU_CORES,
    memory_bytes: int | None = cgroups.DEFAULT_MEMORY_BYTES,
) -> LocalStack:
    """The local backend's starter. `services` (default: the three of helpers.serving.services) lets
    tests start stand-ins; the limits default to the study's budget, 0.5 CPU / 128 MiB."""
    return LocalStack(
        run_dir,
        artifacts_dir,
        ports,
        services=services,
        scrape_interval_s=scrape_interval_s,
        cpu_cores=cpu_cores,
        memory_bytes=memory_bytes,
    ).start()
