"""The cluster's objects as plain dicts: the three APIs, their model, Prometheus, the HPAs.

Every value that the other backends also fix comes from `sources`; what is decided here is
only what Kubernetes adds: the names, the labels Prometheus selects on, probes, and least
privilege (`security`: the restricted Pod Security Standard, NetworkPolicies).
- Each API is a Deployment whose container is named after the service, with requests =
  limits = the study's budget (Guaranteed QoS), the model and its manifest mounted read-only
  from the ConfigMap `model-artifacts` where compose mounts ./artifacts — the services verify
  the model's sha256 against the manifest at start, as everywhere —, the uid:gid compose runs
  it as, a read-only root with an emptyDir wherever compose gives a tmpfs, and no
  service-account token (it never talks to the API server).
- Probes that survive saturation: a service at 100 % of its 0.5 CPU answers /healthz only
  after the requests queued before it, so readiness waits 5 s per try and 6 failures in a row
  (30 s) before the pod leaves the Service; liveness only asks whether the kernel still
  completes a TCP connect on the HTTP port — which it does for a saturated process — for a
  minute, and starts once the service has bound (the startup probe, 2 min at 0.5 CPU).
  Measured: deploy/kubernetes/README.md, *Probes that survive saturation*.
- Prometheus is `prometheus`'s.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from helpers.kubernetes import prometheus, security, sources

NAMESPACE = "onnx-serving-study"
PART_OF = "onnx-serving-study"
MODEL_CONFIGMAP = "model-artifacts"
FEATURE_RANGES_KEY = "feature_ranges.json"  # k6 reads FEATURE_RANGES from here
K6_CONFIGMAP = "k6-scripts"
CONFIGMAP_MAX_BYTES = 1024 * 1024  # etcd's limit for one object, about 1 MiB
NAME_LABEL = security.NAME_LABEL
PROBE_TIMEOUT_S = 5  # a saturated service answers /healthz behind the requests queued before it
PROBE_FAILURES = 6  # in a row before Kubernetes acts
STARTUP_S = 120  # to import, verify, load and bind at 0.5 CPU


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    labels = {NAME_LABEL: name, "app.kubernetes.io/part-of": PART_OF}
    return {"name": name, "namespace": NAMESPACE, "labels": labels, **extra}


def _labels(name: str) -> dict[str, str]:
    return _meta(name)["labels"]


def namespace() -> list[dict[str, Any]]:
    """The namespace, and its default: no ingress to any pod but what a policy admits."""
    labels = {"app.kubernetes.io/part-of": PART_OF}
    meta = {"name": NAMESPACE, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": meta},
        security.default_deny(NAMESPACE, labels),
    ]


def k6_runner_policy(operator_namespace: str) -> dict[str, Any]:
    return security.k6_runner_policy(NAMESPACE, _labels(security.K6_RUNNER), operator_namespace)


def model_configmap(artifacts_dir: Path) -> dict[str, Any]:
    """The model files and their manifest, as the services read them from the artifacts mount,
    plus the manifest's feature ranges for k6 (what the served model was trained on)."""
    artifacts_dir = Path(artifacts_dir)
    manifest_path = artifacts_dir / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{manifest_path} not found: make the model first (notebooks 01–02, or "
            "`.venv/bin/python -m helpers.model.artifacts`)"
        )
    manifest = json.loads(manifest_path.read_text())
    models = sorted({api.model_file for api in sources.apis()})
    binary = {}
    for name in models:
        path = artifacts_dir / name
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: the services need it (run notebook 02)")
        binary[name] = base64.b64encode(path.read_bytes()).decode()
    data = {
        "manifest.json": manifest_path.read_text(),
        FEATURE_RANGES_KEY: json.dumps(manifest["feature_ranges"], sort_keys=True),
    }
    size = sum(len(v) for v in (*binary.values(), *data.values()))
    if size > CONFIGMAP_MAX_BYTES:
        raise ValueError(
            f"the model files take {size} bytes in a ConfigMap, above Kubernetes' ~1 MiB per "
            "object: serve this model from a volume or an image instead"
        )
    meta = _meta(MODEL_CONFIGMAP)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data,
            "binaryData": binary}  # fmt: skip


