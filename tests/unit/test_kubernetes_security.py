"""deploy/kubernetes, least privilege: restricted pods, NetworkPolicies, Prometheus' reach, probes.

Every pod the manifests make — the APIs', Prometheus', and each TestRun's runner, initializer
and starter as k6-operator builds them — is checked field by field against the restricted Pod
Security Standard and the study's additions; the checker that `make k8s-manifests` runs is
shown to refuse each field's absence. The NetworkPolicies are evaluated with the rules
Kubernetes applies (a pod is isolated once a policy selects it; it then admits the union of
the policies' rules) on the pods the manifests make.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from helpers import paths
from helpers.kubernetes import __main__ as cli
from helpers.kubernetes import objects, prometheus, restricted, security, sources, validate
from helpers.serving.docker.compose import COMPOSE_FILE
from helpers.serving.services import SERVICE_NAMES

OPERATOR_NAMESPACE = "k6-ops"  # not the default: the option must reach the policy


@pytest.fixture(scope="module")
def manifests(tmp_path_factory, model_artifacts) -> list[dict]:
    out = tmp_path_factory.mktemp("k8s") / "out"
    argv = ["--out", str(out), "--artifacts", str(model_artifacts), "--run-id", "sec-1",
            "--k6-operator-namespace", OPERATOR_NAMESPACE]  # fmt: skip
    assert cli.main(argv) == 0
    return [o for p in sorted(out.rglob("*.yaml")) for o in yaml.safe_load_all(p.read_text())]


def _kind(objs: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def _containers(pod: dict) -> list[dict]:
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


# -- the restricted profile ------------------------------------------------------------------


def test_every_pod_and_container_sets_each_restricted_field(manifests):
    pods = [(where, pod) for obj in manifests for where, pod in restricted.pods(obj)]
    # 3 APIs + Prometheus; 5 TestRuns × (runner, initializer, starter).
    assert len(pods) == 4 + 5 * 3
    for where, pod in pods:
        context = pod["securityContext"]
        assert context["runAsNonRoot"] is True, where
        assert isinstance(context["runAsUser"], int) and context["runAsUser"] > 0, where
        assert isinstance(context["runAsGroup"], int) and context["runAsGroup"] > 0, where
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(key), where
        for volume in pod.get("volumes", []):
            assert set(volume) - {"name"} <= {"configMap", "emptyDir"}, (where, volume)
        assert _containers(pod), where
        for container in _containers(pod):
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"] == {"drop": ["ALL"]}, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["runAsNonRoot"] is True, where
            assert (sc["runAsUser"], sc["runAsGroup"]) == (
                context["runAsUser"], context["runAsGroup"]
            ), where  # fmt: skip
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert not sc.get("privileged"), where
            assert not any(p.get("hostPort") for p in container.get("ports", [])), where
        assert restricted.violations(pod) == [], where


def test_testruns_carry_the_fields_k6_operator_copies_into_its_pods(manifests):
    for name, run in _kind(manifests, "TestRun").items():
        spec = run["spec"]
        assert "initializer" not in spec, "k6-operator copies the runner: one place to keep"
        for part in ("runner", "starter"):
            assert spec[part]["automountServiceAccountToken"] == "false", (name, part)
            assert spec[part]["containerSecurityContext"]["readOnlyRootFilesystem"] is True
            assert spec[part]["securityContext"]["runAsNonRoot"] is True
        mounts = {m["mountPath"]: m["name"] for m in spec["runner"]["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["runner"]["volumes"]}
        # The initializer writes the script's archive and its log under /tmp.
        assert "emptyDir" in volumes[mounts["/tmp"]]
        assert spec["runner"]["metadata"]["labels"][security.NAME_LABEL] == security.K6_RUNNER


def _api_deployment() -> dict:
    deployment, _, _ = objects.api_objects(sources.apis()[0], sources.budget(), 1, "")
    return deployment


def _testrun() -> dict:
    from helpers.kubernetes import testruns
    from helpers.load.profiles import get_profile

    return testruns.seed(get_profile("smoke"), "coupled", "t", 2, "grafana/k6:1.1.0")


def _pod(obj: dict) -> dict:
    return obj["spec"]["template"]["spec"]


def _container(obj: dict) -> dict:
    return _pod(obj)["containers"][0]["securityContext"]


BREAKS = {
    "pod runAsNonRoot unset": (lambda d: _pod(d)["securityContext"].pop("runAsNonRoot"),
                               "securityContext.runAsNonRoot is not set on the pod"),
    "pod runs as root": (lambda d: _pod(d)["securityContext"].update(runAsUser=0),
                         "securityContext.runAsUser is 0"),
    "pod group unset": (lambda d: _pod(d)["securityContext"].pop("runAsGroup"),
                        "securityContext.runAsGroup is not set on the pod"),
    "pod seccomp unconfined": (
        lambda d: _pod(d)["securityContext"].update(seccompProfile={"type": "Unconfined"}),
        "seccompProfile.type is 'Unconfined'"),
    "host network": (lambda d: _pod(d).update(hostNetwork=True), "hostNetwork is true"),
    "hostPath volume": (
        lambda d: _pod(d)["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
                        "volume h: ['hostPath'] is not allowed"),
    "escalation allowed": (lambda d: _container(d).update(allowPrivilegeEscalation=True),
                           "allowPrivilegeEscalation is not false"),
    "escalation unset": (lambda d: _container(d).pop("allowPrivilegeEscalation"),
                         "allowPrivilegeEscalation is not false"),
    "capabilities kept": (lambda d: _container(d).pop("capabilities"),
                          "capabilities.drop does not hold ALL"),
    "capability added": (lambda d: _container(d)["capabilities"].update(add=["SYS_ADMIN"]),
                         "capabilities.add holds ['SYS_ADMIN']"),
    "root filesystem writable": (lambda d: _container(d).update(readOnlyRootFilesystem=False),
                                 "readOnlyRootFilesystem is not true"),
    "privileged": (lambda d: _container(d).update(privileged=True), "privileged is true"),
    "container runAsNonRoot unset": (lambda d: _container(d).pop("runAsNonRoot"),
                                     "securityContext.runAsNonRoot is not set"),
    "container seccomp unset": (lambda d: _container(d).pop("seccompProfile"),
                                "securityContext.seccompProfile is not set"),
    "init container without context": (
        lambda d: _pod(d).setdefault("initContainers", []).append({"name": "init", "image": "x"}),
        "initContainer init: securityContext.allowPrivilegeEscalation is not false"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BREAKS))
def test_generation_refuses_a_pod_that_is_not_restricted(case):
    deployment = _api_deployment()
    validate.check(deployment)
    breaks, says = BREAKS[case]
    breaks(deployment)
    with pytest.raises(validate.InvalidManifest, match="not restricted") as refused:
        validate.check(deployment)
    assert says in str(refused.value)
    assert "Deployment/python-api-pkl" in str(refused.value)


@pytest.mark.parametrize("part", ["runner", "starter"])
@pytest.mark.parametrize(
    "field", ["securityContext", "containerSecurityContext", "automountServiceAccountToken"]
)
def test_generation_refuses_a_testrun_pod_that_is_not_restricted(part, field):
    run = _testrun()
    validate.check(run)
    run["spec"][part].pop(field)
    if field == "automountServiceAccountToken":
        validate.check(run)  # not part of the standard: the test above asserts it instead
        return
    with pytest.raises(validate.InvalidManifest, match=f"TestRun/t-smoke-coupled {part}"):
        validate.check(run)
    if part == "runner":  # k6-operator's initializer is the runner's copy: it breaks too
        with pytest.raises(validate.InvalidManifest, match="initializer"):
            validate.check(run)


def _dockerfile_user(path: Path) -> tuple[int, int | None]:
    [line] = re.findall(r"^USER\s+(\S+)", path.read_text(), re.MULTILINE)
    uid, _, gid = line.partition(":")
    return int(uid), int(gid) if gid else None


def test_the_apis_run_as_the_user_of_their_images_and_of_compose(manifests):
    deployments = _kind(manifests, "Deployment")
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for name in SERVICE_NAMES:
        context = _pod(deployments[name])["securityContext"]
        service = compose["services"][name]
        assert service["user"] == f"{context['runAsUser']}:{context['runAsGroup']}"
        build = service["build"]
        uid, gid = _dockerfile_user(paths.REPO_ROOT / build["context"] / build["dockerfile"])
        assert context["runAsUser"] == uid, name
        assert gid in (None, context["runAsGroup"]), name


@pytest.mark.parametrize("user", [None, "root", "0:0", "10001", "10001:0", "app:app"])
def test_a_compose_user_kubernetes_cannot_prove_non_root_is_refused(user):
    with pytest.raises(ValueError, match="numeric non-root"):
        sources.run_as("python-api-pkl", user)
    assert sources.run_as("x", "10001:10002") == sources.RunAs(10001, 10002)


def test_what_a_process_writes_has_a_volume_and_nothing_else_does(manifests):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    deployments = _kind(manifests, "Deployment")
    for name in SERVICE_NAMES:
        pod = _pod(deployments[name])
        (container,) = pod["containers"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        writable = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]
                    if not m.get("readOnly")}  # fmt: skip
        assert set(writable) == {t.split(":")[0] for t in compose["services"][name]["tmpfs"]}
        assert writable["/tmp"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Mi"}
    pod = _pod(deployments[prometheus.PROMETHEUS])
    (container,) = pod["containers"]
    [data] = [m for m in container["volumeMounts"] if not m.get("readOnly")]
    assert f"--storage.tsdb.path={data['mountPath']}" in container["args"]
    assert {"name": data["name"], "emptyDir": {}} in pod["volumes"]


def test_only_prometheus_keeps_a_service_account_token(manifests):
    deployments = _kind(manifests, "Deployment")
    for name in SERVICE_NAMES:
        assert _pod(deployments[name])["automountServiceAccountToken"] is False
        assert "serviceAccountName" not in _pod(deployments[name])
    assert _pod(deployments["prometheus"])["automountServiceAccountToken"] is True
    assert list(_kind(manifests, "ServiceAccount")) == ["prometheus"]


# -- Prometheus' reach ---------------------------------------------------------------------


def test_prometheus_serves_neither_the_admin_api_nor_the_lifecycle_endpoints(manifests):
    (container,) = _pod(_kind(manifests, "Deployment")["prometheus"])["containers"]
    flags = {arg.split("=", 1)[0] for arg in container["args"]}
    assert not flags & {"--web.enable-admin-api", "--web.enable-lifecycle"}
    assert "--web.enable-remote-write-receiver" in flags  # k6 still writes to it
    # Were compose to switch them on again, the cluster would still not get them.
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    spec["services"]["prometheus"]["command"] += ["--web.enable-lifecycle",
                                                  "--web.enable-admin-api=true"]  # fmt: skip
    assert prometheus.cluster_flags(sources.prometheus_flags(spec)) == container["args"]


def test_the_cluster_role_reads_node_metrics_without_the_node_proxy(manifests):
    [role] = _kind(manifests, "ClusterRole").values()
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    verbs = {v for rule in role["rules"] for v in rule["verbs"]}
    assert "nodes/metrics" in resources and "nodes/proxy" not in resources
    assert verbs == {"get", "list", "watch"}
    text = _kind(manifests, "ConfigMap")[prometheus.CONFIG_MAP]["data"]["prometheus.yml"]
    [kubelet] = [j for j in yaml.safe_load(text)["scrape_configs"]
                 if j["job_name"] == "kubernetes-cadvisor"]  # fmt: skip
    # The kubelet authorizes /metrics/* as nodes/metrics; the API server's proxy path would
    # need nodes/proxy.
    assert kubelet["metrics_path"] == "/metrics/cadvisor"
    assert "/proxy/" not in text
    assert kubelet["kubernetes_sd_configs"] == [{"role": "node"}]


# -- probes --------------------------------------------------------------------------------


def test_probes_wait_out_a_saturated_service(manifests):
    deployments = _kind(manifests, "Deployment")
    for name in SERVICE_NAMES:
        (container,) = _pod(deployments[name])["containers"]
        ready, live = container["readinessProbe"], container["livenessProbe"]
        assert ready["httpGet"]["path"] == "/healthz"
        assert ready["timeoutSeconds"] >= 5 and ready["failureThreshold"] >= 6
        assert ready["periodSeconds"] * ready["failureThreshold"] >= 30
        # Liveness never asks the saturated process for an HTTP answer, and waits a minute.
        assert "httpGet" not in live and live["tcpSocket"]["port"] == "http"
        assert live["timeoutSeconds"] >= 5
        assert live["periodSeconds"] * live["failureThreshold"] >= 60
        startup = container["startupProbe"]
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    (container,) = _pod(deployments["prometheus"])["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["timeoutSeconds"] >= 5, probe


# -- NetworkPolicies -----------------------------------------------------------------------


def _selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector with matchLabels only (what the generator writes): {} selects all."""
    assert set(selector or {}) <= {"matchLabels"}, "the evaluator knows matchLabels only"
    return all(labels.get(k) == v for k, v in (selector or {}).get("matchLabels", {}).items())


