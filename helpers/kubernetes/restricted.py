"""The restricted Pod Security Standard, and the study's own additions, on every generated pod.

The rules are those of Kubernetes' "Pod Security Standards" at the restricted level (which
includes the baseline): no host namespaces, ports or paths; no privileged container; only the
restricted volume types; `runAsNonRoot` and a non-zero `runAsUser`; seccomp `RuntimeDefault`
(or `Localhost`); `allowPrivilegeEscalation: false`; every capability dropped, none added but
NET_BIND_SERVICE. The study adds: a read-only root filesystem, numeric `runAsUser` and
`runAsGroup`, and every field set on the pod *and* on each container (init containers too).

The pods are a Deployment's or Job's template, and a TestRun's runner, initializer and starter:
k6-operator makes each of those a pod whose securityContext is the part's `securityContext`
and whose containers (its own and the part's `initContainers`) get `containerSecurityContext`;
a TestRun without `initializer` gets a copy of its runner.
"""

from __future__ import annotations

from typing import Any

RESTRICTED_VOLUME_TYPES = frozenset(
    {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
     "projected", "secret"}
)  # fmt: skip
ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
SECCOMP_TYPES = frozenset({"RuntimeDefault", "Localhost"})
SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SAFE_SYSCTLS = frozenset(
    {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
     "net.ipv4.ip_unprivileged_port_start", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
     "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
     "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",
     "net.ipv4.tcp_wmem"}
)  # fmt: skip
WORKLOAD_KINDS = frozenset({"Deployment", "Job", "StatefulSet", "DaemonSet", "ReplicaSet"})
TESTRUN_PODS = ("runner", "initializer", "starter")
# Set on the pod and on each container (the study's rule: each reads complete on its own).
IDENTITY_FIELDS = ("runAsNonRoot", "runAsUser", "runAsGroup", "seccompProfile")


def pods(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for every pod `obj` makes; none for kinds that make no pod."""
    kind = obj.get("kind")
    name = f"{kind}/{obj.get('metadata', {}).get('name', '?')}"
    if kind in WORKLOAD_KINDS:
        return [(name, obj["spec"]["template"]["spec"])]
    if kind == "TestRun":
        spec = obj["spec"]
        parts = {part: spec.get(part) for part in TESTRUN_PODS}
        parts["initializer"] = parts["initializer"] or parts["runner"]  # k6-operator's copy
        return [(f"{name} {part}", _testrun_pod(body or {})) for part, body in parts.items()]
    if kind == "Pod":
        return [(name, obj["spec"])]
    return []


def _testrun_pod(part: dict[str, Any]) -> dict[str, Any]:
    """The pod k6-operator builds from one part of a TestRun (the fields checked here)."""
    context = part.get("containerSecurityContext")
    inits = [{"name": c.get("name", f"k6-init-{i}"), "securityContext": context}
             for i, c in enumerate(part.get("initContainers", []))]  # fmt: skip
    return {
        "securityContext": part.get("securityContext"),
        "containers": [{"name": "k6", "securityContext": context}],
        "initContainers": inits,
        "volumes": part.get("volumes", []),
    }


def violations(pod: dict[str, Any]) -> list[str]:
    """What in `pod` (a pod spec) breaks the restricted standard or the study's additions."""
    found = []
    pod_context = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            found.append(f"{key} is true")
    for field in IDENTITY_FIELDS:
        if field not in pod_context:
            found.append(f"securityContext.{field} is not set on the pod")
    found += _identity(pod_context, "securityContext")
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"securityContext.sysctls: {sysctl.get('name')} is not a safe sysctl")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= RESTRICTED_VOLUME_TYPES:
            found.append(f"volume {volume.get('name')}: {sorted(kinds)} is not allowed")
    containers = [("container", c) for c in pod.get("containers", [])]
    containers += [("initContainer", c) for c in pod.get("initContainers", [])]
    containers += [("ephemeralContainer", c) for c in pod.get("ephemeralContainers", [])]
    if not pod.get("containers"):
        found.append("the pod has no container")
    for role, container in containers:
        where = f"{role} {container.get('name', '?')}: "
        found += [where + problem for problem in _container(container)]
    return found


def _identity(context: dict[str, Any], where: str) -> list[str]:
    found = []
    if "runAsNonRoot" in context and context["runAsNonRoot"] is not True:
        found.append(f"{where}.runAsNonRoot is not true")
    for field in ("runAsUser", "runAsGroup"):
        value = context.get(field)
        if field in context and not (isinstance(value, int) and value > 0):
            found.append(f"{where}.{field} is {value!r}, not a non-zero number")
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if "seccompProfile" in context and seccomp not in SECCOMP_TYPES:
        found.append(f"{where}.seccompProfile.type is {seccomp!r}, not RuntimeDefault")
    if (context.get("appArmorProfile") or {}).get("type") == "Unconfined":
        found.append(f"{where}.appArmorProfile.type is Unconfined")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
        found.append(f"{where}.seLinuxOptions sets a user, a role or a type of its own")
    return found


def _container(container: dict[str, Any]) -> list[str]:
    context, where = container.get("securityContext") or {}, "securityContext"
    found = [f"{where}.{field} is not set" for field in IDENTITY_FIELDS if field not in context]
    found += _identity(context, where)
    if context.get("allowPrivilegeEscalation") is not False:
        found.append(f"{where}.allowPrivilegeEscalation is not false")
    if context.get("privileged"):
        found.append(f"{where}.privileged is true")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append(f"{where}.capabilities.drop does not hold ALL")
    added = set(capabilities.get("add") or []) - ADDABLE_CAPABILITIES
    if added:
        found.append(f"{where}.capabilities.add holds {sorted(added)}")
    if context.get("readOnlyRootFilesystem") is not True:
        found.append(f"{where}.readOnlyRootFilesystem is not true")
    if context.get("procMount", "Default") != "Default":
        found.append(f"{where}.procMount is not Default")
    for port in container.get("ports", []):
        if port.get("hostPort"):
            found.append(f"ports[{port.get('name', port.get('containerPort'))}].hostPort is set")
    return found
