"""The local stack for real: real cgroups, the real Prometheus binary, the three real services.

One stack is started for the module (it takes ~10 s on two shared cores) and the last test
tears it down and checks that nothing of the run survives: no process, no cgroup. Readiness
and "after a scrape" are observed by polling, never by sleeping.

Where cgroups cannot be written (no root), the stack runs unlimited and the limit checks skip
with that reason; everything else must hold either way.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import net
from helpers.serving import protocol, stack
from helpers.serving.local import cgroups
from helpers.serving.local.stack import LocalStack
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
CADVISOR_METRICS = (
    "container_cpu_usage_seconds_total",
    "container_memory_working_set_bytes",
    "container_memory_rss",
    "container_memory_usage_bytes",
    "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total",
    "container_spec_memory_limit_bytes",
    "container_spec_cpu_quota",
    "container_spec_cpu_period",
    "container_oom_events_total",
)
INSTANCE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _free_ports() -> dict[str, int]:
    chosen: dict[str, int] = {}
    for key in (*SERVICE_NAMES, "prometheus"):
        port = net.free_port()
        while port in chosen.values():
            port = net.free_port()
        chosen[key] = port
    return chosen


@pytest.fixture(scope="module")
def local_stack(
    model_artifacts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    run_dir = tmp_path_factory.mktemp("run-stack-test")
    started = stack.start_stack(
        "local", run_dir=run_dir, artifacts_dir=model_artifacts, ports=_free_ports()
    )
    assert isinstance(started, LocalStack)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def stack_json(local_stack: LocalStack) -> dict[str, Any]:
    return json.loads((local_stack.run_dir / "stack" / "stack.json").read_text())


def query(url: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5.0)
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_the_run_folder_records_the_stack(
    local_stack: LocalStack, stack_json: dict[str, Any]
) -> None:
    assert stack_json["backend"] == "local"
    assert set(stack_json["services"]) == set(SERVICE_NAMES)
    assert (local_stack.run_dir / "prometheus" / "data").is_dir()
    for name in SERVICE_NAMES:
        assert (local_stack.run_dir / "stack" / "logs" / f"{name}.log").is_file()
        assert stack_json["services"][name]["healthz"]["status"] == "ok"
    assert stack_json["limits_enforced"] == local_stack.limits_enforced
    # What the analysis needs later, frozen now: the served model and the histogram's layout.
    frozen = json.loads((local_stack.run_dir / "stack" / "manifest.json").read_text())
    assert (
        frozen["artifacts"]["model.onnx"]["sha256"]
        == stack_json["services"]["go-api-onnx"]["healthz"]["model_sha256"]
    )
    assert stack_json["latency_buckets_s"][9] == 0.025  # the study's latency objective


def test_limits_read_back_as_half_a_core_and_128_mib(
    local_stack: LocalStack, stack_json: dict[str, Any]
) -> None:
    if not local_stack.limits_enforced:
        pytest.skip(f"cgroups not writable here, stack runs unlimited: {local_stack.limits_note}")
    for name in SERVICE_NAMES:
        assert local_stack.limits[name] == protocol.Limits(0.5, 128 * MIB, True), name
        dirs = {k: Path(v) for k, v in stack_json["services"][name]["cgroup_dirs"].items()}
        if "unified" in dirs:  # v2
            assert (dirs["unified"] / "cpu.max").read_text().split() == ["50000", "100000"]
            assert int((dirs["unified"] / "memory.max").read_text()) == 128 * MIB
        else:
            assert int((dirs["cpu"] / "cpu.cfs_quota_us").read_text()) == 50_000
            assert int((dirs["cpu"] / "cpu.cfs_period_us").read_text()) == 100_000
            assert int((dirs["memory"] / "memory.limit_in_bytes").read_text()) == 128 * MIB
        group = cgroups.open_cgroup(name, stack_json["services"][name]["cgroup"])
        assert stack_json["services"][name]["pid"] in cgroups.pids(group), (
            f"{name} is not in its cgroup"
        )


def test_prometheus_has_every_contract_metric_for_every_service(
    local_stack: LocalStack,
) -> None:
    for name, url in local_stack.service_urls.items():
        with httpx.Client(base_url=url, timeout=10.0) as client:
            for _ in range(5):
                assert client.post("/predict", json=INSTANCE).status_code == 200, name
    missing: dict[str, set[str]] = {}

    def server_histograms_arrived() -> bool:
        jobs = {
            r["metric"].get("job")
            for r in query(
                local_stack.prometheus_url,
                'sum by (job) (http_server_request_duration_seconds_count{http_route="/predict"})'
                " >= 5",
            )
        }
        missing["http_server_request_duration_seconds"] = set(SERVICE_NAMES) - jobs
        return not missing["http_server_request_duration_seconds"]

    net.poll(server_histograms_arrived, 15.0, f"histograms in Prometheus (missing {missing})")
    for name in SERVICE_NAMES:
        buckets = query(
            local_stack.prometheus_url,
            f'http_server_request_duration_seconds_bucket{{job="{name}"}}',
        )
        assert buckets, f"no histogram buckets for {name}"
    wanted = CADVISOR_METRICS if local_stack.limits_enforced else CADVISOR_METRICS[:4]
    for metric in wanted:
        names = {r["metric"].get("name") for r in query(local_stack.prometheus_url, metric)}
        absent = set(SERVICE_NAMES) - names
        if absent:
            missing[metric] = absent
    assert not {k: v for k, v in missing.items() if v}, missing


def test_gomaxprocs_as_the_go_runtime_chose_it_is_recorded(
    local_stack: LocalStack, record_property: pytest.RecordProperty
) -> None:
    log = (local_stack.run_dir / "stack" / "logs" / "go-api-onnx.log").read_text()
    gomaxprocs = protocol.gomaxprocs_from_log(log)
    assert gomaxprocs is not None, f"no GOMAXPROCS line in the Go service's log:\n{log[-2000:]}"
    record_property("gomaxprocs", gomaxprocs)
    print(
        f"GOMAXPROCS chosen by the Go runtime under 0.5 CPU on {os.cpu_count()} CPUs: {gomaxprocs}"
    )
    assert 1 <= gomaxprocs <= (os.cpu_count() or 1)


def test_a_service_killed_mid_run_is_recorded_with_how_it_ended(
    local_stack: LocalStack,
) -> None:
    """The defect: SIGKILL to go-api-onnx 30 % into a load and nothing said it had exited."""
    assert local_stack.failures() == []
    os.kill(local_stack.processes["go-api-onnx"].pid, signal.SIGKILL)
    exits = net.poll(local_stack.failures, 10.0, "the stack noticing the kill")
    assert [(e.service, e.how) for e in exits] == [("go-api-onnx", "killed by SIGKILL")]
    assert exits[0].oom_kills in (0, None)  # a kill by hand, not the OOM killer
    recorded = protocol.read_exits(local_stack.run_dir)
    assert recorded == exits
    assert "go-api-onnx stopped at" in recorded[0].sentence()


def test_stop_leaves_no_process_and_no_cgroup(
    local_stack: LocalStack, stack_json: dict[str, Any]
) -> None:
    pids = [stack_json["prometheus"]["pid"], stack_json["exporter"]["pid"]]
    pids += [s["pid"] for s in stack_json["services"].values()]
    dirs = [Path(d) for s in stack_json["services"].values() for d in s["cgroup_dirs"].values()]
    local_stack.stop()
    local_stack.stop()  # idempotent
    assert [e.service for e in local_stack.failures()] == ["go-api-onnx"]  # stop is no failure
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
    assert not alive, f"still running after stop(): {alive}"
    assert not [d for d in dirs if d.exists()], "cgroups left behind"
    assert not [d.parent for d in dirs if d.parent.exists()], "the run's parent cgroup is left"


def test_unknown_backend_and_missing_model_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend 'k8s'"):
        stack.start_stack("k8s", run_dir=tmp_path, artifacts_dir=tmp_path)
    # The docker backend is registered; without a trained model it stops before any engine.
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        stack.start_stack("docker", run_dir=tmp_path, artifacts_dir=tmp_path)


def test_a_port_in_use_is_named_before_anything_starts(
    tmp_path: Path, model_artifacts: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        ports = {**_free_ports(), "go-api-onnx": port}
        with pytest.raises(ValueError, match=f"port {port} for go-api-onnx is already in use"):
            stack.start_stack(run_dir=tmp_path, artifacts_dir=model_artifacts, ports=ports)
    with pytest.raises(ValueError, match="unknown port name"):
        stack.start_stack(run_dir=tmp_path, artifacts_dir=model_artifacts, ports={"grafana": 1})
    assert not (tmp_path / "stack").exists()


def test_a_second_stack_starts_at_once_on_the_ports_of_the_first(
    tmp_path: Path, model_artifacts: Path
) -> None:
    """The defect: a second run within a minute failed with "port … already in use" because
    the first run's connections, closed by the servers, sat in TIME_WAIT on those ports."""
    fixed = _free_ports()
    with stack.start_stack(
        run_dir=tmp_path / "first", artifacts_dir=model_artifacts, ports=fixed
    ) as first:
        clients = [httpx.Client(base_url=url, timeout=10.0) for url in first.service_urls.values()]
        for client in clients:
            for _ in range(20):
                assert client.post("/predict", json=INSTANCE).status_code == 200
        first.stop()  # the servers close the kept-alive connections: TIME_WAIT on their side
        for client in clients:
            client.close()
    with stack.start_stack(
        run_dir=tmp_path / "second", artifacts_dir=model_artifacts, ports=fixed
    ) as second:
        assert second.service_urls == first.service_urls
        assert httpx.get(f"{second.service_urls['go-api-onnx']}/healthz").status_code == 200


