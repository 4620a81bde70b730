"""deploy/kubernetes: generated from the other backends' sources, valid offline, sized right."""

from __future__ import annotations

import copy
import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import paths
from helpers.analysis import cost
from helpers.kubernetes import __main__ as cli
from helpers.kubernetes import objects, replicas, sources, testruns, validate
from helpers.load import k6, profiles
from helpers.serving.docker.compose import (
    COMPOSE_FILE,
    SCRAPE_OVERRIDE,
    ComposeError,
    compose_command,
)
from helpers.serving.local import cgroups
from helpers.serving.services import SERVICE_NAMES, all_services

REFERENCE_DIR = paths.REPO_ROOT / "deploy" / "kubernetes" / "manifests"


def _generate(out: Path, *argv: str) -> dict[str, list[dict]]:
    assert cli.main(["--out", str(out), *argv]) == 0
    return {
        str(p.relative_to(out)): list(yaml.safe_load_all(p.read_text()))
        for p in sorted(out.rglob("*.yaml"))
    }


def _summary(tmp_path: Path, capacity: dict, headroom: float = 0.3) -> Path:
    run = tmp_path / "run-1"
    run.mkdir()
    (run / "summary.json").write_text(
        json.dumps({"run_id": "run-1", "capacity": capacity, "cost": {"headroom": headroom}})
    )
    return run


def _by_kind(files: dict[str, list[dict]], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for objs in files.values() for o in objs if o["kind"] == kind}


@pytest.fixture(scope="module")
def full(tmp_path_factory, model_artifacts) -> dict[str, list[dict]]:
    tmp = tmp_path_factory.mktemp("k8s")
    run = _summary(
        tmp,
        {
            "python-api-pkl": {"rate_rps": 100, "bound": "service"},
            "python-api-onnx": {"rate_rps": 400, "bound": "generator"},
            "go-api-onnx": {"rate_rps": None, "bound": "none passed"},
        },
    )
    return _generate(
        tmp / "out", "--artifacts", str(model_artifacts), "--target-rps", "1000",
        "--run", str(run), "--parallelism", "4", "--run-id", "study-7",
    )  # fmt: skip


def test_committed_reference_manifests_are_what_the_generator_writes(tmp_path):
    out = tmp_path / "reference"
    assert cli.main(["--reference", "--out", str(out)]) == 0
    fresh = {str(p.relative_to(out)): p.read_text() for p in out.rglob("*") if p.is_file()}
    kept = {
        str(p.relative_to(REFERENCE_DIR)): p.read_text()
        for p in REFERENCE_DIR.rglob("*")
        if p.is_file()
    }
    assert sorted(fresh) == sorted(kept), "run: python -m helpers.kubernetes --reference"
    for name, text in fresh.items():
        assert kept[name] == text, f"{name} is stale: regenerate deploy/kubernetes/manifests"


def test_every_object_passes_the_schemas_again(full):
    # write() validated them; validate the files as written too (what kubectl would get).
    count = sum(validate.check_all(objs) for objs in full.values())
    kinds = {o["kind"] for objs in full.values() for o in objs}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "TestRun"} <= kinds
    assert count >= 22


def test_limits_are_the_budget_of_compose_and_of_the_local_cgroups(full):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    for name, deployment in _by_kind(full, "Deployment").items():
        if name not in SERVICE_NAMES:
            continue
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        resources = container["resources"]
        assert resources["requests"] == resources["limits"], "Guaranteed QoS needs requests=limits"
        limits = compose["services"][name]["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) == cgroups.DEFAULT_CPU_CORES
        assert resources["limits"]["cpu"] == f"{round(float(limits['cpus']) * 1000)}m"
        compose_bytes = sources.docker_memory_bytes(limits["memory"])
        assert compose_bytes == cgroups.DEFAULT_MEMORY_BYTES
        assert resources["limits"]["memory"] == f"{compose_bytes // 2**20}Mi"


def test_limits_as_compose_itself_resolves_them(full):
    # The compose CLI's own reading of the file (interpolation, anchors), not PyYAML's;
    # `make test` installs docker-compose (make docker-packages).
    try:
        command = compose_command()
    except ComposeError as error:
        pytest.skip(f"no compose CLI here: {error}")
    resolved = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config"], capture_output=True, text=True,
        check=True, timeout=60, cwd=paths.REPO_ROOT,
    )  # fmt: skip
    config = yaml.safe_load(resolved.stdout)
    deployments = _by_kind(full, "Deployment")
    for name in SERVICE_NAMES:
        limits = config["services"][name]["deploy"]["resources"]["limits"]
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert float(limits["cpus"]) * 1000 == float(container["resources"]["limits"]["cpu"][:-1])
        memory = limits["memory"]
        memory_bytes = memory if isinstance(memory, int) else sources.docker_memory_bytes(memory)
        assert memory_bytes == int(container["resources"]["limits"]["memory"][:-2]) * 2**20