def k6_configmap(k6_dir: Path, scripts: tuple[str, ...]) -> dict[str, Any]:
    """The k6 scripts (with common.js, which they import), mounted at /test by k6-operator."""
    data = {name: (Path(k6_dir) / name).read_text() for name in sorted({*scripts, "common.js"})}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta(K6_CONFIGMAP), "data": data}


def _probes(port: str) -> dict[str, dict[str, Any]]:
    patient = {"timeoutSeconds": PROBE_TIMEOUT_S, "failureThreshold": PROBE_FAILURES}
    return {
        "startupProbe": {"tcpSocket": {"port": port}, "periodSeconds": 2,
                         "timeoutSeconds": PROBE_TIMEOUT_S, "failureThreshold": STARTUP_S // 2},
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": port}, "periodSeconds": 5,
                           **patient},
        "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 10, **patient},
    }  # fmt: skip


def _scratch_volumes(api: sources.ApiSource) -> tuple[list[dict], list[dict]]:
    """(volumes, mounts): an emptyDir in memory for each of compose's tmpfs, same size."""
    volumes, mounts = [], []
    for path, size in sorted(api.scratch.items()):
        name = path.strip("/").replace("/", "-").replace("_", "-").lower() or "scratch"
        empty_dir: dict[str, Any] = {"medium": "Memory"}  # tmpfs: counted in the pod's memory
        if size is not None:
            empty_dir["sizeLimit"] = f"{-(-size // 2**20)}Mi"
        volumes.append({"name": name, "emptyDir": empty_dir})
        mounts.append({"name": name, "mountPath": path})
    return volumes, mounts


def api_objects(api: sources.ApiSource, budget: sources.Budget, replicas: int, registry: str):
    """The Deployment, Service and NetworkPolicy of one API."""
    limits = {"cpu": budget.cpu_quantity, "memory": budget.memory_quantity}
    image = f"{registry.rstrip('/')}/{api.image}" if registry else api.image
    pod_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(api.metrics_port),
        "prometheus.io/path": "/metrics",
    }
    scratch_volumes, scratch_mounts = _scratch_volumes(api)
    container = {
        "name": api.name,  # the kubelet's cAdvisor labels series with it (`container`)
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": k, "value": v} for k, v in api.environment.items()],
        "ports": [
            {"name": "http", "containerPort": api.container_port},
            {"name": "metrics", "containerPort": api.metrics_port},
        ],
        "resources": {"requests": dict(limits), "limits": dict(limits)},
        **_probes("http"),
        "securityContext": security.container_context(api.run_as),
        "volumeMounts": [{"name": "artifacts", "mountPath": api.artifacts_mount,
                          "readOnly": True}, *scratch_mounts],
    }  # fmt: skip
    selector = {NAME_LABEL: api.name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(api.name),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": _labels(api.name), "annotations": pod_annotations},
                "spec": {
                    # The compose file's stop_grace_period: SIGTERM drains, then exits 0.
                    "terminationGracePeriodSeconds": 15,
                    "automountServiceAccountToken": False,  # it never calls the API server
                    "securityContext": security.pod_context(api.run_as),
                    "containers": [container],
                    "volumes": [{"name": "artifacts", "configMap": {"name": MODEL_CONFIGMAP}},
                                *scratch_volumes],
                },
            },
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(api.name),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": api.container_port, "targetPort": "http"}],
        },
    }
    policy = security.api_policy(
        api.name, NAMESPACE, _labels(api.name), api.container_port, api.metrics_port,
        prometheus.PROMETHEUS,
    )  # fmt: skip
    return [deployment, service, policy]


def hpa(service: str, replicas: int, max_replicas: int, cpu_utilization: int) -> dict[str, Any]:
    """autoscaling/v2 on CPU, as a share of the request (= the quota: requests = limits)."""
    metric = {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu_utilization},
        },
    }
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(service),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service},
            "minReplicas": replicas,
            "maxReplicas": max_replicas,
            "metrics": [metric],
        },
    }


def prometheus_objects(image: str, flags: list[str], timing: dict[str, str]) -> list[dict]:
    return prometheus.objects(NAMESPACE, _labels(prometheus.PROMETHEUS), image, flags, timing)


def remote_write_url() -> str:
    return f"http://{prometheus.PROMETHEUS}.{NAMESPACE}.svc:{prometheus.PORT}/api/v1/write"


def service_url(api: sources.ApiSource) -> str:
    return f"http://{api.name}.{NAMESPACE}.svc:{api.container_port}"
