"""The cluster's objects as plain dicts: the three APIs, their model, Prometheus, the HPAs.

Every value that the other backends also fix comes from `sources`; what is decided here is
only what Kubernetes adds: the names, the labels Prometheus selects on, probes, RBAC.
- Each API is a Deployment whose container is named after the service, with requests =
  limits = the study's budget (Guaranteed QoS), readiness on /healthz, and the model and its
  manifest mounted read-only from the ConfigMap `model-artifacts` where compose mounts
  ./artifacts — the services verify the model's sha256 against the manifest at start, as
  everywhere.
- Prometheus scrapes pods by annotation (`prometheus.io/scrape`, `prometheus.io/port`) and
  the kubelets' cAdvisor through the API server, and relabels both so the study's queries
  find what they find locally: `job` = service name for the histograms, `name` = service
  name for the `container_*` series (the kubelet labels them `container`/`pod`).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import yaml

from helpers.kubernetes import sources
from helpers.serving.services import SERVICE_NAMES

NAMESPACE = "onnx-serving-study"
PART_OF = "onnx-serving-study"
MODEL_CONFIGMAP = "model-artifacts"
FEATURE_RANGES_KEY = "feature_ranges.json"  # k6 reads FEATURE_RANGES from here
K6_CONFIGMAP = "k6-scripts"
PROMETHEUS = "prometheus"
PROMETHEUS_PORT = 9090
CONFIGMAP_MAX_BYTES = 1024 * 1024  # etcd's limit for one object, about 1 MiB
NAME_LABEL = "app.kubernetes.io/name"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _meta(name: str, **extra: Any) -> dict[str, Any]:
    labels = {NAME_LABEL: name, "app.kubernetes.io/part-of": PART_OF}
    return {"name": name, "namespace": NAMESPACE, "labels": labels, **extra}


def namespace() -> dict[str, Any]:
    meta = {"name": NAMESPACE, "labels": {"app.kubernetes.io/part-of": PART_OF}}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


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


def api_objects(api: sources.ApiSource, budget: sources.Budget, replicas: int, registry: str):
    """The Deployment and Service of one API."""
    limits = {"cpu": budget.cpu_quantity, "memory": budget.memory_quantity}
    image = f"{registry.rstrip('/')}/{api.image}" if registry else api.image
    pod_annotations = {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(api.metrics_port),
        "prometheus.io/path": "/metrics",
    }
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
        "readinessProbe": {
            "httpGet": {"path": "/healthz", "port": "http"},
            "periodSeconds": 2,
            "failureThreshold": 3,
        },
        "volumeMounts": [{"name": "artifacts", "mountPath": api.artifacts_mount,
                          "readOnly": True}],
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
                "metadata": {"labels": _meta(api.name)["labels"], "annotations": pod_annotations},
                "spec": {
                    # The compose file's stop_grace_period: SIGTERM drains, then exits 0.
                    "terminationGracePeriodSeconds": 15,
                    "securityContext": {"runAsNonRoot": True},
                    "containers": [container],
                    "volumes": [{"name": "artifacts", "configMap": {"name": MODEL_CONFIGMAP}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(api.name),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": api.container_port, "targetPort": "http"}],
        },
    }
    return [deployment, service]


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


def prometheus_config(timing: dict[str, str]) -> dict[str, Any]:
    """The cluster Prometheus' scrape config; k6 arrives by remote write (no job)."""
    services = "|".join(SERVICE_NAMES)
    pods = {
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [NAMESPACE]}}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
             "regex": "true", "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
             "regex": services, "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_ip",
                               "__meta_kubernetes_pod_annotation_prometheus_io_port"],
             "regex": "(.+);(\\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"],
             "regex": "(.+)", "target_label": "__metrics_path__"},
            # `job` = service name, as the local and compose jobs are named.
            {"source_labels": ["__meta_kubernetes_pod_label_app_kubernetes_io_name"],
             "target_label": "job"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }  # fmt: skip
    cadvisor = {
        "job_name": "kubernetes-cadvisor",
        "scheme": "https",
        "tls_config": {"ca_file": f"{SA_DIR}/ca.crt"},
        "authorization": {"credentials_file": f"{SA_DIR}/token"},
        "kubernetes_sd_configs": [{"role": "node"}],
        # Through the API server's node proxy: no direct route to the kubelets is needed.
        "relabel_configs": [
            {"target_label": "__address__", "replacement": "kubernetes.default.svc:443"},
            {"source_labels": ["__meta_kubernetes_node_name"], "regex": "(.+)",
             "target_label": "__metrics_path__",
             "replacement": "/api/v1/nodes/$1/proxy/metrics/cadvisor"},
        ],
        "metric_relabel_configs": [
            # Only the APIs' containers (not the pause container "POD", nor pod-level cgroups).
            {"source_labels": ["namespace", "container"], "regex": f"{NAMESPACE};({services})",
             "action": "keep"},
            # cAdvisor under Docker names the container `name` = service name; the kubelet's
            # `name` is the runtime's id. The study's queries select on `name`.
            {"source_labels": ["container"], "target_label": "name"},
        ],
    }  # fmt: skip
    return {
        "global": timing,
        "scrape_configs": [
            {"job_name": "prometheus",
             "static_configs": [{"targets": [f"localhost:{PROMETHEUS_PORT}"]}]},
            pods,
            cadvisor,
        ],
    }  # fmt: skip


def prometheus_objects(image: str, flags: list[str], timing: dict[str, str]) -> list[dict]:
    """ServiceAccount + RBAC (discover pods and nodes, read the kubelets' cAdvisor), config,
    Deployment (TSDB in an emptyDir: copy it out before deleting the pod), Service."""
    meta = _meta(PROMETHEUS)
    rules = [
        {"apiGroups": [""], "resources": ["nodes", "nodes/proxy", "nodes/metrics", "pods"],
         "verbs": ["get", "list", "watch"]},
    ]  # fmt: skip
    cluster_meta = {"name": f"{NAMESPACE}-prometheus", "labels": meta["labels"]}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": cluster_meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": cluster_meta["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": NAMESPACE}],
    }  # fmt: skip
    config_text = yaml.safe_dump(prometheus_config(timing), sort_keys=False)
    # The admin API serves TSDB snapshots: how a run's data leaves the cluster for notebook 05.
    args = [*flags, "--web.enable-admin-api"]
    container = {
        "name": PROMETHEUS,
        "image": image,
        "args": args,
        "ports": [{"name": "http", "containerPort": PROMETHEUS_PORT}],
        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "http"}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/prometheus", "readOnly": True},
            {"name": "data", "mountPath": "/prometheus"},
        ],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one TSDB writer at a time
            "selector": {"matchLabels": {NAME_LABEL: PROMETHEUS}},
            "template": {
                "metadata": {"labels": meta["labels"]},
                "spec": {
                    "serviceAccountName": PROMETHEUS,
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": "prometheus-config"}},
                        {"name": "data", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": cluster_meta, "rules": rules},
        binding,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("prometheus-config"),
         "data": {"prometheus.yml": config_text}},
        deployment,
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": {NAME_LABEL: PROMETHEUS},
                  "ports": [{"name": "http", "port": PROMETHEUS_PORT, "targetPort": "http"}]}},
    ]  # fmt: skip


def remote_write_url() -> str:
    return f"http://{PROMETHEUS}.{NAMESPACE}.svc:{PROMETHEUS_PORT}/api/v1/write"


def service_url(api: sources.ApiSource) -> str:
    return f"http://{api.name}.{NAMESPACE}.svc:{api.container_port}"
