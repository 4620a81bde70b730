"""The docker backend's parts that need no engine: inspect, cgroups, configs, compose, ports,
the per-run override's instances (checked by compose's own `config`)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import net, paths
from helpers.serving.docker import choice, containers, grafana, override, plan, readback, topology
from helpers.serving.docker.compose import COMPOSE_FILE, Compose, ComposeError
from helpers.serving.docker.stack import DockerStack
from helpers.serving.instances import Instance
from helpers.serving.protocol import Limits
from helpers.serving.services import SERVICE_NAMES


def test_limits_from_nanocpus_or_quota_and_memory() -> None:
    nano = {"HostConfig": {"NanoCpus": 500_000_000, "Memory": 134217728}}
    assert containers.limits_from_inspect(nano) == Limits(0.5, 134217728, True)
    quota = {"HostConfig": {"NanoCpus": 0, "CpuQuota": 50_000, "CpuPeriod": 100_000, "Memory": 1}}
    assert containers.limits_from_inspect(quota) == Limits(0.5, 1, True)
    none = {"HostConfig": {"NanoCpus": 0, "CpuQuota": 0, "Memory": 0}}
    assert containers.limits_from_inspect(none) == Limits(None, None, False)


def test_a_containers_exit_is_told_like_a_processes() -> None:
    assert containers.describe_exit(137) == "killed by SIGKILL"
    assert containers.describe_exit(143) == "killed by SIGTERM"
    assert containers.describe_exit(2) == "exit status 2"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("12:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n", "docker/abc"),
        ("0::/system.slice/docker-abc.scope\n", "system.slice/docker-abc.scope"),
    ],
    ids=["v1", "v2"],
)
def test_cgroup_relpath_reads_proc(tmp_path: Path, content: str, expected: str) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "cgroup").write_text(content)
    assert topology.cgroup_relpath(42, proc=tmp_path) == expected


def test_without_optional_images_prometheus_scrapes_the_apis_and_the_host_exporter() -> None:
    bare = topology.Topology.for_images({})
    assert bare.services == [*SERVICE_NAMES, "prometheus"]
    assert bare.compose_files[-1].name == "docker-compose.scrape.yaml"
    config = yaml.safe_load(bare.prometheus_config("172.18.0.1:9400"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"prometheus", *SERVICE_NAMES, topology.EXPORTER_JOB}
    assert set(bare.jobs) == set(jobs)  # every job in the config is waited for
    assert jobs[topology.EXPORTER_JOB]["honor_labels"] is True
    assert jobs[topology.EXPORTER_JOB]["static_configs"] == [{"targets": ["172.18.0.1:9400"]}]
    assert config["global"]["scrape_interval"] == "1s"


def test_with_every_image_the_collector_and_cadvisor_feed_prometheus() -> None:
    every = {v: "x:1" for v in choice.OPTIONAL_SERVICES.values()}
    full = topology.Topology.for_images(every, telemetry="collector")
    assert full.services[-3:] == ["otel-collector", "cadvisor", "grafana"]
    assert [f.name for f in full.compose_files] == ["docker-compose.yaml"]
    config = yaml.safe_load(full.prometheus_config())
    assert {job["job_name"] for job in config["scrape_configs"]} == set(full.jobs)
    assert set(full.jobs) == {"prometheus", "otel-collector", "cadvisor"}


def test_a_service_told_to_export_no_metrics_is_not_scraped() -> None:
    """The overhead ladder runs services without telemetry: their jobs must not be waited for."""
    silent = {"go-api-onnx": {"OTEL_METRICS_EXPORTER": "none"}, "python-api-pkl": {"A": "1"}}
    bare = topology.Topology.for_images({}, silent)
    assert "go-api-onnx" not in bare.jobs and "python-api-pkl" in bare.jobs
    config = yaml.safe_load(bare.prometheus_config())
    assert "go-api-onnx" not in {job["job_name"] for job in config["scrape_configs"]}
    assert bare.services == [*SERVICE_NAMES, "prometheus"]  # it still runs


def test_the_run_override_mounts_the_run_and_escapes_what_it_adds(tmp_path: Path) -> None:
    go = Instance("go-api-onnx", "go-api-onnx", {"A": "$5"})
    resolved = {"environment": {"MODEL_PATH": "/app/artifacts/model.onnx"}}
    entry = override.instance_service(go, resolved, "pull", tmp_path, 5003, "127.0.0.1")
    content = override.run_override(
        tmp_path / "prometheus.yml", tmp_path / "data", "1000:1000", {"go-api-onnx": entry}
    )
    prometheus = content["services"]["prometheus"]
    assert prometheus["user"] == "1000:1000"
    assert f"{tmp_path / 'data'}:/prometheus" in prometheus["volumes"]
    assert content["services"]["go-api-onnx"]["environment"] == {
        "OTEL_SERVICE_NAME": "go-api-onnx",
        "OTEL_METRICS_EXPORTER": "prometheus",
        "A": "$$5",
    }


@pytest.fixture
def compose() -> Compose:
    try:
        return Compose({"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHON_IMAGE": "mirror/py:3"})
    except ComposeError as error:
        pytest.skip(str(error))


def test_pinned_images_are_what_compose_config_resolves(compose: Compose) -> None:
    pinned = choice.pinned_images(compose.config())
    assert set(pinned) == set(choice.IMAGE_PLACES)
    assert pinned["PYTHON_IMAGE"] == "mirror/py:3"  # the user's variable, as compose applies it
    text = paths.REPO_ROOT.joinpath("docker-compose.yaml").read_text()
    assert f"${{GO_IMAGE:-{pinned['GO_IMAGE']}}}" in text  # the file's own pinned default
    for variable, image in pinned.items():
        assert ":" in image and not image.endswith(":latest"), (variable, image)


def test_an_unknown_image_mode_is_a_clear_error() -> None:
    with pytest.raises(choice.ImageChoiceError, match="STUDY_DOCKER_IMAGES='nope'"):
        choice.choose_images(client=None, pinned={}, stand_ins=(), mode="nope")


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "manifest.json").write_text(json.dumps({}))
    return tmp_path / "artifacts"


def _free(count: int) -> list[int]:
    found: list[int] = []
    while len(found) < count:
        port = net.free_port()
        found += [] if port in found else [port]
    return found


def test_ports_follow_the_compose_variables_through_the_one_port_policy(
    artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkl, onnx, go, prometheus, grafana = _free(5)
    monkeypatch.setenv("PYTHON_API_PKL_PORT", str(pkl))
    requested = {"python-api-onnx": onnx, "go-api-onnx": go, "prometheus": prometheus}
    stack = DockerStack(tmp_path / "run", artifacts, requested | {"grafana": grafana})
    assert stack.ports == {"python-api-pkl": pkl, **requested, "grafana": grafana}
    assert stack.load_target_urls == stack.service_urls
    with pytest.raises(ValueError, match="unknown port name"):
        DockerStack(tmp_path / "run", artifacts, {"cgroup-exporter": 1})


def test_service_env_must_name_services_and_a_model_must_exist(
    artifacts: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"unknown services \['go-api'\]"):
        DockerStack(tmp_path / "run", artifacts, service_env={"go-api": {"A": "1"}})
    shutil.rmtree(artifacts)
    with pytest.raises(FileNotFoundError, match=r"manifest\.json"):
        DockerStack(tmp_path / "run", artifacts)


def test_pull_telemetry_scrapes_the_apis_and_runs_the_collector_only_for_spans() -> None:
    every = {v: "x:1" for v in choice.OPTIONAL_SERVICES.values()}
    pulled = topology.Topology.for_images(every)
    assert "otel-collector" not in pulled.services and "go-api-onnx" in pulled.jobs
    traced = topology.Topology.for_images(every, {"go-api-onnx": {"OTEL_TRACES_EXPORTER": "otlp"}})
    assert "otel-collector" in traced.services and "otel-collector" not in traced.jobs
    with pytest.raises(ValueError, match="OTEL_COLLECTOR_IMAGE"):
        topology.Topology.for_images({}, telemetry="collector")


def test_grafana_gets_a_password_of_its_own_unless_the_caller_gave_one(tmp_path: Path) -> None:
    added, written = grafana.login({}, tmp_path / "stack")
    password = added[grafana.PASSWORD_VARIABLE]
    assert len(password) >= 20 and password != "admin"
    assert written == tmp_path / "stack" / grafana.PASSWORD_FILE
    assert written.read_text().strip() == password
    assert written.stat().st_mode & 0o777 == 0o600  # the caller's to read, nobody else's
    again, _ = grafana.login({grafana.PASSWORD_VARIABLE: ""}, tmp_path / "other")
    assert again[grafana.PASSWORD_VARIABLE] != password  # new for each run
    assert grafana.login({grafana.PASSWORD_VARIABLE: "s3cret-x"}, tmp_path / "own") == ({}, None)
    assert not (tmp_path / "own").exists()  # the caller's own password is written nowhere
    with pytest.raises(ValueError, match="GRAFANA_ADMIN_PASSWORD=admin is refused"):
        grafana.login({grafana.PASSWORD_VARIABLE: "admin"}, tmp_path / "refused")
    assert grafana.user({}) == "admin" and grafana.user({"GRAFANA_ADMIN_USER": "me"}) == "me"


# -- instances in the per-run override, read back through compose's own `config` ---------------

PAIR = [
    Instance("python-api-onnx.a", "python-api-onnx", {"ORT_INTRA_OP_NUM_THREADS": "2"}),
    Instance(
        "python-api-onnx.b",
        "python-api-onnx",
        {"NOTE": "costs $5"},
        cpu_cores=0.25,
        memory_bytes=200 * 2**20,
        telemetry="collector",
    ),
]


def _resolved_with(
    compose: Compose, instances: list[Instance], tmp_path: Path, artifacts: Path
) -> dict:
    """The services as compose resolves them with the run override these instances make."""
    by_name = {i.name: i for i in instances}
    compose.env["ARTIFACTS_DIR"] = str(artifacts)
    layout = topology.Topology.for_instances({"OTEL_COLLECTOR_IMAGE": "x:1"}, instances)
    free = _free(len(instances))
    ports = {name: free[n] for n, name in enumerate(by_name)}
    services = override.instance_services(
        by_name, compose.config()["services"], layout.telemetry_of, artifacts, ports
    )
    content = override.run_override(tmp_path / "p.yml", tmp_path / "data", "1:1", services)
    path = tmp_path / "docker-compose.run.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    compose.files = [COMPOSE_FILE, path]
    resolved = compose.config()["services"]
    return {name: resolved[name] | {"host_port": ports[name]} for name in by_name}


def test_each_instance_is_a_service_of_its_own_built_from_its_apis_definition(
    compose: Compose, tmp_path: Path, artifacts: Path
) -> None:
    other_model = tmp_path / "other-model"
    pair = [PAIR[0], dataclasses.replace(PAIR[1], artifacts_dir=other_model)]
    resolved = _resolved_with(compose, pair, tmp_path, artifacts)
    base = compose.config()["services"]["python-api-onnx"]
    a, b = resolved["python-api-onnx.a"], resolved["python-api-onnx.b"]
    for name, service in resolved.items():
        assert service["container_name"] == name  # cAdvisor's and the exporter's `name`
        assert service["image"] == base["image"] and "build" not in service
        assert service["ports"] == [f"127.0.0.1:{service['host_port']}:5000/tcp"]
        assert service["environment"]["OTEL_SERVICE_NAME"] == name
        assert service["stop_grace_period"] == base["stop_grace_period"]  # copied, not retyped
    assert a["deploy"]["resources"]["limits"] == {"cpus": 0.5, "memory": str(128 * 2**20)}
    assert b["deploy"]["resources"]["limits"] == {"cpus": 0.25, "memory": str(200 * 2**20)}
    assert a["environment"]["ORT_INTRA_OP_NUM_THREADS"] == "2"
    assert b["environment"]["ORT_INTRA_OP_NUM_THREADS"] == "1"  # the compose file's
    assert b["environment"]["NOTE"] == "costs $$5"  # compose text: `$5` reaches the container
    assert a["environment"]["OTEL_METRICS_EXPORTER"] == "prometheus"
    assert b["environment"]["OTEL_METRICS_EXPORTER"] == "otlp"
    assert a["volumes"] == [f"{artifacts}:/app/artifacts:ro"]
    assert b["volumes"] == [f"{other_model}:/app/artifacts:ro"]


def test_an_instance_named_like_its_api_keeps_the_compose_service_and_may_drop_a_limit(
    compose: Compose, tmp_path: Path, artifacts: Path
) -> None:
    unlimited = Instance("python-api-pkl", "python-api-pkl", {"A": "1"}, cpu_cores=None)
    resolved = _resolved_with(compose, [unlimited], tmp_path, artifacts)["python-api-pkl"]
    assert resolved["container_name"] == "python-api-pkl"
    assert "build" in resolved  # the compose file's own service: built from it
    assert resolved["ports"] == ["127.0.0.1:5001:5000/tcp"]  # its port variable's default
    # No CPU limit: 0, what the engine reads as none (compose cannot delete the file's key).
    assert resolved["deploy"]["resources"]["limits"] == {"cpus": 0.0, "memory": str(128 * 2**20)}
    assert resolved["environment"]["A"] == "1"
    assert resolved["environment"]["OTEL_SERVICE_NAME"] == "python-api-pkl"


def test_an_instance_may_not_take_another_compose_services_name() -> None:
    compose_services = {*SERVICE_NAMES, "prometheus", "grafana"}
    for name, service in [("prometheus", "go-api-onnx"), ("python-api-pkl", "go-api-onnx")]:
        with pytest.raises(ValueError, match=f"named like the compose service {name!r}"):
            override.check_names({name: Instance(name, service)}, compose_services)
    override.check_names({i.name: i for i in PAIR}, compose_services)


def test_instances_telemetry_paths_make_the_prometheus_jobs() -> None:
    every = {v: "x:1" for v in choice.OPTIONAL_SERVICES.values()}
    silent = Instance("go-api-onnx.quiet", "go-api-onnx", {"OTEL_METRICS_EXPORTER": "none"})
    layout = topology.Topology.for_instances(every, [*PAIR, silent])
    assert layout.scraped == ["python-api-onnx.a"] and layout.pushed == ("python-api-onnx.b",)
    assert [layout.telemetry_of(i.name) for i in [*PAIR, silent]] == ["pull", "collector", None]
    assert "otel-collector" in layout.services and "grafana" not in layout.watched
    assert layout.watched[:4] == [*(i.name for i in [*PAIR, silent]), "prometheus"]
    config = yaml.safe_load(layout.prometheus_config())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    expected = {"prometheus", "python-api-onnx.a", "otel-collector", "cadvisor"}
    assert set(jobs) == set(layout.jobs) == expected
    assert jobs["python-api-onnx.a"]["static_configs"] == [
        {"targets": [f"python-api-onnx.a:{topology.METRICS_PORT}"]}
    ]
    [keep] = jobs["cadvisor"]["metric_relabel_configs"]
    assert keep["regex"] == r"python-api-onnx\.a|python-api-onnx\.b|go-api-onnx\.quiet"
    with pytest.raises(ValueError, match="OTEL_COLLECTOR_IMAGE"):
        topology.Topology.for_instances({}, PAIR)  # one pushes: the collector is needed


def test_the_metrics_port_is_the_compose_files(compose: Compose) -> None:
    for name in SERVICE_NAMES:
        env = compose.config()["services"][name]["environment"]
        assert env["OTEL_EXPORTER_PROMETHEUS_PORT"] == str(topology.METRICS_PORT)


def test_instances_named_like_an_api_keep_its_port_variable_others_get_free_ports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    onnx, prometheus, grafana = _free(3)
    monkeypatch.setenv("PYTHON_API_ONNX_PORT", str(onnx))
    monkeypatch.setenv("PROMETHEUS_PORT", str(prometheus))
    monkeypatch.setenv("GRAFANA_PORT", str(grafana))
    instances = {i.name: i for i in [Instance("python-api-onnx", "python-api-onnx"), *PAIR]}
    chosen = plan.host_ports(instances, None)
    assert chosen["python-api-onnx"] == onnx and chosen["prometheus"] == prometheus
    others = [chosen["python-api-onnx.a"], chosen["python-api-onnx.b"]]
    assert len(set(chosen.values())) == len(chosen) == 5
    assert all(net.port_free("127.0.0.1", port) for port in others)


def test_limits_read_back_are_enforced_when_they_are_what_was_asked() -> None:
    half = {"HostConfig": {"NanoCpus": 500_000_000, "Memory": 128 * 2**20}}
    none = {"HostConfig": {"NanoCpus": 0, "CpuQuota": 0, "Memory": 0}}
    budget, unlimited = (
        Instance("a", "go-api-onnx"),
        PAIR[0].__class__("b", "go-api-onnx", cpu_cores=None, memory_bytes=None),
    )
    assert readback.limits(half, None, budget) == Limits(0.5, 128 * 2**20, True)
    assert readback.limits(none, None, unlimited) == Limits(None, None, True)
    assert readback.limits(none, None, budget) == Limits(None, None, False)
    read, note = readback.all_limits({"a": budget}, {"a": none}, {"a": None})
    assert not read["a"].enforced and "the limits of a are not the ones asked for" in note


def test_instances_or_services_not_both(artifacts: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        DockerStack(tmp_path / "run", artifacts, services=["go-api-onnx"], instances=PAIR)
    with pytest.raises(ValueError, match="two instances are named"):
        DockerStack(tmp_path / "run", artifacts, instances=[PAIR[0], PAIR[0]])
    missing = Instance("go-api-onnx.x", "go-api-onnx", artifacts_dir=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"go-api-onnx\.x's model"):
        DockerStack(tmp_path / "run", artifacts, instances=[missing])
