"""The `docker` backend: docker-compose.yaml behind the same `Stack` interface as the local one.

`start_stack("docker", run_dir=..., artifacts_dir=...)` (or `make study BACKEND=docker`) does,
in order, and tears down whatever it started if any step fails:

1. **Engine** — `helpers.serving.docker.engine.ensure_engine()`: the running engine (`DOCKER_HOST`, the
   default socket) is borrowed; where none runs but `dockerd` is installed and we are root, a
   private one is started under `.build/docker-engine` and stopped again by `stop()`.
2. **Images** (`STUDY_DOCKER_IMAGES`, see `choose_images`) — the pinned images of the compose
   file when they are present or can be pulled; local stand-ins made by
   `helpers.serving.docker.images.prepare` (debootstrap + host binaries, no registry) when they cannot,
   or always with `STUDY_DOCKER_IMAGES=local`. Every choice is logged. The three APIs are built
   from their Dockerfiles through the Docker SDK (classic builder, layer cache kept by the
   engine), with the chosen base images as build args.
3. **Topology** — the compose file's services that can exist here: the three APIs and Prometheus
   always; the OpenTelemetry collector, cAdvisor and Grafana when their images are there. Without
   the collector, `docker-compose.scrape.yaml` makes Prometheus scrape the APIs directly (same
   names and labels). Without cAdvisor, `helpers.serving.exporter` runs on the host against each
   container's cgroup (found through its init process' /proc/<pid>/cgroup, so v1 and v2 and
   either cgroup driver work) and publishes cAdvisor's `container_*` names with `name` = service.
   It listens on the compose network's gateway address — the host side of the project's bridge —
   so the Prometheus container reaches it without host networking and without exposing it
   beyond this machine.
4. **Compose up** (`docker compose` v2 when present, else `docker-compose` v1;
   `-p onnx-serving-study`) with a per-run override (`run_dir/stack/docker-compose.run.yaml`)
   that bind-mounts the run's Prometheus config and TSDB (`run_dir/prometheus/data`, written as
   the calling user, so `helpers.serving.prometheus.open_for_analysis` reads it afterwards).
5. **Readiness** by polling: each API's /healthz (failing fast if its container exits),
   Prometheus' /-/ready, then every scrape target up once.
6. **Limits read back** from `docker inspect` (NanoCpus or CpuQuota/CpuPeriod, Memory): compose
   is never trusted to have applied `deploy.resources.limits`.

k6 runs as a container with host networking: it targets the APIs' published 127.0.0.1 ports and
remote-writes to Prometheus' published port, exactly the URLs a host process would use, so the
load stays on loopback and `load_target_urls == service_urls`; its REST API (`--address
127.0.0.1:PORT`) is reachable from the host as in the local backend. The k6 scripts and the run
folder are mounted at their host paths, so k6's arguments need no translation.

`stop()` stops k6, then the stack (SIGTERM, grace period), saves every container's log to
`run_dir/stack/logs/<name>.log`, runs `compose down --volumes --remove-orphans`, stops the
exporter, and stops the engine only if it started it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import yaml

from helpers import net, paths
from helpers.serving import process
from helpers.serving import prometheus as prometheus_helpers
from helpers.serving.docker.engine import DockerEngine, EngineUnavailable, ensure_engine
from helpers.serving.services import SERVICE_NAMES
from helpers.serving.stack import (
    DEFAULT_PROMETHEUS_PORT,
    EXPORTER_KEY,
    HOST,
    PROMETHEUS_KEY,
    SERVICE_READY_TIMEOUT_S,
    Limits,
    Stack,
    gomaxprocs_from_log,
    port_from_environment,
    port_variable,
    run_id_of,
)

PROJECT = "onnx-serving-study"
COMPOSE_FILE = paths.REPO_ROOT / "docker-compose.yaml"
SCRAPE_OVERRIDE = paths.REPO_ROOT / "docker-compose.scrape.yaml"
PROMETHEUS_CONFIGS = paths.OBSERVABILITY_DIR / "prometheus"
IMAGES_ENV = "STUDY_DOCKER_IMAGES"  # auto (default) | registry | local
IMAGE_MODES = ("auto", "registry", "local")
# The images the study cannot run without, and the ones it runs without if they are missing.
REQUIRED_IMAGES = ("PYTHON_IMAGE", "GO_IMAGE", "DEBIAN_IMAGE", "PROMETHEUS_IMAGE", "K6_IMAGE")
OPTIONAL_SERVICES = {
    "otel-collector": "OTEL_COLLECTOR_IMAGE",
    "cadvisor": "CADVISOR_IMAGE",
    "grafana": "GRAFANA_IMAGE",
}
GRAFANA_KEY = "grafana"
DEFAULT_GRAFANA_PORT = 3000
STACK_LABEL = "org.onnx-serving-study.stack"  # on the k6 containers, to find leftovers
PULL_TIMEOUT_S = 600
BUILD_CPU_SHARES = 256  # a quarter of the default weight: builds yield to a running benchmark
PROMETHEUS_READY_TIMEOUT_S = 60.0
TARGETS_TIMEOUT_S = 60.0
STOP_GRACE_S = 15


def log(message: str) -> None:
    """Progress of the backend on stderr (the notebook shows it; papermill keeps it)."""
    print(f"[docker] {message}", file=sys.stderr, flush=True)


class DockerStackError(RuntimeError):
    """The docker stack could not be brought up; the message names the step and the cause."""


# --- compose -------------------------------------------------------------------------------


def compose_command() -> list[str]:
    """`docker compose` (v2) when the CLI has the plugin, else `docker-compose` (v1)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False, timeout=30
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise DockerStackError(
        "neither `docker compose` (v2) nor `docker-compose` (v1) is installed; install Docker "
        "Compose (Debian: apt-get install docker-compose)"
    )


