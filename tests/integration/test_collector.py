"""The study's OpenTelemetry Collector, for real: services → OTLP → collector → Prometheus.

Real parts only: the binary `make setup` builds from observability/otel-collector/builder.yaml
(.build/otelcol-study/otelcol-study), run with the one config.yaml both backends use, its
listen addresses moved to 127.0.0.1 and free ports by the variables the config reads; each
real service pushing OTLP/HTTP to it (OTEL_METRICS_EXPORTER=otlp, one export a second); and
the real Prometheus binary scraping the collector's exporter with prometheus.yml's own
`otel-collector` job (honor_labels), only its target moved. Every wait is a bounded poll.

What must survive the trip (services/CONTRACT.md "Telemetry", helpers/prometheus/queries.py):
`http_server_request_duration_seconds_{bucket,sum,count}` with `job` = `service_name` = the
service, `http_route="/predict"`, `http_response_status_code="200"` and the contract's bucket
boundaries; and every `http_server_*` name a service exposes when scraped directly (the local
backend) arrives under the same name, with the same labels plus its resource's.

A missing binary fails (run `make setup`), it is never skipped.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from helpers import paths
from helpers.net import NotReady, free_port, wait_until_ready
from helpers.serving import process, prometheus_server
from helpers.serving.services import SERVICE_NAMES

pytestmark = pytest.mark.integration

COLLECTOR_DIR = paths.OBSERVABILITY_DIR / "otel-collector"
CONFIG = COLLECTOR_DIR / "config.yaml"
MANIFEST = COLLECTOR_DIR / "builder.yaml"
# Where the Makefile's rule (OTELCOL_BIN) puts it: builder.yaml's dist.output_path / dist.name.
BINARY = paths.BUILD_DIR / "otelcol-study" / "otelcol-study"
PROMETHEUS_CONFIG = paths.OBSERVABILITY_DIR / "prometheus" / "prometheus.yml"
COMPOSE = paths.REPO_ROOT / "docker-compose.yaml"
# The variables config.yaml reads, with their defaults: the compose (container) addresses.
LISTEN_VARIABLES = {
    "OTELCOL_OTLP_GRPC_ENDPOINT": "0.0.0.0:4317",
    "OTELCOL_OTLP_HTTP_ENDPOINT": "0.0.0.0:4318",
    "OTELCOL_PROMETHEUS_ENDPOINT": "0.0.0.0:8889",
    "OTELCOL_HEALTH_ENDPOINT": "0.0.0.0:13133",
}
BUCKETS_S = json.loads((paths.REPO_ROOT / "tests" / "contract" / "requests.json").read_text())[
    "limits"
]["latency_buckets_s"]
DURATION = "http_server_request_duration_seconds"
SETOSA = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
REQUESTS_SENT = 7
START_TIMEOUT_S = 30.0
# Export every 1 s, collector batch ≤ 1 s, scrape every 1 s: a few seconds end to end; this is
# the bound on two shared cores, not an expected duration.
ARRIVAL_TIMEOUT_S = 30.0


def _binary() -> Path:
    if not BINARY.exists():
        pytest.fail(
            f"{BINARY} does not exist — run `make setup` to build the collector "
            f"(ocb, {MANIFEST.relative_to(paths.REPO_ROOT)})",
            pytrace=False,
        )
    return BINARY


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_binary()), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def _without_listen_variables() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in LISTEN_VARIABLES}


def poll(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """`check()` until truthy (returned), every 0.1 s; NotReady saying what, once time is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise NotReady(f"{what}: not after {timeout_s:.0f} s")
        time.sleep(0.1)


# --- the binary and the config, without traffic ------------------------------------------