def _peer_matches(peer: dict, policy_namespace: str, namespace: str, labels: dict) -> bool:
    if "namespaceSelector" in peer:
        namespace_labels = {security.NAMESPACE_NAME_LABEL: namespace}
        if not _selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif namespace != policy_namespace:
        return False  # a podSelector alone means the policy's own namespace
    return _selects(peer.get("podSelector"), labels)


def _admits(policies: list[dict], source: tuple[str, dict], target: tuple[str, dict], port: int):
    """Whether Kubernetes lets `source` (namespace, labels) connect to `target` on `port`."""
    selecting = [p for p in policies if p["metadata"]["namespace"] == target[0]
                 and _selects(p["spec"]["podSelector"], target[1])
                 and "Ingress" in p["spec"]["policyTypes"]]  # fmt: skip
    if not selecting:
        return True  # not isolated
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = [p["port"] for p in rule.get("ports", [])]
            peers = rule.get("from", [])
            port_ok = not ports or port in ports
            peer_ok = not peers or any(
                _peer_matches(peer, policy["metadata"]["namespace"], *source) for peer in peers
            )
            if port_ok and peer_ok:
                return True
    return False


def _pods_made(manifests: list[dict]) -> dict[str, tuple[str, dict]]:
    """Every pod the manifests make, with the labels it gets (k6-operator's added to ours)."""
    namespace = objects.NAMESPACE
    pods = {name: (namespace, d["spec"]["template"]["metadata"]["labels"])
            for name, d in _kind(manifests, "Deployment").items()}  # fmt: skip
    run = _kind(manifests, "TestRun")["sec-1-seed-coupled"]
    operator = {"app": "k6", "k6_cr": run["metadata"]["name"]}
    ours = run["spec"]["runner"]["metadata"]["labels"]
    pods["runner"] = (namespace, {**ours, **operator, "runner": "true"})
    pods["initializer"] = (namespace, {**ours, **operator})  # the runner's copy
    pods["starter"] = (namespace, dict(operator))
    pods["stranger"] = (namespace, {"app": "debug"})
    pods["k6-operator"] = (OPERATOR_NAMESPACE, dict(security.K6_OPERATOR_POD_LABELS))
    pods["elsewhere"] = ("other", dict(security.K6_OPERATOR_POD_LABELS))
    pods["lookalike"] = ("other", dict(ours))  # a runner's labels in another namespace
    return pods