def compose_defaults(compose_file: Path = COMPOSE_FILE) -> dict[str, str]:
    """`VAR -> default` of every `${VAR:-default}` in the compose file: its pinned images,
    read from the file itself so the backend and a user's `docker compose up` cannot differ."""
    found = re.findall(r"\$\{([A-Z0-9_]+):-([^}]*)\}", compose_file.read_text())
    return dict(found)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` / `${VAR}` substitution (what the build args need)."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3) or ""
        return env.get(name) or default

    return re.sub(r"\$\{([A-Z0-9_]+)(:-([^}]*))?\}", substitute, value)


# --- images --------------------------------------------------------------------------------


def _image_present(client: Any, name: str) -> bool:
    import docker.errors

    try:
        client.images.get(name)
    except docker.errors.ImageNotFound:
        return False
    return True


def _try_pull(client: Any, name: str) -> str | None:
    """Pull `name`; None on success, else the engine's reason (no registry, unknown tag…)."""
    import docker.errors

    try:
        repository, _, tag = name.rpartition(":") if ":" in name.split("/")[-1] else (name, "", "")
        client.images.pull(repository or name, tag=tag or "latest")
    except (docker.errors.APIError, docker.errors.ImageNotFound) as error:
        return str(getattr(error, "explanation", None) or error).splitlines()[0][:200]
    return None


def _available(client: Any, name: str, pull: bool) -> tuple[bool, str]:
    if _image_present(client, name):
        return True, "present"
    if not pull:
        return False, "absent (not pulled)"
    reason = _try_pull(client, name)
    return (True, "pulled") if reason is None else (False, f"cannot be pulled: {reason}")


def choose_images(
    client: Any, mode: str | None = None, environ: dict[str, str] | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Which image each compose variable uses, and why: (variables, reasons).

    `STUDY_DOCKER_IMAGES` (or `mode`):
    - `registry`: the compose file's pinned images (or the user's `*_IMAGE` variables), pulled
      if missing; a missing required image is an error.
    - `local`: local stand-ins from `helpers.serving.docker.images.prepare` for every required image
      (debootstrap + this host's binaries, no registry at all).
    - `auto` (default): `registry` where it works; each required image that is neither present
      nor pullable is replaced by its local stand-in, and the log says so. A user's explicit
      `*_IMAGE` variable is always used as given.
    The optional images (collector, cAdvisor, Grafana) are used when present or pullable, and
    left out otherwise (the backend then uses the scrape override / the host exporter).
    """
    environ = dict(os.environ if environ is None else environ)
    mode = mode or environ.get(IMAGES_ENV, "auto") or "auto"
    if mode not in IMAGE_MODES:
        raise DockerStackError(f"{IMAGES_ENV}={mode!r}: expected one of {', '.join(IMAGE_MODES)}")
    defaults = compose_defaults()
    chosen: dict[str, str] = {}
    reasons: dict[str, str] = {}
    stand_ins_needed: list[str] = []
    for variable in REQUIRED_IMAGES:
        explicit = environ.get(variable)
        name = explicit or defaults[variable]
        if mode == "local" and not explicit:
            stand_ins_needed.append(variable)
            reasons[variable] = f"local stand-in ({IMAGES_ENV}=local)"
            continue
        ok, why = _available(client, name, pull=True)
        if ok:
            chosen[variable] = name
            reasons[variable] = f"{name}: {why}"
        elif mode == "registry" or explicit:
            raise DockerStackError(
                f"image {name} ({variable}) is {why}. Make it available (docker pull / docker "
                f"load), point {variable} at a mirror, or set {IMAGES_ENV}=local to build local "
                "stand-ins without a registry"
            )
        else:
            stand_ins_needed.append(variable)
            reasons[variable] = f"local stand-in: {name} {why}"
    if stand_ins_needed:
        from helpers.serving.docker import images as docker_images

        log(f"making local stand-in images for {', '.join(stand_ins_needed)} (cached)")
        try:
            made = docker_images.prepare(client, which=stand_ins_needed)
        except docker_images.ImageBuildError as error:
            raise DockerStackError(f"local stand-in images could not be made: {error}") from error
        for variable in stand_ins_needed:
            chosen[variable] = made[variable]
            reasons[variable] = f"{made[variable]} ({reasons[variable]})"
    for variable in OPTIONAL_SERVICES.values():
        name = environ.get(variable) or defaults[variable]
        ok, why = _available(client, name, pull=mode != "local")
        reasons[variable] = f"{name}: {why}"
        if ok:
            chosen[variable] = name
    for variable, reason in reasons.items():
        log(f"{variable:<21} {reason}")
    return chosen, reasons


def build_service_images(
    client: Any, images: dict[str, str], logs_dir: Path, compose_file: Path = COMPOSE_FILE
) -> dict[str, str]:
    """Build the three APIs' images as the compose file describes them (context, Dockerfile,
    args with `images` substituted) through the SDK's classic builder. Returns name -> image id.

    The engine's layer cache makes a rebuild with unchanged inputs take seconds. Builds run with
    a low CPU weight, so they yield to anything else busy on the machine.
    """
    spec = yaml.safe_load(compose_file.read_text())["services"]
    env = {**os.environ, **images}
    built: dict[str, str] = {}
    for name in SERVICE_NAMES:
        service = spec[name]
        build = service["build"]
        context = (compose_file.parent / build["context"]).resolve()
        args = {key: interpolate(str(value), env) for key, value in build.get("args", {}).items()}
        log_path = logs_dir / f"build-{name}.log"
        started = time.monotonic()
        lines: list[str] = []
        for chunk in client.api.build(
            path=str(context),
            dockerfile=build["dockerfile"],
            tag=service["image"],
            buildargs=args,
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
            container_limits={"cpushares": BUILD_CPU_SHARES},
        ):
            text = chunk.get("stream") or chunk.get("status") or ""
            if text:
                lines.append(text)
            if "error" in chunk:
                log_path.write_text("".join(lines) + chunk["error"])
                raise DockerStackError(
                    f"docker build of {name} ({context}/{build['dockerfile']}) failed: "
                    f"{chunk['error'].strip()}\n--- end of {log_path} ---\n"
                    + "".join(lines)[-2000:]
                )
        log_path.write_text("".join(lines))
        image = client.images.get(service["image"])
        built[name] = image.id
        log(f"built {service['image']} in {time.monotonic() - started:.1f} s")
    return built


# --- limits, cgroups -----------------------------------------------------------------------


def limits_from_inspect(attrs: dict[str, Any]) -> Limits:
    """A container's limits as the engine applied them (HostConfig of `docker inspect`)."""
    host_config = attrs.get("HostConfig") or {}
    cpu: float | None = None
    if host_config.get("NanoCpus"):
        cpu = host_config["NanoCpus"] / 1e9
    elif host_config.get("CpuQuota", 0) > 0:
        cpu = host_config["CpuQuota"] / (host_config.get("CpuPeriod") or 100_000)
    memory = host_config.get("Memory") or None
    return Limits(cpu_cores=cpu, memory_bytes=memory, enforced=cpu is not None and bool(memory))


def cgroup_relpath(pid: int, proc: Path = Path("/proc")) -> str:
    """The cgroup of process `pid` relative to the hierarchy roots, as the exporter wants it.

    v2: the `0::` line; v1: the memory controller's line (docker puts every controller of a
    container at the same path). Raises OSError when the process is not on this kernel.
    """
    lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    by_controllers = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        by_controllers[controllers] = path
    for controllers, path in by_controllers.items():
        if "memory" in controllers.split(","):
            return path.strip("/")
    if "" in by_controllers:
        return by_controllers[""].strip("/")
    raise OSError(f"no memory or unified cgroup in /proc/{pid}/cgroup: {lines}")


def render_prometheus_config(
    base: Path,
    keep_jobs: Iterable[str] | None,
    exporter_target: str | None,
) -> str:
    """The run's Prometheus config: the repo's (`base`), minus jobs whose targets do not run
    here, plus the host cgroup exporter (cAdvisor's names) when cAdvisor is not there."""
    config = yaml.safe_load(base.read_text())
    jobs = config.get("scrape_configs", [])
    if keep_jobs is not None:
        keep = set(keep_jobs)
        jobs = [job for job in jobs if job["job_name"] in keep]
    if exporter_target:
        jobs.append(
            {
                "job_name": EXPORTER_KEY,
                # The exporter's `name` label (= service name) is kept, as with cAdvisor.
                "honor_labels": True,
                "static_configs": [{"targets": [exporter_target]}],
            }
        )
    config["scrape_configs"] = jobs
    header = (
        f"# Written by helpers.serving.docker.stack for this run from {base.relative_to(paths.REPO_ROOT)}"
        "\n# (jobs of absent services dropped; the host cgroup exporter added if cAdvisor is "
        "absent).\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False)


# --- k6 as a container ---------------------------------------------------------------------


class ContainerProcess:
    """A container that quacks like `helpers.serving.process.ManagedProcess` for `helpers.load.loadtest`:
    `alive()`, `stop()` → exit status, `wait()`, `log_path` (followed live by a thread),
    `log_tail()`, `pid` (the container's init process on the host, 0 if unknown) and
    `cpu_seconds()` (the container's cgroup CPU time from the engine's stats, so it is right
    even when the engine runs in a VM)."""

    def __init__(self, name: str, container: Any, log_path: Path) -> None:
        self.name = name
        self.container = container
        self.log_path = Path(log_path)
        self.argv: tuple[str, ...] = tuple(container.attrs.get("Args") or ())
        self._exit_code: int | None = None
        self._follower = threading.Thread(target=self._follow_logs, daemon=True)
        self._follower.start()

    def _follow_logs(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as file, contextlib.suppress(Exception):
            for chunk in self.container.logs(stream=True, follow=True):
                file.write(chunk)
                file.flush()

    @property
    def pid(self) -> int:
        with contextlib.suppress(Exception):
            self.container.reload()
        return int(self.container.attrs.get("State", {}).get("Pid") or 0)

    @property
    def id(self) -> str:
        return self.container.id

    def alive(self) -> bool:
        if self._exit_code is not None:
            return False
        try:
            self.container.reload()
        except Exception:
            return False
        return self.container.status in ("created", "running", "restarting")

    def cpu_seconds(self) -> float | None:
        """user+system CPU seconds of the container so far; None once it has stopped."""
        if not self.alive():
            return None
        try:
            stats = self.container.stats(stream=False, one_shot=True)
            return stats["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9 or None
        except Exception:
            return None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def wait(self, timeout: float | None = None) -> int:
        if self._exit_code is None:
            result = self.container.wait(timeout=timeout)
            self._exit_code = int(result.get("StatusCode", -1))
        return self._exit_code

    def stop(self, grace_s: float = 10.0) -> int:
        """SIGTERM (SIGKILL after `grace_s`), collect the exit status, remove the container."""
        if self._exit_code is None:
            with contextlib.suppress(Exception):
                if self.alive():
                    self.container.stop(timeout=int(grace_s))
            try:
                self.wait(timeout=grace_s + 30)
            except Exception:
                self._exit_code = -1
        self._follower.join(timeout=10)
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        return self._exit_code


# --- the stack -----------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    """True if nothing listens on HOST:port. SO_REUSEADDR, as docker-proxy binds: connections
    of an earlier run still in TIME_WAIT do not hold the port, only a listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class DockerStack(Stack):
    """The docker backend: the compose stack, read back through the Docker SDK."""

    def __init__(
        self,
        run_dir: Path,
        artifacts_dir: Path,
        ports: dict[str, int] | None = None,
        images: str | None = None,
        build: bool = True,
    ) -> None:
        self.backend = "docker"
        self.run_dir = Path(run_dir).resolve()
        self.artifacts_dir = Path(artifacts_dir).resolve()
        self.run_id = run_id_of(self.run_dir)
        self.images_mode = images
        self.build = build
        self.stack_dir = self.run_dir / "stack"
        self.logs_dir = self.stack_dir / "logs"
        self.prometheus_dir = self.run_dir / "prometheus"
        self.prometheus_config = self.prometheus_dir / "prometheus.yml"
        self.ports = self._resolve_ports(ports)
        self.service_urls = {n: f"http://{HOST}:{self.ports[n]}" for n in SERVICE_NAMES}
        self.load_target_urls = dict(self.service_urls)
        self.prometheus_url = f"http://{HOST}:{self.ports[PROMETHEUS_KEY]}"
        self.remote_write_url = f"{self.prometheus_url}/api/v1/write"
        self.grafana_url: str | None = None
        self.limits: dict[str, Limits] = {}
        self.limits_enforced = False
        self.limits_note = ""
        self.healthz: dict[str, Any] = {}
        self.engine: DockerEngine | None = None
        self.client: Any = None
        self.compose: list[str] = []
        self.compose_files: list[Path] = []
        self.compose_env: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self.image_reasons: dict[str, str] = {}
        self.built: dict[str, str] = {}
        self.services_up: list[str] = []
        self.container_metrics = ""
        self.exporter: process.ManagedProcess | None = None
        self.exporter_target: str | None = None
        self.load_generators: list[ContainerProcess] = []
        self.containers: dict[str, dict[str, Any]] = {}
        self._compose_started = False
        self._stopped = False

    # -- start ------------------------------------------------------------------------------

    @staticmethod
    def _resolve_ports(ports: dict[str, int] | None) -> dict[str, int]:
        requested = dict(ports or {})
        defaults = {
            "python-api-pkl": 5001,
            "python-api-onnx": 5002,
            "go-api-onnx": 5003,
            PROMETHEUS_KEY: DEFAULT_PROMETHEUS_PORT,
            GRAFANA_KEY: DEFAULT_GRAFANA_PORT,
        }
        defaults = {key: port_from_environment(key, port) for key, port in defaults.items()}
        unknown = sorted(set(requested) - set(defaults))
        if unknown:
            raise ValueError(f"unknown port name(s) {unknown}: expected some of {sorted(defaults)}")
        resolved = {**defaults, **requested}
        for key, port in resolved.items():
            if not isinstance(port, int) or not 1 <= port <= 65535:
                raise ValueError(f"port for {key} must be an integer 1..65535, got {port!r}")
        if len(set(resolved.values())) != len(resolved):
            raise ValueError(f"the same port is given twice: {resolved}")
        return resolved

    def start(self) -> DockerStack:
        """Bring the stack up; on any failure (Ctrl-C included) tear down what was started."""
        manifest = self.artifacts_dir / "manifest.json"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found: train the model first (notebook 01)")
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
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        (self.prometheus_dir / "data").mkdir(parents=True, exist_ok=True)
        self.compose = compose_command()
        try:
            self.engine = ensure_engine()
        except EngineUnavailable as error:
            raise DockerStackError(
                f"the docker backend needs a Docker engine: {error}. Start Docker (or run as "
                "root where dockerd is installed), or use backend='local'"
            ) from error
        owner = "started for this stack" if self.engine.owned else "already running, borrowed"
        log(f"engine {self.engine.host} ({owner}); compose: {' '.join(self.compose)}")
        self.client = self.engine.client(timeout=PULL_TIMEOUT_S)
        self._remove_leftovers()
        self._check_ports(grafana=False)  # fail in seconds, before any build
        self.images, self.image_reasons = choose_images(self.client, self.images_mode)
        if self.build:
            self.built = build_service_images(self.client, self.images, self.logs_dir)
        optional = [s for s, v in OPTIONAL_SERVICES.items() if v in self.images]
        collector = "otel-collector" in optional
        cadvisor = "cadvisor" in optional
        self.services_up = [*SERVICE_NAMES, "prometheus", *optional]
        base_config = PROMETHEUS_CONFIGS / (
            "prometheus.yml" if collector else "prometheus.scrape.yml"
        )
        self.compose_files = [COMPOSE_FILE] + ([] if collector else [SCRAPE_OVERRIDE])
        self.container_metrics = "cadvisor" if cadvisor else "host cgroup exporter"
        log(
            f"services: {', '.join(self.services_up)}; server metrics via "
            f"{'the OpenTelemetry collector' if collector else 'direct scrape'}; container "
            f"metrics via {self.container_metrics}"
        )
        keep_jobs = ["prometheus", *(["otel-collector"] if collector else SERVICE_NAMES)]
        if cadvisor:
            keep_jobs.append("cadvisor")
        self.prometheus_config.write_text(render_prometheus_config(base_config, keep_jobs, None))
        self.compose_files.append(self._write_run_override())
        self.compose_env = self._compose_environment()
        self._check_ports(grafana="grafana" in optional)
        self._compose_started = True
        self._compose(["up", "-d", "--no-build", *self._pull_never(), *self.services_up])
        self._read_containers()
        for name in SERVICE_NAMES:
            self._wait_service(name)
        self._wait_prometheus()
        jobs = {"prometheus", *(["otel-collector"] if collector else SERVICE_NAMES)}
        if cadvisor:
            jobs.add("cadvisor")
        else:
            self._start_exporter(keep_jobs, base_config)
            jobs.add(EXPORTER_KEY)
        prometheus_helpers.wait_for_targets(self.prometheus_url, jobs, timeout_s=TARGETS_TIMEOUT_S)
        if "grafana" in optional:
            self.grafana_url = f"http://{HOST}:{self.ports[GRAFANA_KEY]}"
        self._write_stack_json()
        log(f"stack ready in {time.monotonic() - started:.1f} s")

    def _pull_never(self) -> list[str]:
        return ["--pull", "never"] if self.compose[-1] == "compose" else []

    def _write_run_override(self) -> Path:
        """Per-run compose override: Prometheus' config and TSDB bind-mounted from the run
        folder, written as the calling user (so the host reads the TSDB afterwards, and so a
        non-root image user can write into a folder the caller owns)."""
        override = {
            "services": {
                "prometheus": {
                    "user": f"{os.getuid()}:{os.getgid()}",
                    "volumes": [
                        f"{self.prometheus_config}:/etc/prometheus/prometheus.yml:ro",
                        f"{self.prometheus_dir / 'data'}:/prometheus",
                    ],
                }
            }
        }
        path = self.stack_dir / "docker-compose.run.yaml"
        path.write_text(
            "# Written by helpers.serving.docker.stack: this run's Prometheus config and data.\n"
            + yaml.safe_dump(override, sort_keys=False)
        )
        return path

    def _compose_environment(self) -> dict[str, str]:
        env = self.engine.environment() if self.engine else dict(os.environ)
        env.update(self.images)
        env["ARTIFACTS_DIR"] = str(self.artifacts_dir)
        env["BIND_ADDRESS"] = HOST
        for key, port in self.ports.items():
            env[port_variable(key)] = str(port)
        info = self.client.info()
        env.setdefault("DOCKER_DATA_ROOT", info.get("DockerRootDir", "/var/lib/docker"))
        host = self.engine.host if self.engine else ""
        if host.startswith("unix://"):
            env.setdefault("DOCKER_SOCKET_PATH", host.removeprefix("unix://"))
        env.pop("PYTHONPATH", None)  # Debian's docker-compose runs on the system Python
        return env

    def _check_ports(self, grafana: bool) -> None:
        for key, port in self.ports.items():
            if key == GRAFANA_KEY and not grafana:
                continue
            if not _port_free(port):
                raise DockerStackError(
                    f"port {port} for {key} is already in use on {HOST}; stop what holds it, "
                    f"pass ports={{{key!r}: <another port>}} or set {port_variable(key)}"
                )

    def _compose(self, args: list[str], check: bool = True, timeout: float = 600) -> str:
        argv = [*self.compose, "-p", PROJECT]
        for file in self.compose_files:
            argv += ["-f", str(file)]
        argv += args
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            env=self.compose_env or os.environ.copy(),
            cwd=paths.REPO_ROOT,
            timeout=timeout,
            check=False,
        )
        with (self.logs_dir / "compose.log").open("a") as file:
            file.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n")
        if check and result.returncode != 0:
            raise DockerStackError(
                f"`{' '.join([*self.compose, *args])}` failed (exit {result.returncode}):\n"
                + (result.stdout + result.stderr)[-3000:]
            )
        return result.stdout

    def _project_containers(self, all_: bool = True) -> list[Any]:
        return self.client.containers.list(
            all=all_, filters={"label": f"com.docker.compose.project={PROJECT}"}
        )

    def _remove_leftovers(self) -> None:
        """A stack of an earlier, killed run would hold the ports and container names."""
        leftovers = self._project_containers() + self.client.containers.list(
            all=True, filters={"label": STACK_LABEL}
        )
        if leftovers:
            log(f"removing leftovers of an earlier run: {[c.name for c in leftovers]}")
            for container in leftovers:
                with contextlib.suppress(Exception):
                    container.remove(force=True)
            for network in self.client.networks.list(
                filters={"label": f"com.docker.compose.project={PROJECT}"}
            ):
                with contextlib.suppress(Exception):
                    network.remove()

    def _container(self, service: str) -> Any:
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={PROJECT}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        if not found:
            raise DockerStackError(f"compose started no container for {service}")
        return found[0]

    def _read_containers(self) -> None:
        for service in self.services_up:
            container = self._container(service)
            attrs = container.attrs
            self.containers[service] = {
                "id": container.id,
                "name": container.name,
                "image": attrs["Config"]["Image"],
                "image_id": attrs["Image"],
                "pid": attrs["State"].get("Pid"),
            }
        for name in SERVICE_NAMES:
            self.limits[name] = limits_from_inspect(self._container(name).attrs)
        self.limits_enforced = all(limit.enforced for limit in self.limits.values())
        if not self.limits_enforced:
            self.limits_note = (
                "the engine reports no CPU/memory limit for "
                + ", ".join(n for n, lim in self.limits.items() if not lim.enforced)
                + " (compose did not apply deploy.resources.limits?)"
            )
            banner = "!" * 78
            print(
                f"{banner}\nLIMITS NOT ENFORCED — {self.limits_note}.\nResults of this run "
                f"are not comparable with limited runs.\n{banner}",
                file=sys.stderr,
                flush=True,
            )
        for name, limit in self.limits.items():
            log(f"{name}: limits read back from inspect {asdict(limit)}")

    def _wait_http(self, service: str, url: str, timeout_s: float) -> httpx.Response:
        """Poll `url` until 2xx; fail fast with the container's log if the container exits."""
        container = self._container(service)

        def gone() -> str | None:
            container.reload()
            if container.status in ("created", "running", "restarting"):
                return None
            return f"container {container.status} (exit {container.attrs['State'].get('ExitCode')})"

        try:
            return net.wait_until_ready(url, timeout_s, poll_s=0.1, gone=gone)
        except net.NotReady as error:
            tail = container.logs(tail=30).decode(errors="replace")
            raise net.NotReady(f"{service}: {error}:\n{tail}") from None

    def _wait_service(self, name: str) -> None:
        response = self._wait_http(
            name, f"{self.service_urls[name]}/healthz", SERVICE_READY_TIMEOUT_S
        )
        try:
            self.healthz[name] = response.json()
        except ValueError:
            self.healthz[name] = {"raw": response.text[:200]}

    def _wait_prometheus(self) -> None:
        self._wait_http("prometheus", f"{self.prometheus_url}/-/ready", PROMETHEUS_READY_TIMEOUT_S)

    def _network_gateway(self) -> str:
        networks = self._container("prometheus").attrs["NetworkSettings"]["Networks"]
        for network_name in networks:
            network = self.client.networks.get(network_name)
            for config in network.attrs.get("IPAM", {}).get("Config") or []:
                gateway = config.get("Gateway")
                if gateway and ":" not in gateway:
                    return gateway
        raise DockerStackError(f"no IPv4 gateway on Prometheus' networks {list(networks)}")

    def _start_exporter(self, keep_jobs: list[str], base_config: Path) -> None:
        """cAdvisor's names from the containers' cgroups, served to the Prometheus container."""
        cgroup_args = []
        for name in SERVICE_NAMES:
            pid = int(self._container(name).attrs["State"].get("Pid") or 0)
            try:
                relpath = cgroup_relpath(pid)
            except (OSError, ValueError) as error:
                raise DockerStackError(
                    f"no cAdvisor image and the cgroup of {name} (pid {pid}) is not readable on "
                    f"this host ({error}): the engine runs elsewhere (a VM?). Make "
                    f"{OPTIONAL_SERVICES['cadvisor']} available, or use backend='local'"
                ) from error
            cgroup_args += ["--cgroup", f"{name}={relpath}"]
        gateway = self._network_gateway()
        port = net.free_port(gateway)
        self.exporter_target = f"{gateway}:{port}"
        argv = [sys.executable, "-m", "helpers.serving.exporter", "--host", gateway]
        argv += ["--port", str(port), *cgroup_args]
        self.exporter = process.start(
            EXPORTER_KEY, argv, self.logs_dir / f"{EXPORTER_KEY}.log", cwd=paths.REPO_ROOT
        )
        try:
            net.wait_until_ready(
                f"http://{self.exporter_target}/metrics", timeout_s=20, process=self.exporter.popen
            )
        except net.NotReady as error:
            raise net.NotReady(f"{error}\n{self.exporter.log_tail()}") from error
        # Same file, rewritten in place: the bind mount follows the inode, not the name.
        self.prometheus_config.write_text(
            render_prometheus_config(base_config, keep_jobs, self.exporter_target)
        )
        response = httpx.post(f"{self.prometheus_url}/-/reload", timeout=30)
        if not response.is_success:
            raise DockerStackError(
                f"Prometheus refused the reload with the exporter job: {response.text[:300]}"
            )
        log(f"container metrics: host cgroup exporter on {self.exporter_target}")

    # -- record -----------------------------------------------------------------------------

    def versions(self) -> dict[str, str]:
        found: dict[str, str] = {"backend": "docker"}
        with contextlib.suppress(Exception):
            found["docker_engine"] = str(self.client.version().get("Version"))
        with contextlib.suppress(Exception):
            result = subprocess.run(
                [*self.compose, "version"], capture_output=True, text=True, timeout=30, check=False
            )
            found["compose"] = (result.stdout or result.stderr).strip().splitlines()[0]
        for name, health in self.healthz.items():
            found[name] = str(health.get("runtime", "?"))
        return found

    def describe(self) -> dict[str, Any]:
        """Everything stack.json records (the local backend's keys, plus the docker ones)."""
        gomaxprocs = None
        with contextlib.suppress(Exception):
            text = self._container("go-api-onnx").logs().decode(errors="replace")
            gomaxprocs = gomaxprocs_from_log(text)
        return self.record_header() | {
            "prometheus": {
                "url": self.prometheus_url,
                "remote_write_url": self.remote_write_url,
                "data_dir": str(self.prometheus_dir / "data"),
                "config": str(self.prometheus_config),
                "scrape_interval_s": prometheus_helpers.SCRAPE_INTERVAL_S,
                "container": self.containers.get("prometheus"),
            },
            "exporter": {
                "kind": self.container_metrics,
                "target": self.exporter_target,
                "pid": self.exporter.pid if self.exporter else None,
            },
            "grafana_url": self.grafana_url,
            "services": {
                name: {
                    "url": self.service_urls[name],
                    "load_target_url": self.load_target_urls[name],
                    "container": self.containers.get(name),
                    "limits": asdict(self.limits[name]) if name in self.limits else None,
                    "healthz": self.healthz.get(name),
                    "log": str(self.logs_dir / f"{name}.log"),
                }
                for name in SERVICE_NAMES
            },
            "docker": {
                "engine": self.engine.host if self.engine else None,
                "engine_owned": bool(self.engine and self.engine.owned),
                "compose": " ".join(self.compose),
                "compose_files": [str(f) for f in self.compose_files],
                "project": PROJECT,
                "services": self.services_up,
                "images": self.images,
                "image_choice": self.image_reasons,
                "built": self.built,
            },
            "go_maxprocs": gomaxprocs,
            "versions": self.versions(),
        }

    def _write_stack_json(self) -> None:
        self.stack_dir.mkdir(parents=True, exist_ok=True)
        (self.stack_dir / "stack.json").write_text(json.dumps(self.describe(), indent=2) + "\n")

    # -- load and stop ----------------------------------------------------------------------

    def start_load_generator(
        self, args: list[str], env: dict[str, str], log_path: Path
    ) -> ContainerProcess:  # type: ignore[override]
        """`k6 <args>` in a container (K6_IMAGE) on the host network, outside every limit, as
        the calling user; the k6 scripts and the run folder are mounted at their host paths."""
        if self._stopped or self.client is None:
            raise RuntimeError("the stack is stopped; start a new one")
        container_env = {k: v for k, v in env.items() if k not in ("PATH", "HOME")}
        container_env["HOME"] = "/tmp"
        mounts = {
            str(paths.K6_DIR): {"bind": str(paths.K6_DIR), "mode": "ro"},
            str(self.run_dir): {"bind": str(self.run_dir), "mode": "rw"},
        }
        name = f"{PROJECT}-k6-{self.run_id}-{len(self.load_generators) + 1}"
        name = re.sub(r"[^a-zA-Z0-9_.-]", "_", name)
        container = self.client.containers.run(
            self.images["K6_IMAGE"],
            command=list(args),
            environment=container_env,
            network_mode="host",
            user=f"{os.getuid()}:{os.getgid()}",
            volumes=mounts,
            working_dir=str(paths.K6_DIR),
            labels={STACK_LABEL: PROJECT},
            name=name,
            detach=True,
        )
        generator = ContainerProcess("k6", container, Path(log_path))
        self.load_generators.append(generator)
        return generator

    def _save_logs(self) -> None:
        for container in self._project_containers():
            service = container.labels.get("com.docker.compose.service", container.name)
            with contextlib.suppress(Exception):
                (self.logs_dir / f"{service}.log").write_bytes(container.logs())

    def stop(self) -> None:
        """Stop k6, the stack (logs saved first), the exporter, and our engine. Idempotent;
        every step runs even if an earlier one failed, the first error is raised at the end."""
        if self._stopped:
            return
        self._stopped = True
        errors: list[BaseException] = []

        def attempt(step: Any, *args: Any) -> None:
            try:
                step(*args)
            except Exception as error:
                errors.append(error)

        for generator in self.load_generators:
            attempt(generator.stop)
        if self._compose_started and self.client is not None:
            attempt(self._compose, ["stop", "-t", str(STOP_GRACE_S)])
            attempt(self._save_logs)
            attempt(self._compose, ["down", "--volumes", "--remove-orphans", "-t", "5"])
        if self.exporter is not None:
            attempt(self.exporter.stop)
        if self.client is not None:
            with contextlib.suppress(Exception):
                self.client.close()
        if self.engine is not None and self.engine.owned:
            attempt(self.engine.stop)
        atexit.unregister(self.stop)
        if errors:
            raise errors[0]


def start_docker_stack(
    *,
    run_dir: Path,
    artifacts_dir: Path,
    ports: dict[str, int] | None = None,
    images: str | None = None,
    build: bool = True,
) -> DockerStack:
    """The docker backend's starter (`start_stack("docker", ...)`). `images` overrides
    STUDY_DOCKER_IMAGES (auto|registry|local); `build=False` uses the images already built."""
    return DockerStack(run_dir, artifacts_dir, ports, images=images, build=build).start()