def test_the_binary_holds_exactly_the_manifest() -> None:
    """A stale binary (manifest changed, `make setup` not re-run) fails here."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    result = _run("components")
    assert result.returncode == 0, result.stderr
    built = yaml.safe_load(result.stdout)
    assert built["buildinfo"]["version"] == manifest["dist"]["version"]
    for kind in ("receivers", "processors", "exporters", "extensions", "providers"):
        wanted = {entry["gomod"] for entry in manifest.get(kind, [])}
        have = {entry["module"] for entry in built.get(kind) or []}
        assert have == wanted, f"{kind}: binary has {sorted(have)}, builder.yaml {sorted(wanted)}"


def test_every_component_built_is_used_by_the_config() -> None:
    """Minimal distribution: nothing compiled in that config.yaml does not run."""
    built = yaml.safe_load(_run("components").stdout)
    config = yaml.safe_load(CONFIG.read_text())
    service = config["service"]
    used: dict[str, set[str]] = {"extensions": set(service.get("extensions", []))}
    for pipeline in service["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            used.setdefault(kind, set()).update(pipeline.get(kind, []))
    for kind, names in used.items():
        assert set(config[kind]) == names, f"{kind} defined but unused: {set(config[kind]) - names}"
        have = {entry["name"] for entry in built[kind] or []}
        assert have == names, f"{kind}: built {sorted(have)}, used {sorted(names)}"
    assert service["pipelines"]["traces"]["exporters"] == ["nop"]
    assert {entry["scheme"] for entry in built["providers"]} == {"env", "file"}


def test_the_config_reads_its_listen_addresses_from_the_environment() -> None:
    """Defaults = compose's addresses (the ports the compose file exposes and scrapes)."""

    def strings(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for value in node.values():
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    values = list(strings(yaml.safe_load(CONFIG.read_text())))
    substituted = {
        variable: default
        for value in values
        for variable, default in re.findall(r"\$\{env:(\w+):-([^}]*)\}", value)
    }
    assert not [v for v in values if "${" in v and not re.fullmatch(r"\$\{env:\w+:-[^}]+\}", v)]
    assert substituted == LISTEN_VARIABLES
    exposed = {
        str(port)
        for port in yaml.safe_load(COMPOSE.read_text())["services"]["otel-collector"]["expose"]
    }
    assert {address.rsplit(":", 1)[1] for address in LISTEN_VARIABLES.values()} == exposed


@pytest.mark.parametrize("addresses", ["compose defaults", "local"])
def test_the_config_validates(addresses: str, tmp_path: Path) -> None:
    env = _without_listen_variables()
    if addresses == "local":
        env.update({name: f"127.0.0.1:{free_port()}" for name in LISTEN_VARIABLES})
    result = _run("validate", f"--config={CONFIG}", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    # …and validate does check: a pipeline naming an exporter that is not there is refused.
    broken = tmp_path / "config.yaml"
    broken.write_text(CONFIG.read_text().replace("exporters: [nop]", "exporters: [debug]"))
    result = _run("validate", f"--config={broken}", env=env)
    assert result.returncode != 0 and "debug" in result.stdout + result.stderr


# --- the collector running, fed by the services, scraped by Prometheus --------------------


@dataclass
class Collector:
    managed: process.ManagedProcess
    addresses: dict[str, str]  # LISTEN_VARIABLES → 127.0.0.1:port

    @property
    def metrics_url(self) -> str:
        return f"http://{self.addresses['OTELCOL_PROMETHEUS_ENDPOINT']}/metrics"

    @property
    def scrape_address(self) -> str:
        return self.addresses["OTELCOL_PROMETHEUS_ENDPOINT"]

    def service_environment(self) -> dict[str, str]:
        """What a service needs to push to this collector (the compose settings, local URL)."""
        return {
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{self.addresses['OTELCOL_OTLP_HTTP_ENDPOINT']}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        }


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    binary = _binary()
    ports: list[int] = []
    while len(ports) < len(LISTEN_VARIABLES):
        port = free_port()
        if port not in ports:
            ports.append(port)
    addresses = {
        name: f"127.0.0.1:{port}" for name, port in zip(LISTEN_VARIABLES, ports, strict=True)
    }
    log_path = tmp_path_factory.mktemp("otelcol") / "otelcol.log"
    managed = process.start(
        "otelcol-study",
        [str(binary), f"--config={CONFIG}"],
        log_path,
        env={**_without_listen_variables(), **addresses},
    )
    try:
        health = f"http://{addresses['OTELCOL_HEALTH_ENDPOINT']}/"
        wait_until_ready(health, timeout_s=START_TIMEOUT_S, process=managed.popen)
    except NotReady as error:
        managed.stop()
        pytest.fail(f"collector did not start: {error}\n{managed.log_tail(40)}", pytrace=False)
    yield Collector(managed, addresses)
    status = managed.stop()
    assert status == 0, f"collector exited with {status}:\n{managed.log_tail(40)}"


@pytest.fixture(scope="module")
def prometheus_url(collector: Collector, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real Prometheus, with prometheus.yml's global settings and its otel-collector job."""
    compose_config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    [job] = [j for j in compose_config["scrape_configs"] if j["job_name"] == "otel-collector"]
    job["static_configs"] = [{"targets": [collector.scrape_address]}]
    config = {"global": compose_config["global"], "scrape_configs": [job]}
    run_dir = tmp_path_factory.mktemp("prometheus-run")
    port = free_port()
    managed = prometheus_server.start(
        yaml.safe_dump(config), run_dir, port, run_dir / "prometheus.log"
    )
    yield f"http://127.0.0.1:{port}"
    managed.stop()


def _samples(url: str) -> list[Any]:
    text = httpx.get(url, timeout=5).text
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def _is_predict_200(labels: dict[str, str]) -> bool:
    return (labels.get("http_route"), labels.get("http_response_status_code")) == (
        "/predict",
        "200",
    )


def _counted(samples: list[Any], job: str) -> float:
    """The /predict 200 requests the samples say `job` served."""
    return sum(
        s.value
        for s in samples
        if s.name == f"{DURATION}_count"
        and s.labels.get("job") == job
        and _is_predict_200(s.labels)
    )


def _boundaries(label_sets: list[dict[str, str]]) -> set[float]:
    return {float(labels["le"]) for labels in label_sets}


def _send_predictions(base_url: str, count: int = REQUESTS_SENT) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for _ in range(count):
            response = client.post("/predict", json=SETOSA)
            assert response.status_code == 200, response.text


def _query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": promql}, timeout=5)
    response.raise_for_status()
    return response.json()["data"]["result"]


def test_spans_are_accepted_and_dropped(request: pytest.FixtureRequest) -> None:
    """The traces pipeline (otlp → batch → nop): OTLP/HTTP /v1/traces answers 200, as it does
    for a service exporting a span per request (OTEL_TRACES_EXPORTER=otlp, the as-published
    setting); with no pipeline for a signal the receiver refuses it (logs: none here)."""
    _binary()
    collector: Collector = request.getfixturevalue("collector")
    base = f"http://{collector.addresses['OTELCOL_OTLP_HTTP_ENDPOINT']}"
    span = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "test"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "name": "POST /predict",
                                "kind": 2,
                                "startTimeUnixNano": "1700000000000000000",
                                "endTimeUnixNano": "1700000000001000000",
                            }
                        ]
                    }
                ],
            }
        ]
    }
    response = httpx.post(f"{base}/v1/traces", json=span, timeout=5)
    assert response.status_code == 200, response.text
    response = httpx.post(f"{base}/v1/logs", json={"resourceLogs": []}, timeout=5)
    assert response.status_code >= 400, f"/v1/logs accepted without a logs pipeline: {response}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_the_histogram_reaches_prometheus_through_the_collector(
    name: str, request: pytest.FixtureRequest, launch_service
) -> None:
    _binary()  # a missing build fails the test itself, not only its fixture
    collector: Collector = request.getfixturevalue("collector")
    prometheus_url: str = request.getfixturevalue("prometheus_url")
    # Earlier instances of this service (other tests) keep their series until metric_expiration;
    # theirs differ by `instance` (Python) or `server_port` (Go), so counts add up.
    selector = f'{{job=~"{name}", http_route="/predict", http_response_status_code="200"}}'
    before = _counted(_samples(collector.metrics_url), name)
    before_scraped = _query(prometheus_url, f"sum({DURATION}_count{selector})")
    before_in_prometheus = float(before_scraped[0]["value"][1]) if before_scraped else 0.0
    service = launch_service(name, metrics=False, overrides=collector.service_environment())
    _send_predictions(service.base_url)

    # 1. The collector's exporter: job and service_name from service.name, the contract's labels.
    def arrived() -> list[Any] | None:
        samples = _samples(collector.metrics_url)
        return samples if _counted(samples, name) >= before + REQUESTS_SENT else None

    try:
        samples = poll(arrived, ARRIVAL_TIMEOUT_S, f"{name}'s {DURATION} at the collector")
    except NotReady as error:
        pytest.fail(
            f"{error}\n--- collector log ---\n{collector.managed.log_tail(20)}"
            f"\n--- {name} log ---\n{service.managed.log_tail(20)}",
            pytrace=False,
        )
    assert _counted(samples, name) == before + REQUESTS_SENT
    buckets = [
        s.labels
        for s in samples
        if s.name == f"{DURATION}_bucket"
        and s.labels.get("job") == name
        and _is_predict_200(s.labels)
    ]
    assert buckets and all(labels.get("service_name") == name for labels in buckets), buckets[:1]
    assert _boundaries(buckets) == {*BUCKETS_S, math.inf}
    assert any(s.name == f"{DURATION}_sum" and s.labels.get("job") == name for s in samples)

    # 2. A real Prometheus scraping it as prometheus.yml does: honor_labels keeps that `job`,
    #    so the study's selector finds the service.
    def scraped() -> list[dict[str, Any]] | None:
        result = _query(prometheus_url, f"sum({DURATION}_count{selector})")
        total = before_in_prometheus + REQUESTS_SENT
        return result if result and float(result[0]["value"][1]) >= total else None

    try:
        poll(scraped, ARRIVAL_TIMEOUT_S, f"{name}'s {DURATION}_count{selector} in Prometheus")
    except NotReady as error:
        jobs = _query(prometheus_url, f"count by (job) ({DURATION}_count)")
        pytest.fail(f"{error}; jobs Prometheus has: {[r['metric'] for r in jobs]}", pytrace=False)
    series = [r["metric"] for r in _query(prometheus_url, f"{DURATION}_bucket{selector}")]
    assert {(m["job"], m["service_name"]) for m in series} == {(name, name)}
    assert _boundaries(series) == {*BUCKETS_S, math.inf}
    for suffix in ("sum", "count"):
        assert _query(prometheus_url, f"{DURATION}_{suffix}{selector}"), f"no {DURATION}_{suffix}"


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_metric_names_survive_the_collector(
    name: str, request: pytest.FixtureRequest, launch_service
) -> None:
    """Scraped directly (local backend) or through the collector: the same `http_server_*`
    names, each with the labels it had plus the service's resource attributes (`job`,
    `instance`, and what target_info carries: service_name, telemetry_sdk_*, …)."""
    _binary()
    collector: Collector = request.getfixturevalue("collector")
    direct = launch_service(name)  # OTEL_METRICS_EXPORTER=prometheus, its own /metrics
    before = _counted(_samples(collector.metrics_url), name)  # earlier instances' series
    pushed = launch_service(name, metrics=False, overrides=collector.service_environment())
    _send_predictions(direct.base_url, 1)
    _send_predictions(pushed.base_url, 1)

    def http_series(samples: list[Any]) -> dict[str, set[frozenset[str]]]:
        """name → the label *names* of its series (values differ between two instances)."""
        found: dict[str, set[frozenset[str]]] = {}
        for s in samples:
            if s.name.startswith("http_server_"):
                found.setdefault(s.name, set()).add(frozenset(s.labels))
        return found

    def direct_ready() -> list[Any] | None:
        samples = _samples(direct.metrics_url)
        return samples if f"{DURATION}_count" in http_series(samples) else None

    def pushed_ready() -> list[Any] | None:
        samples = _samples(collector.metrics_url)
        return samples if _counted(samples, name) >= before + 1 else None

    direct_samples = poll(direct_ready, ARRIVAL_TIMEOUT_S, f"{name}'s own /metrics")
    pushed_samples = poll(pushed_ready, ARRIVAL_TIMEOUT_S, f"{name} at the collector")
    # Resource attributes become labels on every series behind the collector
    # (resource_to_telemetry_conversion); directly they sit on target_info only.
    target_info = [s.labels for s in direct_samples if s.name == "target_info"]
    resource = {label for labels in target_info for label in labels} | {"job", "instance"}
    ours = [s for s in pushed_samples if s.labels.get("job") == name]
    want, have = http_series(direct_samples), http_series(ours)
    assert set(have) == set(want), (
        f"names differ — only direct: {sorted(set(want) - set(have))}, "
        f"only via the collector: {sorted(set(have) - set(want))}"
    )
    for metric, label_sets in want.items():
        stripped = {frozenset(labels - resource) for labels in have[metric]}
        assert stripped == label_sets, f"{metric}: labels {stripped} != direct {label_sets}"
        assert all("service_name" in labels for labels in have[metric]), metric
