"""Least privilege for every generated pod: the restricted Pod Security Standard, NetworkPolicies.

Security contexts: each pod and each of its containers runs as a numeric non-root uid:gid (the
image's own user, so the files it owns stay readable), with the runtime's default seccomp
profile, no privilege escalation, every capability dropped and a read-only root filesystem;
what a process must write gets an emptyDir. The pod-level fields are repeated on each
container, so every container reads complete on its own (and a container moved to another pod
keeps them). `restricted` checks all of it on every object generated.

NetworkPolicies: ingress is denied in the namespace by default, then each component admits
only what it needs:
- an API: its HTTP port from the k6 runner pods, its metrics port from Prometheus;
- Prometheus: its port from any pod of the namespace (k6 remote-writes to it);
- the k6 runner pods: k6's REST port from the namespace (k6-operator's starter pod starts them
  through it) and from k6-operator's controller, which polls it from its own namespace.
Two doors stay open by design: Kubernetes always lets a pod's own node reach it (the kubelet's
probes), and `kubectl port-forward` connects from inside the pod's network namespace.
"""

from __future__ import annotations

from typing import Any

from helpers.kubernetes.sources import RunAs

NAME_LABEL = "app.kubernetes.io/name"
K6_RUNNER = "k6-runner"  # the runner pods' NAME_LABEL (TestRun spec.runner.metadata.labels)
K6_REST_PORT = 6565  # k6's REST API, which k6-operator starts and polls the runners through
# k6-operator's controller pod, as its release bundle and Helm chart label it.
K6_OPERATOR_POD_LABELS = {"control-plane": "controller-manager"}
K6_OPERATOR_NAMESPACE = "k6-operator-system"  # the release bundle's; Helm: the release's
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set by Kubernetes on every namespace
RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}


def pod_context(run_as: RunAs, fs_group: bool = False) -> dict[str, Any]:
    """The pod's securityContext; `fs_group` makes its volumes group-owned by the pod's gid
    (for a volume that may be a PersistentVolumeClaim's instead of an emptyDir)."""
    context: dict[str, Any] = {
        "runAsNonRoot": True,
        "runAsUser": run_as.uid,
        "runAsGroup": run_as.gid,
        "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
    }
    if fs_group:
        context["fsGroup"] = run_as.gid
    return context


def container_context(run_as: RunAs) -> dict[str, Any]:
    """A container's securityContext: the restricted standard's fields and a read-only root."""
    return {
        "runAsNonRoot": True,
        "runAsUser": run_as.uid,
        "runAsGroup": run_as.gid,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "seccompProfile": dict(RUNTIME_DEFAULT_SECCOMP),
    }


def _policy(
    name: str, namespace: str, labels: dict, selector: dict, ingress: list[dict]
) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def _ports(*numbers: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": number} for number in numbers]


def default_deny(namespace: str, labels: dict) -> dict[str, Any]:
    """Every pod of the namespace isolated for ingress; the policies below open what is needed."""
    return _policy("default-deny-ingress", namespace, labels, {}, [])


def api_policy(
    name: str, namespace: str, labels: dict, http_port: int, metrics_port: int, prometheus: str
) -> dict[str, Any]:
    """The API `name` answers the k6 runners on `http_port`, Prometheus on `metrics_port`."""
    runners = {"podSelector": {"matchLabels": {NAME_LABEL: K6_RUNNER}}}
    scraper = {"podSelector": {"matchLabels": {NAME_LABEL: prometheus}}}
    ingress = [
        {"from": [runners], "ports": _ports(http_port)},
        {"from": [scraper], "ports": _ports(metrics_port)},
    ]
    return _policy(name, namespace, labels, {"matchLabels": {NAME_LABEL: name}}, ingress)


def prometheus_policy(name: str, namespace: str, labels: dict, port: int) -> dict[str, Any]:
    """Prometheus answers any pod of its own namespace (the runners' remote write, a reader)."""
    ingress = [{"from": [{"podSelector": {}}], "ports": _ports(port)}]
    return _policy(name, namespace, labels, {"matchLabels": {NAME_LABEL: name}}, ingress)


def k6_runner_policy(namespace: str, labels: dict, operator_namespace: str) -> dict[str, Any]:
    """The runners' REST port, for the starter pod (this namespace) and k6-operator's
    controller (its namespace); nothing else reaches a runner."""
    controller = {
        "namespaceSelector": {"matchLabels": {NAMESPACE_NAME_LABEL: operator_namespace}},
        "podSelector": {"matchLabels": dict(K6_OPERATOR_POD_LABELS)},
    }
    ingress = [{"from": [{"podSelector": {}}, controller], "ports": _ports(K6_REST_PORT)}]
    selector = {"matchLabels": {NAME_LABEL: K6_RUNNER}}
    return _policy(K6_RUNNER, namespace, labels, selector, ingress)
