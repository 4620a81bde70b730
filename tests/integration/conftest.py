"""Real servers for integration tests: start a service as a process and wait until it answers.

`start_service()` is the one way tests start a service: the command line and environment come
from `helpers.serving.services` (the same specs the local backend uses), the process from
`helpers.serving.process` (own process group, log file, dies with the test run), readiness from
`helpers.net.wait_until_ready` polling `/healthz` — never a sleep.

The session fixture `service_pool` starts each service once (each variant: a service with
settings such as FRAMEWORK=fastapi is a variant of its own), on free ports, with its Prometheus
endpoint on, and stops it (SIGTERM) at the end of the session. With

    CONTRACT_TARGETS="python-api-pkl=http://127.0.0.1:5001,python-api-onnx=http://...,go-api-onnx=..."

it starts nothing and uses those URLs instead (e.g. the Docker containers);
`CONTRACT_METRICS_TARGETS` (same syntax, optional) names their scrape endpoints. Tests that need
to own the process (exit status, signals) skip in that mode, as do variants with settings.

`service_in_budget` starts a service under the study's budget (0.5 CPU / 128 MiB, a real cgroup, as
the local backend does) and reads its OOM kills; it is the one place these tests reach into
helpers.serving's cgroup modules.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from helpers import paths
from helpers.net import NotReady, free_port, wait_until_ready
from helpers.serving import process
from helpers.serving.local import cgroup_removal, cgroup_stats, cgroups
from helpers.serving.services import SERVICE_NAMES, ServiceSpec, all_services

TARGETS_ENV = "CONTRACT_TARGETS"
METRICS_TARGETS_ENV = "CONTRACT_METRICS_TARGETS"
ARTIFACTS_ENV = "CONTRACT_ARTIFACTS_DIR"
START_TIMEOUT_S = 60.0  # generous: two shared cores, Python services import numpy/sklearn


class ServiceStartError(RuntimeError):
    """A service could not be started or did not become ready; the message says why."""


@dataclass
class RunningService:
    name: str
    base_url: str
    metrics_url: str | None = None  # scrape endpoint (…/metrics), None when metrics are off
    managed: process.ManagedProcess | None = None  # None: started by someone else
    spec: ServiceSpec | None = None
    log_path: Path | None = None
    variant: str = ""  # the name, or the name with its settings (ServicePool)

    def stop(self, grace_s: float = 15.0) -> int | None:
        return self.managed.stop(grace_s) if self.managed else None


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def missing_executable(spec: ServiceSpec) -> str | None:
    """Why `spec` cannot be started at all, or None. A missing build is a failure, not a skip."""
    executable = Path(spec.argv[0])
    if not executable.exists():
        return f"{spec.name}: {executable} does not exist — run `make setup` to build it"
    return None


def start_service(
    spec: ServiceSpec,
    artifacts_dir: Path,
    log_dir: Path,
    metrics: bool = True,
    overrides: dict[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
    before_exec: tuple[Callable[[], None], ...] = (),
) -> RunningService:
    """Start `spec` on free ports and return once GET /healthz answers 2xx. `before_exec`
    runs in the child before exec (e.g. `ServiceBudget.join`).

    Raises ServiceStartError with the log's tail if it exits or does not answer in time.
    """
    problem = missing_executable(spec)
    if problem:
        raise ServiceStartError(problem)
    port, metrics_port = _distinct_free_ports(2)
    env = spec.environment(
        artifacts_dir, port, metrics_port if metrics else None, overrides=overrides
    )
    log_path = log_dir / f"{spec.name}-{port}.log"
    managed = process.start(
        spec.name, spec.argv, log_path, env=env, cwd=spec.cwd, before_exec=before_exec
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(f"{base_url}/healthz", timeout_s=timeout_s, process=managed.popen)
    except NotReady as error:
        managed.stop()
        raise ServiceStartError(
            f"{spec.name} did not start: {error}\n--- {log_path} (tail) ---\n{managed.log_tail(40)}"
        ) from error
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics" if metrics else None
    return RunningService(spec.name, base_url, metrics_url, managed, spec, log_path)


def parse_targets(text: str | None) -> dict[str, str]:
    """ "name=url,name=url" → {name: url}; unknown names are an error, not ignored."""
    targets: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, url = item.partition("=")
        name = name.strip()
        if not sep or name not in SERVICE_NAMES:
            raise ValueError(f"bad target {item!r}: expected name=url with name in {SERVICE_NAMES}")
        targets[name] = url.strip().rstrip("/")
    return targets


def variant_id(name: str, overrides: dict[str, str] | None = None) -> str:
    """`python-api-pkl`, or `python-api-pkl[FRAMEWORK=fastapi]` for a variant."""
    if not overrides:
        return name
    return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(overrides.items()))}]"


@dataclass
class ServicePool:
    """Each service started at most once per session (lazily, on first use)."""

    artifacts_dir: Path
    log_dir: Path
    targets: dict[str, str] = field(default_factory=dict)
    metrics_targets: dict[str, str] = field(default_factory=dict)
    _running: dict[str, RunningService] = field(default_factory=dict)
    _failed: dict[str, str] = field(default_factory=dict)

    @property
    def external(self) -> bool:
        return bool(self.targets)

    def get(self, name: str, overrides: dict[str, str] | None = None) -> RunningService:
        """The service `name`, started with `overrides` (a variant) when given."""
        key = variant_id(name, overrides)
        if key in self._running:
            return self._running[key]
        if key in self._failed:
            pytest.fail(self._failed[key], pytrace=False)
        if self.external:
            if overrides:
                pytest.skip(f"{key}: {TARGETS_ENV} names services, not variants with settings")
            if name not in self.targets:
                self._failed[key] = f"{name} is not listed in {TARGETS_ENV}"
                pytest.fail(self._failed[key], pytrace=False)
            service = RunningService(name, self.targets[name], self.metrics_targets.get(name))
            try:
                wait_until_ready(f"{service.base_url}/healthz", timeout_s=START_TIMEOUT_S)
            except NotReady as error:
                self._failed[key] = f"{name} ({service.base_url}) is not ready: {error}"
                pytest.fail(self._failed[key], pytrace=False)
        else:
            try:
                service = start_service(
                    all_services()[name], self.artifacts_dir, self.log_dir, overrides=overrides
                )
            except ServiceStartError as error:
                self._failed[key] = str(error)
                pytest.fail(self._failed[key], pytrace=False)
        service.variant = key
        self._running[key] = service
        return service

    def stop_all(self) -> None:
        for service in self._running.values():
            service.stop()
        self._running.clear()


@pytest.fixture(scope="session")
def contract_artifacts(request: pytest.FixtureRequest) -> Path:
    """The artifacts the services under test load, which the reference predictions use too.

    Started here: a freshly trained model (`model_artifacts`, tests/conftest.py). Started by
    someone else (CONTRACT_TARGETS): the checkout's artifacts/ (or CONTRACT_ARTIFACTS_DIR),
    which is what the containers were built from; /healthz's model_sha256 proves it.
    """
    if os.environ.get(TARGETS_ENV):
        return Path(os.environ.get(ARTIFACTS_ENV, paths.ARTIFACTS_DIR))
    return request.getfixturevalue("model_artifacts")


@pytest.fixture(scope="session")
def service_pool(
    contract_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServicePool]:
    pool = ServicePool(
        artifacts_dir=contract_artifacts,
        log_dir=tmp_path_factory.mktemp("service-logs"),
        targets=parse_targets(os.environ.get(TARGETS_ENV)),
        metrics_targets=parse_targets(os.environ.get(METRICS_TARGETS_ENV)),
    )
    yield pool
    pool.stop_all()


@dataclass
class ResponseLog:
    """Every response the suite received, so one check can say no input produced a 5xx."""

    entries: list[tuple[str, str, int, str]] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        self.entries.append(
            (str(request.method), str(request.url), response.status_code, response.text[:300])
        )

    def server_errors_since(self, start: int) -> list[tuple[str, str, int, str]]:
        return [entry for entry in self.entries[start:] if entry[2] >= 500]


@pytest.fixture(scope="session")
def response_log() -> ResponseLog:
    return ResponseLog()


def http_client(base_url: str, log: ResponseLog, timeout_s: float = 30.0) -> httpx.Client:
    """A client that records every response in `log`."""
    return httpx.Client(
        base_url=base_url, timeout=timeout_s, event_hooks={"response": [log.record]}
    )


@pytest.fixture(scope="session")
def client_for(response_log: ResponseLog) -> Iterator[Callable[[str], httpx.Client]]:
    """`client_for(base_url)`: an httpx client that records every response in `response_log`."""
    clients: list[httpx.Client] = []

    def make(base_url: str) -> httpx.Client:
        clients.append(http_client(base_url, response_log))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def launch_service(
    contract_artifacts: Path, tmp_path: Path
) -> Iterator[Callable[..., RunningService]]:
    """`launch_service(name, **start_service_kwargs)`: a private instance for one test.

    Fails the test (not skips) when the service cannot start; stops what it started.
    """
    started: list[RunningService] = []

    def launch(name: str, **kwargs) -> RunningService:
        kwargs.setdefault("artifacts_dir", contract_artifacts)
        kwargs.setdefault("log_dir", tmp_path)
        try:
            started.append(start_service(all_services()[name], **kwargs))
        except ServiceStartError as error:
            pytest.fail(str(error), pytrace=False)
        return started[-1]

    yield launch
    for service in started:
        service.stop()


@dataclass
class ServiceBudget:
    """A cgroup with the study's per-service budget, for one service process at a time."""

    group: cgroups.Cgroup

    @property
    def join(self) -> Callable[[], None]:
        """For `start_service(before_exec=(budget.join,))`: the child joins before exec."""
        return cgroups.join_before_exec(self.group)

    def oom_kills(self) -> int:
        return cgroup_stats.read_stats(self.group).oom_kills