def test_each_component_has_a_policy_selecting_exactly_its_pods(manifests):
    policies = _kind(manifests, "NetworkPolicy")
    pods = _pods_made(manifests)
    in_namespace = {n for n, (ns, _) in pods.items() if ns == objects.NAMESPACE}
    for name, policy in policies.items():
        assert policy["spec"]["policyTypes"] == ["Ingress"], name
        assert policy["metadata"]["namespace"] == objects.NAMESPACE
    selected = {
        name: {p for p in in_namespace if _selects(policy["spec"]["podSelector"], pods[p][1])}
        for name, policy in policies.items()
    }
    assert selected["default-deny-ingress"] == in_namespace
    assert policies["default-deny-ingress"]["spec"]["ingress"] == []
    for name in [*SERVICE_NAMES, "prometheus"]:
        assert selected[name] == {name}
    assert selected[security.K6_RUNNER] == {"runner", "initializer"}


def test_the_apis_answer_only_the_runners_and_prometheus_on_their_ports(manifests):
    policies = list(_kind(manifests, "NetworkPolicy").values())
    pods = _pods_made(manifests)
    for api in sources.apis():
        target = pods[api.name]
        assert _admits(policies, pods["runner"], target, api.container_port)
        assert _admits(policies, pods["prometheus"], target, api.metrics_port)
        assert not _admits(policies, pods["runner"], target, api.metrics_port)
        assert not _admits(policies, pods["prometheus"], target, api.container_port)
        for other in ("stranger", "starter", "k6-operator", "lookalike", *SERVICE_NAMES):
            for port in (api.container_port, api.metrics_port):
                assert not _admits(policies, pods[other], target, port), (other, api.name, port)


