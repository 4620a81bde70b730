"""The cluster's Prometheus: its scrape config, RBAC, Deployment, Service and NetworkPolicy.

It scrapes pods by annotation (`prometheus.io/scrape`, `prometheus.io/port`) and each node's
kubelet cAdvisor endpoint directly (`https://<node>:10250/metrics/cadvisor`), and relabels
both so the study's queries find what they find locally: `job` = service name for the
histograms, `name` = service name for the `container_*` series (the kubelet labels them
`container`/`pod`).

Least privilege: the ClusterRole reads nodes and pods and `nodes/metrics` — the kubelet
authorizes `/metrics/*` as that subresource — and not `nodes/proxy`, which would also open the
kubelet's exec and logs and the API server's proxy to every node. The admin API and the
lifecycle endpoints stay off (`--web.enable-admin-api`, `--web.enable-lifecycle` are dropped
from compose's flags if present): anyone who reaches the port could otherwise delete series or
stop the server. The pod keeps its service-account token: discovery and the kubelets need it.
"""

from __future__ import annotations

from typing import Any

import yaml

from helpers.kubernetes import security, sources
from helpers.serving.services import SERVICE_NAMES

PROMETHEUS = "prometheus"
PORT = 9090
DATA_DIR = "/prometheus"
CONFIG_MAP = "prometheus-config"
# prom/prometheus runs as `nobody`; its data directory is that user's.
RUN_AS = sources.RunAs(65534, 65534)
REFUSED_FLAGS = ("--web.enable-admin-api", "--web.enable-lifecycle")
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
KUBELET_CADVISOR_PATH = "/metrics/cadvisor"  # authorized as nodes/metrics by the kubelet


def config(namespace: str, timing: dict[str, str]) -> dict[str, Any]:
    """The cluster Prometheus' scrape config; k6 arrives by remote write (no job)."""
    services = "|".join(SERVICE_NAMES)
    pods = {
        "job_name": "kubernetes-pods",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
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
        # Node discovery's address is the kubelet's (node IP, kubelet port); its serving
        # certificate is self-signed on most clusters (kubeadm, kind), hence no verification.
        # The token sent grants only what the ClusterRole below does.
        "scheme": "https",
        "metrics_path": KUBELET_CADVISOR_PATH,
        "tls_config": {"ca_file": f"{SA_DIR}/ca.crt", "insecure_skip_verify": True},
        "authorization": {"credentials_file": f"{SA_DIR}/token"},
        "kubernetes_sd_configs": [{"role": "node"}],
        "metric_relabel_configs": [
            # Only the APIs' containers (not the pause container "POD", nor pod-level cgroups).
            {"source_labels": ["namespace", "container"], "regex": f"{namespace};({services})",
             "action": "keep"},
            # cAdvisor under Docker names the container `name` = service name; the kubelet's
            # `name` is the runtime's id. The study's queries select on `name`.
            {"source_labels": ["container"], "target_label": "name"},
        ],
    }  # fmt: skip
    return {
        "global": timing,
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"localhost:{PORT}"]}]},
            pods,
            cadvisor,
        ],
    }


def cluster_flags(flags: list[str]) -> list[str]:
    """Compose's flags without the endpoints the cluster's Prometheus must not serve."""
    return [flag for flag in flags if flag.split("=", 1)[0] not in REFUSED_FLAGS]


def _probe(path: str, period_s: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period_s,
            "timeoutSeconds": 5, "failureThreshold": 6}  # fmt: skip


def objects(
    namespace: str, labels: dict[str, str], image: str, flags: list[str], timing: dict[str, str]
) -> list[dict[str, Any]]:
    """ServiceAccount + RBAC (discover pods and nodes, read the kubelets' metrics), config,
    Deployment (TSDB in an emptyDir: copy it out before deleting the pod), Service,
    NetworkPolicy. `labels`: the study's common labels, with the name label set per object."""
    meta = {"name": PROMETHEUS, "namespace": namespace, "labels": labels}
    rules = [
        {"apiGroups": [""], "resources": ["nodes", "nodes/metrics", "pods"],
         "verbs": ["get", "list", "watch"]},
    ]  # fmt: skip
    cluster_meta = {"name": f"{namespace}-prometheus", "labels": labels}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": cluster_meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": cluster_meta["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": namespace}],
    }  # fmt: skip
    config_text = yaml.safe_dump(config(namespace, timing), sort_keys=False)
    container = {
        "name": PROMETHEUS,
        "image": image,
        "args": cluster_flags(flags),
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": _probe("/-/ready", 5),
        "livenessProbe": _probe("/-/healthy", 10),  # answers while the WAL is replayed
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "securityContext": security.container_context(RUN_AS),
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/prometheus", "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},  # the only path it writes
        ],
    }
    config_meta = {
        **meta,
        "name": CONFIG_MAP,
        "labels": {**labels, security.NAME_LABEL: CONFIG_MAP},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one TSDB writer at a time
            "selector": {"matchLabels": {security.NAME_LABEL: PROMETHEUS}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": PROMETHEUS,
                    # Kept on purpose: kubernetes_sd_configs asks the API server for pods and
                    # nodes, and the kubelets want a bearer token, both this account's.
                    "automountServiceAccountToken": True,
                    "securityContext": security.pod_context(RUN_AS, fs_group=True),
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": CONFIG_MAP}},
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
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": config_meta,
         "data": {"prometheus.yml": config_text}},
        deployment,
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"selector": {security.NAME_LABEL: PROMETHEUS},
                  "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]}},
        security.prometheus_policy(PROMETHEUS, namespace, labels, PORT),
    ]  # fmt: skip
