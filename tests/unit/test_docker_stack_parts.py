"""The docker backend's parts that need no engine: inspect, cgroups, configs, compose, ports."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import net, paths
from helpers.serving.docker import choice, containers, grafana, topology
from helpers.serving.docker.compose import Compose, ComposeError
from helpers.serving.docker.stack import DockerStack
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


def test_the_run_override_mounts_the_run_and_escapes_service_env(tmp_path: Path) -> None:
    override = topology.run_override(
        tmp_path / "prometheus.yml", tmp_path / "data", "1000:1000", {"go-api-onnx": {"A": "$5"}}
    )
    prometheus = override["services"]["prometheus"]
    assert prometheus["user"] == "1000:1000"
    assert f"{tmp_path / 'data'}:/prometheus" in prometheus["volumes"]
    assert override["services"]["go-api-onnx"]["environment"] == {"A": "$$5"}


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
    with pytest.raises(ValueError, match="service_env names unknown services"):
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