def test_a_drift_between_compose_and_the_cgroups_stops_the_generator():
    spec = yaml.safe_load(COMPOSE_FILE.read_text())
    drifted = copy.deepcopy(spec)
    # The compose file shares one `deploy` block by anchor: give go-api-onnx its own.
    limits = {"cpus": "0.5", "memory": "256M"}
    drifted["services"]["go-api-onnx"]["deploy"] = {"resources": {"limits": limits}}
    with pytest.raises(ValueError, match=r"go-api-onnx.*differ from the local backend"):
        sources.budget(drifted)
    assert sources.budget(spec).memory_quantity == "128Mi"


def test_images_ports_environment_and_model_mount_come_from_compose(full):
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    scrape = yaml.safe_load(SCRAPE_OVERRIDE.read_text())["services"]
    deployments = _by_kind(full, "Deployment")
    for name in SERVICE_NAMES:
        service = compose["services"][name]
        pod = deployments[name]["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["name"] == name  # the kubelet's `container` label, relabelled to `name`
        assert container["image"] == service["image"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["OTEL_METRICS_EXPORTER"] == scrape[name]["environment"]["OTEL_METRICS_EXPORTER"]
        assert env["OTEL_SERVICE_NAME"] == name
        for key, value in service["environment"].items():
            if not key.startswith(sources.PUSH_ONLY_ENV) and key != "OTEL_METRICS_EXPORTER":
                assert env[key] == sources.default_of(value), key
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert [p.split(":")[-1] for p in service["ports"]] == [str(ports["http"])]
        assert str(ports["metrics"]) == service["environment"]["OTEL_EXPORTER_PROMETHEUS_PORT"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
        mount = container["volumeMounts"][0]["mountPath"]
        assert env["MODEL_PATH"] == f"{mount}/{all_services()[name].model_file}"
        assert env["MODEL_MANIFEST"] == f"{mount}/manifest.json"
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_model_configmap_holds_the_artifacts_byte_for_byte(full, model_artifacts):
    import base64

    model = _by_kind(full, "ConfigMap")[objects.MODEL_CONFIGMAP]
    for name in ("model.pkl", "model.onnx"):
        assert base64.b64decode(model["binaryData"][name]) == (model_artifacts / name).read_bytes()
    assert model["data"]["manifest.json"] == (model_artifacts / "manifest.json").read_text()
    manifest = json.loads(model["data"]["manifest.json"])
    assert json.loads(model["data"][objects.FEATURE_RANGES_KEY]) == manifest["feature_ranges"]


def test_testruns_carry_the_profile_the_parallelism_and_local_k6_settings(full):
    runs = _by_kind(full, "TestRun")
    seed = runs["study-7-seed-isolated"]["spec"]
    assert seed["parallelism"] == 4
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in seed["runner"]["env"]}
    assert json.loads(env["PROFILE_JSON"]) == profiles.get_profile("seed").raw
    assert env["MODE"] == "isolated" and env["RUN_ID"] == "study-7"
    assert env["K6_PROMETHEUS_RW_SERVER_URL"] == objects.remote_write_url()
    assert env["FEATURE_RANGES"]["configMapKeyRef"]["name"] == objects.MODEL_CONFIGMAP
    assert set(json.loads(env["TARGETS"])) == set(SERVICE_NAMES)
    assert seed["args"][seed["args"].index("--summary-trend-stats") + 1] == k6.TREND_STATS
    assert seed["runner"]["image"] == sources.image("k6")
    capacity = runs["study-7-cap-python-api-pkl"]["spec"]
    env = {e["name"]: e.get("value") for e in capacity["runner"]["env"]}
    assert json.loads(env["TARGETS"]) == {"python-api-pkl": objects.service_url(sources.apis()[0])}
    assert env["RATE"] == "100"  # the run's measured capacity of that service
    scripts = _by_kind(full, "ConfigMap")[objects.K6_CONFIGMAP]["data"]
    assert scripts["seed.js"] == (paths.K6_DIR / "seed.js").read_text()
    assert {"capacity.js", "common.js"} <= set(scripts)


def test_replicas_and_hpas_are_the_cost_models_instances(full):
    deployments = _by_kind(full, "Deployment")
    hpas = _by_kind(full, "HorizontalPodAutoscaler")
    expected_pkl = cost.plan("python-api-pkl", 100, False, 1000, cost.FARGATE_US_EAST_1, 0.3)
    assert deployments["python-api-pkl"]["spec"]["replicas"] == expected_pkl.instances == 15
    assert deployments["python-api-onnx"]["spec"]["replicas"] == math.ceil(1000 / (400 * 0.7))
    assert deployments["go-api-onnx"]["spec"]["replicas"] == 1  # no capacity measured
    assert set(hpas) == {"python-api-pkl", "python-api-onnx"}
    target = hpas["python-api-pkl"]["spec"]["metrics"][0]["resource"]["target"]
    assert target == {"type": "Utilization", "averageUtilization": 70}
    assert hpas["python-api-pkl"]["spec"]["minReplicas"] == 15


def test_sizing_says_bounds_as_bounds_and_why_a_service_got_one(tmp_path):
    run = _summary(tmp_path, {"python-api-onnx": {"rate_rps": 400, "bound": "generator"}}, 0.5)
    sized = {s.service: s for s in replicas.size(1000.0, replicas.summary_path(str(run)))}
    assert sized["python-api-onnx"].replicas == 5 and sized["python-api-onnx"].upper_bound
    assert "≤ 5 replicas" in sized["python-api-onnx"].line()
    assert "upper bound" in sized["python-api-onnx"].line()
    assert (
        sized["python-api-pkl"].replicas == 1
        and "no measured capacity" in sized["python-api-pkl"].line()
    )


def test_no_run_available_means_one_replica_said_so(tmp_path):
    assert replicas.summary_path(None, results_dir=tmp_path) is None
    sized = replicas.size(500.0, None)
    assert [s.replicas for s in sized] == [1, 1, 1]
    assert all("the target rate is not used" in s.line() for s in sized)


def test_the_newest_run_with_a_capacity_section_is_found(tmp_path):
    (tmp_path / "no-capacity").mkdir()
    (tmp_path / "no-capacity" / "summary.json").write_text('{"run_id": "x"}')
    run = _summary(tmp_path, {"go-api-onnx": {"rate_rps": 900, "bound": "service"}})
    assert replicas.summary_path(None, results_dir=tmp_path) == run / "summary.json"
    assert replicas.summary_path("run-1", results_dir=tmp_path) == run / "summary.json"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--target-rps", "abc"], "TARGET_RPS must be a positive number"),
        (["--target-rps", "-5"], "TARGET_RPS must be a positive number"),
        (["--target-rps", "nan"], "TARGET_RPS must be a positive number"),
        (["--target-rps", "10", "--run", "/no/such/run"], "no summary.json in /no/such/run"),
        (["--parallelism", "0"], "parallelism must be a whole number from 1 to 100"),
        (["--parallelism", "two"], "parallelism must be a whole number from 1 to 100"),
        (["--parallelism", "101"], "parallelism must be a whole number from 1 to 100"),
        (["--run-id", "Big_Run"], "run id 'Big_Run'"),
        (["--profile", "huge"], "profile 'huge' is unknown"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, says):
    out = tmp_path / "out"
    # Checked before anything is read: the artifacts folder need not even exist.
    assert cli.main(["--out", str(out), "--artifacts", str(tmp_path / "none"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and all(line.startswith("k8s-manifests: ") for line in err)
    assert says in err[-1]
    assert not out.exists(), "nothing is written on bad input"


def test_a_folder_the_generator_did_not_write_is_not_replaced(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert cli.main(["--reference", "--out", str(tmp_path)]) == 2
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert "was not written by this generator" in capsys.readouterr().err


def test_the_crd_schema_catches_what_the_api_server_would_prune_or_refuse():
    run = testruns.seed(profiles.get_profile("smoke"), "coupled", "t", 2, "grafana/k6:1.1.0")
    validate.check(run)
    misspelt = copy.deepcopy(run)
    misspelt["spec"]["paralellism"] = misspelt["spec"].pop("parallelism")
    with pytest.raises(validate.InvalidManifest, match="parallelism"):
        validate.check(misspelt)
    wrong_type = copy.deepcopy(run)
    wrong_type["spec"]["parallelism"] = "2"
    with pytest.raises(validate.InvalidManifest, match=r"spec\.parallelism"):
        validate.check(wrong_type)
    bad_env = copy.deepcopy(run)
    bad_env["spec"]["runner"]["env"][0]["valueFrom"]["configMapKeyRef"]["keyy"] = "x"
    with pytest.raises(validate.InvalidManifest, match="keyy"):
        validate.check(bad_env)


def test_kubernetes_schemas_refuse_a_bad_deployment():
    api = sources.apis()[0]
    deployment, _, _ = objects.api_objects(api, sources.budget(), 1, "")
    validate.check(deployment)
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(
        validate.InvalidManifest, match=r"Deployment/python-api-pkl: spec\.replicas"
    ):
        validate.check(deployment)
    deployment["spec"]["replicas"] = 1
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(validate.InvalidManifest, match="resource"):
        validate.check(deployment)


def test_the_pinned_crd_is_the_upstream_file():
    schema = validate.testrun_schema()  # raises if the gzipped file's sha256 changed
    assert {"parallelism", "script"} <= set(schema["properties"]["spec"]["required"])
    assert "args" in schema["properties"]["spec"]["properties"]