def test_prometheus_answers_its_namespace_only(manifests):
    policies = list(_kind(manifests, "NetworkPolicy").values())
    pods = _pods_made(manifests)
    target = pods["prometheus"]
    for inside in ("runner", "stranger", *SERVICE_NAMES):
        assert _admits(policies, pods[inside], target, prometheus.PORT), inside
    for outside in ("k6-operator", "elsewhere", "lookalike"):
        assert not _admits(policies, pods[outside], target, prometheus.PORT), outside
    assert not _admits(policies, pods["runner"], target, 9091)


def test_the_runners_answer_the_starter_and_k6_operator_only(manifests):
    policies = list(_kind(manifests, "NetworkPolicy").values())
    pods = _pods_made(manifests)
    target, port = pods["runner"], security.K6_REST_PORT
    assert _admits(policies, pods["starter"], target, port)
    assert _admits(policies, pods["k6-operator"], target, port)  # --k6-operator-namespace
    assert not _admits(policies, pods["elsewhere"], target, port)
    assert not _admits(policies, pods["lookalike"], target, port)
    assert not _admits(policies, pods["starter"], target, 6566)
    for name in ("starter", "stranger"):  # pods nobody needs to reach
        assert not any(_admits(policies, pods[o], pods[name], p)
                       for o in pods for p in (80, 6565, 9090))  # fmt: skip


def test_the_evaluator_sees_an_open_namespace_as_open(manifests):
    """Without the default deny a stranger reaches a pod no policy selects: the checks above
    would catch a generator that forgot it."""
    policies = [p for p in _kind(manifests, "NetworkPolicy").values()
                if p["metadata"]["name"] != "default-deny-ingress"]  # fmt: skip
    pods = _pods_made(manifests)
    assert _admits(policies, pods["stranger"], pods["starter"], 80)
    assert not _admits(copy.deepcopy(policies), pods["stranger"], pods["runner"], 80)
