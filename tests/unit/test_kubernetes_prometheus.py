"""The cluster Prometheus' relabelling, applied by a real Prometheus: the study's queries answer.

No cluster here, so the targets Kubernetes discovery would give are written as static targets
carrying the same `__meta_kubernetes_*` labels, pointing at a stand-in HTTP server on
127.0.0.1 that answers like the services' /metrics and like a kubelet's /metrics/cadvisor
(labels `container`, `pod`, `namespace`, and a runtime id in `name`). The generated
relabel_configs (pods) and metric_relabel_configs (cAdvisor) run unchanged; the queries are
helpers.prometheus.queries', rendered as notebook 05 renders them.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from helpers import net
from helpers.kubernetes import objects, prometheus, sources
from helpers.prometheus import client, queries
from helpers.serving import prometheus_server
from helpers.serving.services import SERVICE_NAMES

COUNTS = {name: 10.0 * (i + 1) for i, name in enumerate(SERVICE_NAMES)}
WORKING_SET = {name: 1e6 * (i + 1) for i, name in enumerate(SERVICE_NAMES)}


def _service_metrics(name: str) -> str:
    return (
        "# TYPE http_server_request_duration_seconds histogram\n"
        'http_server_request_duration_seconds_bucket{http_route="/predict",'
        f'http_response_status_code="200",le="+Inf"}} {COUNTS[name]}\n'
        'http_server_request_duration_seconds_count{http_route="/predict",'
        f'http_response_status_code="200"}} {COUNTS[name]}\n'
        'http_server_request_duration_seconds_sum{http_route="/predict",'
        f'http_response_status_code="200"}} 0.1\n'
    )


def _kubelet_cadvisor() -> str:
    lines = ["# TYPE container_memory_working_set_bytes gauge"]
    series = [
        (objects.NAMESPACE, name, f"{name}-7d9f-x1", WORKING_SET[name]) for name in SERVICE_NAMES
    ]
    series += [
        (objects.NAMESPACE, "POD", "python-api-pkl-7d9f-x1", 5e5),  # the pause container
        (objects.NAMESPACE, "", "python-api-pkl-7d9f-x1", 9e9),  # the pod's own cgroup
        ("elsewhere", "python-api-pkl", "other-1", 7e9),  # same name, another namespace
    ]
    for i, (namespace, container, pod, value) in enumerate(series):
        lines.append(
            f'container_memory_working_set_bytes{{container="{container}",id="/kubepods/{i}",'
            f'name="3f2a{i:04d}",namespace="{namespace}",pod="{pod}"}} {value}'
        )
    return "\n".join(lines) + "\n"


class _StandIn(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.path.removeprefix("/metrics/")
        if name in SERVICE_NAMES:
            body = _service_metrics(name)
        elif self.path == "/metrics/cadvisor":
            body = _kubelet_cadvisor()
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stand_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _as_discovered(config: dict, address: str) -> dict:
    """The generated config with Kubernetes discovery replaced by what it would discover."""
    host, port = address.split(":")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    pods = jobs["kubernetes-pods"]
    pods.pop("kubernetes_sd_configs")
    pods["static_configs"] = [
        {
            "targets": ["discovered-pod:0"],  # replaced by the pod-IP relabelling
            "labels": {
                "__meta_kubernetes_pod_ip": host,
                "__meta_kubernetes_pod_name": f"{name}-7d9f-x1",
                "__meta_kubernetes_pod_label_app_kubernetes_io_name": name,
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true",
                "__meta_kubernetes_pod_annotation_prometheus_io_port": port,
                "__meta_kubernetes_pod_annotation_prometheus_io_path": f"/metrics/{name}",
            },
        }
        for name in SERVICE_NAMES
    ]
    # A pod of the namespace without the annotation: must not be scraped.
    pods["static_configs"].append(
        {"targets": ["x:0"], "labels": {"__meta_kubernetes_pod_ip": host,
                                        "__meta_kubernetes_pod_label_app_kubernetes_io_name":
                                        "prometheus"}}
    )  # fmt: skip
    kubelet = jobs["kubernetes-cadvisor"]
    # Node discovery and the kubelet's TLS and token cannot run here: the stand-in answers
    # over plain HTTP where discovery would point (the node's address); the path and the
    # metric relabelling are the generated ones.
    for key in ("kubernetes_sd_configs", "tls_config", "authorization"):
        kubelet.pop(key)
    kubelet["scheme"] = "http"
    kubelet["static_configs"] = [{"targets": [address]}]
    jobs["prometheus"]["static_configs"] = [{"targets": []}]
    return config


def test_notebook_05s_queries_find_every_service_after_the_relabelling(tmp_path, stand_in):
    generated = prometheus.config(objects.NAMESPACE, sources.scrape_timing())
    config = _as_discovered(generated, stand_in)
    port = net.free_port()
    server = prometheus_server.start(
        yaml.safe_dump(config), tmp_path, port, tmp_path / "prometheus.log", "prometheus-k8s"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        prometheus_server.wait_for_targets(url, {*SERVICE_NAMES, "kubernetes-cadvisor"})
        services = queries.services_regex(SERVICE_NAMES)
        requests = queries.render("server_requests_total", table="counters", services=services)
        memory = queries.render("memory_working_set_bytes", services=services)

        def answered() -> dict | None:
            now = time.time()
            got = (client.query_instant(url, requests, now),
                   client.query_instant(url, memory, now))  # fmt: skip
            return got if all(len(g) == len(SERVICE_NAMES) for g in got) else None

        served, working_set = net.poll(answered, 15, "series of every service")
        assert served == COUNTS  # `job` = service name, each pod's own path
        assert working_set == WORKING_SET  # `name` = container; POD, pod cgroup, other ns gone
        kept = client.query_instant(url, "count(container_memory_working_set_bytes)", time.time())
        assert kept == {"": 3.0}
        # Three service pods and the kubelet; the pod without the annotation is not scraped.
        assert client.query_instant(url, "count(up)", time.time()) == {"": 4.0}
    finally:
        server.stop()