@pytest.fixture(scope="module")
def service_in_budget(
    request: pytest.FixtureRequest,
    contract_artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., tuple[RunningService, ServiceBudget]]]:
    """`service_in_budget(name, **start_service_kwargs)`: the service started inside a fresh
    cgroup of the study's budget (0.5 CPU / 128 MiB), as the local backend starts it. Both
    are stopped and removed at the end of the module. Skips, printing why, where cgroups
    cannot be written (no root, no controllers)."""
    run_id = f"itest-{os.getpid()}-{request.module.__name__.rsplit('.', 1)[-1]}"[:60]
    made: list[cgroups.Cgroup] = []
    started: list[RunningService] = []

    def start(name: str, **kwargs) -> tuple[RunningService, ServiceBudget]:
        group = cgroups.create_cgroup(run_id.replace("_", "-"), f"{name}-{len(made)}")
        if not group.enforced:
            print(f"\nno cgroup for the service budget: {group.reason}")
            pytest.skip(f"no cgroup for the service budget: {group.reason}")
        made.append(group)
        budget = ServiceBudget(group)
        kwargs.setdefault("artifacts_dir", contract_artifacts)
        kwargs.setdefault("log_dir", tmp_path_factory.mktemp(f"budget-{name}"))
        try:
            service = start_service(all_services()[name], before_exec=(budget.join,), **kwargs)
            started.append(service)
        except ServiceStartError as error:
            pytest.fail(str(error), pytrace=False)
        return service, budget

    yield start
    for service in started:
        service.stop()
    for group in made:
        cgroup_removal.remove_cgroup(group)
    cgroup_removal.remove_run(run_id.replace("_", "-"))
