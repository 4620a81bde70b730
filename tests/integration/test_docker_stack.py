"""The docker backend on a real engine: `start_stack("docker", ...)` end to end.

One stack for the module, brought up exactly as `make study BACKEND=docker` does (the three
APIs built from their Dockerfiles with local base images as build args, the compose file's
limits, Prometheus; the collector, cAdvisor and Grafana where their images exist — on machines
without a registry the scrape override and the host cgroup exporter stand in). Then:
- the limits are read back from `docker inspect` and from the containers' cgroups;
- the SAME contract suite as for the local services runs against the containers
  (tests/integration/test_contract.py in a pytest subprocess with CONTRACT_TARGETS);
- a smoke k6 load runs as a container through the Docker SDK (`loadtest.run_phase`, which
  calls `stack.start_load_generator`);
- Prometheus in the stack holds the services' histograms, cAdvisor's `container_*` names and
  k6's remote-written series, per service;
- the run's Prometheus config passes `promtool check config`;
- a service container killed while the stack runs is recorded at once (`failures()`,
  stack/events.json) with how it ended;
- teardown leaves no container, network, interface or engine of ours behind, and the run's TSDB
  is readable afterwards by the host's Prometheus (what notebook 05 does).
Then a second, smaller stack of two instances of python-api-onnx side by side (issue 19's
paired comparisons: different environment and limits, one scraped, one pushing to the
collector): both serve under the limits they asked for, read back from their cgroups; both
reach Prometheus under their own names; `usage()` moves with load; `restart()` brings one back
without a failure recorded, while a later kill of it is recorded; a killed Prometheus is
recorded as a failure naming it.

Skipped, with the reason printed, only where no engine runs and none can be started.
Cold (no layer cache, no local images): ~10 min, mostly debootstrap; warm: ~1.5 min.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from helpers import net, paths
from helpers.load import loadtest, profiles
from helpers.prometheus import queries, tsdb
from helpers.serving.docker import engine as docker_engine
from helpers.serving.docker.containers import K6Container
from helpers.serving.docker.stack import PROJECT, STACK_LABEL, DockerStack
from helpers.serving.docker.standins import private_engine
from helpers.serving.docker.topology import cgroup_relpath
from helpers.serving.instances import Instance
from helpers.serving.local import cgroup_stats, cgroups
from helpers.serving.protocol import Limits, read_exits
from helpers.serving.services import LATENCY_BUCKETS_S, SERVICE_NAMES
from helpers.serving.stack import start_stack

pytestmark = [pytest.mark.integration, pytest.mark.docker]

CPU_CORES = 0.5
MEMORY_BYTES = 128 * 2**20
POLL_TIMEOUT_S = 60.0
# An extra variable for one service, with a `$` compose must pass through untouched.
SERVICE_ENV = {"go-api-onnx": {"STUDY_RUN_NOTE": "costs $5"}}


def _interfaces() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _engine_or_skip() -> tuple[str | None, bool]:
    """(running engine's host or None, whether the backend will have to start one)."""
    running = docker_engine.find_running_engine()
    if running:
        return running, False
    reason = private_engine.why_engine_cannot_start()
    if reason:
        print(f"SKIP docker stack: no Docker engine runs and none can be started: {reason}")
        pytest.skip(f"no Docker engine runs and none can be started here: {reason}")
    return None, True


@pytest.fixture(scope="module")
def before() -> dict[str, object]:
    running, will_start = _engine_or_skip()
    return {"interfaces": _interfaces(), "engine": running, "will_start": will_start}


@pytest.fixture(scope="module")
def artifacts(model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's model, in a folder the containers' non-root users may read."""
    target = tmp_path_factory.mktemp("docker-artifacts") / "artifacts"
    shutil.copytree(model_artifacts, target)
    for path in [target.parent, target, *target.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


@pytest.fixture(scope="module")
def stack(
    before: dict[str, object], artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerStack]:
    run_dir = tmp_path_factory.mktemp("docker-run")
    ports: dict[str, int] = {}
    while len(ports) < 4:  # never the seed's ports: a local stack may hold them
        port = net.free_port()
        if port not in ports.values():
            ports[[*SERVICE_NAMES, "prometheus"][len(ports)]] = port
    images = os.environ.get("STUDY_DOCKER_IMAGES", "local")
    started = time.monotonic()
    stack = start_stack(
        "docker",
        run_dir=run_dir,
        artifacts_dir=artifacts,
        ports=ports,
        service_env=SERVICE_ENV,
        images=images,
        telemetry="collector",  # the post's path: APIs → OTLP → collector → Prometheus
    )
    print(f"docker stack up in {time.monotonic() - started:.1f} s (images={images})")
    assert isinstance(stack, DockerStack)
    try:
        yield stack
    finally:
        stack.stop()


def _query(stack: DockerStack, promql: str) -> list[dict]:
    response = httpx.get(f"{stack.prometheus_url}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    return response.json()["data"]["result"]


def _wait_for_labels(stack: DockerStack, promql: str, label: str, wanted: set[str]) -> set[str]:
    """Poll until `promql` has a series for each of `wanted` (by `label`); returns what it saw."""
    seen: set[str] = set()

    def all_there() -> bool:
        seen.clear()
        seen.update(series["metric"].get(label, "") for series in _query(stack, promql))
        return wanted <= seen

    with contextlib.suppress(net.NotReady):
        net.poll(all_there, POLL_TIMEOUT_S, promql, interval_s=0.5)
    return seen


def test_the_stack_runs_the_three_apis_with_limits_read_back(stack: DockerStack) -> None:
    expected = Limits(cpu_cores=CPU_CORES, memory_bytes=MEMORY_BYTES, enforced=True)
    assert stack.limits == {name: expected for name in SERVICE_NAMES}
    assert stack.limits_enforced
    assert stack.load_target_urls == stack.service_urls
    for name in SERVICE_NAMES:
        container = stack.client.containers.get(name)
        host_config = container.attrs["HostConfig"]
        cpu = host_config["NanoCpus"] / 1e9 or host_config["CpuQuota"] / host_config["CpuPeriod"]
        assert (cpu, host_config["Memory"]) == (CPU_CORES, MEMORY_BYTES), name
        health = httpx.get(f"{stack.service_urls[name]}/healthz", timeout=5).json()
        assert health["status"] == "ok"
    record = json.loads((stack.stack_dir / "stack.json").read_text())
    assert record["backend"] == "docker"
    assert record["latency_buckets_s"] == list(LATENCY_BUCKETS_S)
    assert record["services"]["go-api-onnx"]["environment"] == SERVICE_ENV["go-api-onnx"]
    assert record["go_maxprocs"] == record["services"]["go-api-onnx"]["gomaxprocs"]
    assert list(stack.instances) == list(SERVICE_NAMES)
    assert record["machine"] == stack.machine and stack.machine["logical_cpus"] >= 1
    assert (stack.stack_dir / "manifest.json").is_file()  # frozen: what the services serve
    assert stack.failures() == []


def test_service_env_reaches_the_container_untouched(stack: DockerStack) -> None:
    env = stack.client.containers.get("go-api-onnx").attrs["Config"]["Env"]
    assert "STUDY_RUN_NOTE=costs $5" in env


def _proc_status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def test_the_apis_and_prometheus_run_with_least_privilege(stack: DockerStack) -> None:
    """What the engine applied, what the kernel shows of the process, and what a process in the
    container may write: non-root (APIs), no capability, no-new-privileges, a read-only root
    with only /tmp writable."""
    for name in [*SERVICE_NAMES, "prometheus"]:
        container = stack.client.containers.get(name)
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True, name
        assert host["CapDrop"] == ["ALL"], name
        assert "no-new-privileges:true" in host["SecurityOpt"], name
        try:
            status = _proc_status(container.attrs["State"]["Pid"])
        except OSError as error:
            pytest.skip(f"the engine's processes are not on this kernel: {error}")
        assert int(status["CapEff"], 16) == 0 and int(status["CapBnd"], 16) == 0, name
        assert status["NoNewPrivs"].strip() == "1", name
        if name in SERVICE_NAMES:
            assert container.attrs["Config"]["User"] == "10001:10001"
            assert status["Uid"].split()[:2] == ["10001", "10001"], name
            assert status["Gid"].split()[:2] == ["10001", "10001"], name
            refused = container.exec_run(["sh", "-c", "touch /app/written"])
            assert refused.exit_code != 0 and b"Read-only file system" in refused.output
            allowed = container.exec_run(["sh", "-c", "touch /tmp/written && rm /tmp/written"])
            assert allowed.exit_code == 0, allowed.output


def test_the_limits_are_in_the_containers_cgroups(stack: DockerStack) -> None:
    """What the kernel enforces, not only what the engine reports."""
    for name in SERVICE_NAMES:
        pid = stack.client.containers.get(name).attrs["State"]["Pid"]
        try:
            group = cgroups.open_cgroup(name, cgroup_relpath(pid))
        except OSError as error:
            pytest.skip(f"the engine's containers are not on this kernel: {error}")
        limits = cgroup_stats.read_limits(group)
        assert limits.cpu_cores == pytest.approx(CPU_CORES), name
        assert limits.memory_limit_bytes == MEMORY_BYTES, name


def test_the_contract_suite_passes_against_the_containers(
    stack: DockerStack, artifacts: Path
) -> None:
    env = dict(os.environ)
    env["CONTRACT_TARGETS"] = ",".join(f"{n}={u}" for n, u in stack.service_urls.items())
    env["CONTRACT_ARTIFACTS_DIR"] = str(artifacts)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            str(paths.REPO_ROOT / "tests" / "integration" / "test_contract.py"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=paths.REPO_ROOT,
        timeout=900,
        check=False,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    print(f"contract suite against the containers: {summary}")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary


@pytest.fixture(scope="module")
def smoke_phase(stack: DockerStack) -> loadtest.Phase:
    """One smoke k6 run (coupled mode) as a container, through the stack's interface."""
    started = time.monotonic()
    profile = profiles.get_profile("smoke")
    phase = loadtest.run_phase(stack, profile, "coupled", run_id="docker-test", progress=False)
    print(f"k6 smoke in a container: {time.monotonic() - started:.1f} s")
    return phase


def test_k6_runs_as_a_container_through_the_sdk(
    stack: DockerStack, smoke_phase: loadtest.Phase
) -> None:
    assert smoke_phase.exit_code == 0
    generator = stack.load_generators[-1]
    assert isinstance(generator, K6Container)
    assert not generator.alive()
    assert smoke_phase.generator_cpu_seconds is not None
    assert smoke_phase.generator_cpu_seconds > 0
    table = smoke_phase.service_table()
    assert set(table.index) == set(SERVICE_NAMES)
    assert (table["requests"] > 0).all(), table
    assert (table["failed"] == 0).all(), table
    # Removed after it stopped: nothing of k6 stays in the engine.
    assert stack.client.containers.list(all=True, filters={"label": STACK_LABEL}) == []


def test_prometheus_holds_server_container_and_client_metrics(
    stack: DockerStack, smoke_phase: loadtest.Phase
) -> None:
    wanted = set(SERVICE_NAMES)
    seen = _wait_for_labels(
        stack, "sum by (job) (http_server_request_duration_seconds_count)", "job", wanted
    )
    assert wanted <= seen, f"server histograms by job: {seen}"
    for metric, label in queries.CONTRACT_METRICS.items():
        seen = _wait_for_labels(stack, f"count by ({label}) ({metric})", label, wanted)
        assert wanted <= seen, f"{metric} by {label}: {seen}"
    cpu = _query(stack, "sum by (name) (container_cpu_usage_seconds_total)")
    assert all(float(series["value"][1]) > 0 for series in cpu), cpu


def test_the_server_metrics_came_through_the_real_collector(
    stack: DockerStack, smoke_phase: loadtest.Phase
) -> None:
    """The collector's container ran (the stand-in made from the binary `make setup` builds),
    Prometheus scraped only it for the APIs' histograms, and they kept the contract's names."""
    assert "otel-collector" in stack.topology.services
    assert stack.topology.metrics_via_collector
    targets = httpx.get(f"{stack.prometheus_url}/api/v1/targets").json()["data"]["activeTargets"]
    jobs = {t["labels"]["job"]: t["health"] for t in targets}
    assert jobs.get("otel-collector") == "up" and not set(SERVICE_NAMES) & set(jobs), jobs
    seen = _wait_for_labels(
        stack,
        'count by (job) (http_server_request_duration_seconds_bucket{http_route="/predict"})',
        "job",
        set(SERVICE_NAMES),
    )
    assert set(SERVICE_NAMES) <= seen


def test_promtool_accepts_the_runs_prometheus_config(stack: DockerStack) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found (make setup installs Debian's prometheus)")
    for config in (
        stack.prometheus_config,
        paths.OBSERVABILITY_DIR / "prometheus" / "prometheus.yml",
    ):
        result = subprocess.run(
            [promtool, "check", "config", str(config)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"{config}: {result.stdout}{result.stderr}"


def test_a_service_container_that_dies_is_recorded_at_once(
    stack: DockerStack, smoke_phase: loadtest.Phase
) -> None:
    """Runs after the load (it takes a service away): the engine's `die` event is the signal."""
    stack.client.containers.get("python-api-onnx").kill()  # SIGKILL, as the OOM killer sends
    [failure] = net.poll(stack.failures, POLL_TIMEOUT_S, "the exit recorded")
    assert failure.service == "python-api-onnx"
    assert failure.how == "killed by SIGKILL"
    assert failure.oom_kills == 0
    assert read_exits(stack.run_dir) == [failure]
    print(f"recorded: {failure.sentence()}")


def test_teardown_leaves_nothing_and_the_tsdb_is_readable(
    stack: DockerStack, before: dict[str, object], smoke_phase: loadtest.Phase
) -> None:
    engine = stack.engine
    assert engine is not None
    assert engine.owned == bool(before["will_start"])
    exporter = stack.exporter
    stack.stop()
    stack.stop()  # idempotent
    for name in SERVICE_NAMES:
        log = stack.logs_dir / f"{name}.log"
        assert log.exists() and log.stat().st_size > 0, f"no container log saved for {name}"
    if exporter is not None:
        assert not exporter.alive()
    if engine.owned:
        assert not docker_engine.ping(engine.host), "the engine we started still answers"
    else:
        with contextlib.closing(engine.client()) as client:
            project = {"label": f"com.docker.compose.project={PROJECT}"}
            assert client.containers.list(all=True, filters=project) == []
            assert client.networks.list(filters=project) == []
            assert client.containers.list(all=True, filters={"label": STACK_LABEL}) == []
    left = _interfaces() - set(before["interfaces"])  # type: ignore[arg-type]
    assert not left, f"network interfaces left behind: {sorted(left)}"
    assert len(stack.failures()) == 1, "stopping the stack is no failure"
    with tsdb.reopen(stack.run_dir) as url:
        result = httpx.get(
            f"{url}/api/v1/query",
            params={
                "query": "count by (job) (http_server_request_duration_seconds_count)",
                "time": smoke_phase.ended_at,
            },
        ).json()["data"]["result"]
    assert {series["metric"]["job"] for series in result} >= set(SERVICE_NAMES)


# -- two instances of one service side by side (a second stack, after the first is down) --------

PAIR = [
    Instance("python-api-onnx.a", "python-api-onnx", {"STUDY_NOTE": "a"}),
    Instance(
        "python-api-onnx.b",
        "python-api-onnx",
        {"STUDY_NOTE": "b", "ORT_INTRA_OP_NUM_THREADS": "2"},
        cpu_cores=0.25,
        memory_bytes=192 * 2**20,
        telemetry="collector",
    ),
]
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


@pytest.fixture(scope="module")
def pair(
    stack: DockerStack, artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerStack]:
    """Two instances of python-api-onnx on one stack; started once the module's first stack is
    stopped (one compose project at a time), reusing its images and layer cache."""
    stack.stop()
    started = time.monotonic()
    pair = start_stack(
        "docker",
        run_dir=tmp_path_factory.mktemp("docker-pair"),
        artifacts_dir=artifacts,
        ports={"prometheus": net.free_port()},
        images=os.environ.get("STUDY_DOCKER_IMAGES", "local"),
        instances=PAIR,
    )
    print(f"docker stack of two instances up in {time.monotonic() - started:.1f} s")
    try:
        yield pair
    finally:
        pair.stop()


def _predict(url: str, count: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(count):
            response = client.post("/predict", json=ROW)
            assert response.status_code == 200, response.text


def test_two_instances_of_one_service_serve_under_the_limits_they_asked_for(
    pair: DockerStack,
) -> None:
    assert list(pair.instances) == [i.name for i in PAIR]
    assert pair.limits == {
        "python-api-onnx.a": Limits(0.5, 128 * 2**20, True),
        "python-api-onnx.b": Limits(0.25, 192 * 2**20, True),
    }
    assert pair.limits_enforced
    assert set(pair.service_urls) == set(pair.load_target_urls) == set(pair.instances)
    record = json.loads((pair.stack_dir / "stack.json").read_text())
    for instance in PAIR:
        name = instance.name
        _predict(pair.service_urls[name], 1)
        container = pair.containers[name]
        assert container.name == name  # cAdvisor's and the exporter's `name` label
        env = container.attrs["Config"]["Env"]
        assert f"OTEL_SERVICE_NAME={name}" in env
        assert f"STUDY_NOTE={instance.environment['STUDY_NOTE']}" in env
        host_config = container.attrs["HostConfig"]
        assert host_config["NanoCpus"] / 1e9 == instance.cpu_cores
        assert host_config["Memory"] == instance.memory_bytes
        described = record["services"][name]
        assert described["service"] == "python-api-onnx"
        assert described["telemetry"] == (instance.telemetry or "pull")
        assert described["limits"] == dataclasses.asdict(pair.limits[name])
        assert described["container"]["name"] == name
    assert record["machine"] == pair.machine
    assert pair.failures() == []


def test_both_instances_reach_prometheus_under_their_own_names(pair: DockerStack) -> None:
    """a is scraped by Prometheus, b pushes to the collector: the same labels either way."""
    names = set(pair.instances)
    for name in names:
        _predict(pair.service_urls[name], 5)
    promql = 'sum by (job) (http_server_request_duration_seconds_count{http_route="/predict"})'
    seen = _wait_for_labels(pair, promql, "job", names)
    assert names <= seen, f"server histograms by job: {seen}"
    seen = _wait_for_labels(
        pair, "sum by (name) (container_cpu_usage_seconds_total)", "name", names
    )
    assert names <= seen, f"container CPU by name: {seen}"


def test_usage_moves_with_load(pair: DockerStack) -> None:
    name = "python-api-onnx.a"
    before = pair.usage(name)
    _predict(pair.service_urls[name], 200)
    after = pair.usage(name)
    assert after.cpu_usage_seconds > before.cpu_usage_seconds
    assert after.cfs_periods > before.cfs_periods  # its quota's periods: a limited cgroup
    assert after.memory_working_set_bytes > 0 and after.oom_kills == 0
    group = cgroups.open_cgroup(name, cgroup_relpath(pair.containers[name].attrs["State"]["Pid"]))
    direct = cgroup_stats.read_stats(group)
    assert direct.cpu_usage_seconds >= after.cpu_usage_seconds  # the same counter, read later


def test_restart_brings_an_instance_back_without_a_failure(pair: DockerStack) -> None:
    name = "python-api-onnx.b"
    old_pid = pair.containers[name].attrs["State"]["Pid"]
    asked = time.time()
    spawned = pair.restart(name)
    assert asked <= spawned <= time.time()
    assert pair.containers[name].attrs["State"]["Pid"] != old_pid
    net.wait_until_ready(f"{pair.service_urls[name]}/healthz", POLL_TIMEOUT_S)
    _predict(pair.service_urls[name], 3)
    assert pair.usage(name).cpu_usage_seconds > 0  # its cgroup, found again at the same path
    pid = pair.containers[name].attrs["State"]["Pid"]
    limits = cgroup_stats.read_limits(cgroups.open_cgroup(name, cgroup_relpath(pid)))
    assert (limits.cpu_cores, limits.memory_limit_bytes) == (0.25, 192 * 2**20)  # the same
    assert pair.failures() == [], "a restart asked for is no failure"


def test_after_a_restart_an_unexpected_exit_is_still_recorded(pair: DockerStack) -> None:
    name = "python-api-onnx.b"
    pair.client.containers.get(name).kill()
    [failure] = net.poll(pair.failures, POLL_TIMEOUT_S, "the exit recorded")
    assert (failure.service, failure.how) == (name, "killed by SIGKILL")


def test_a_dead_prometheus_is_recorded_naming_it(pair: DockerStack) -> None:
    pair.client.containers.get("prometheus").kill()

    def recorded() -> list:
        return [f for f in pair.failures() if f.service == "prometheus"]

    [failure] = net.poll(recorded, POLL_TIMEOUT_S, "Prometheus' exit recorded")
    assert failure.how == "killed by SIGKILL"
    assert "prometheus" in {e.service for e in read_exits(pair.run_dir)}
    print(f"recorded: {failure.sentence()}")