def test_through_the_collector_the_same_queries_find_every_service(
    tmp_path: Path, model_artifacts: Path
) -> None:
    """telemetry="collector": the services push OTLP to the real collector, Prometheus scrapes
    it, and the contract's names and labels survive the translation (the PromQL is the same)."""
    with stack.start_stack(
        run_dir=tmp_path, artifacts_dir=model_artifacts, ports=_free_ports(), telemetry="collector"
    ) as through:
        for url in through.service_urls.values():
            with httpx.Client(base_url=url, timeout=10.0) as client:
                for _ in range(5):
                    assert client.post("/predict", json=INSTANCE).status_code == 200

        def arrived() -> bool:
            found = query(
                through.prometheus_url,
                'sum by (job) (http_server_request_duration_seconds_count{http_route="/predict",'
                ' http_response_status_code="200"}) >= 5',
            )
            return {r["metric"]["job"] for r in found} == set(SERVICE_NAMES)

        net.poll(arrived, 30.0, "every service's histogram through the collector")
        buckets = {
            r["metric"]["le"]
            for r in query(
                through.prometheus_url,
                'http_server_request_duration_seconds_bucket{job="go-api-onnx"}',
            )
        }
        assert {"0.0005", "0.025", "10.0", "+Inf"} <= buckets
        record = json.loads((tmp_path / "stack" / "stack.json").read_text())
        assert record["telemetry"] == "collector" and record["collector"]["pid"]

        def collector_measured() -> bool:
            return bool(
                query(
                    through.prometheus_url,
                    'container_cpu_usage_seconds_total{name="otel-collector"}',
                )
            )

        net.poll(collector_measured, 15.0, "the collector's own CPU in Prometheus")
